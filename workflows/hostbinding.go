package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// refuseOtherHost refuses a run that reached the worker of another host
// than the cluster's: every workflow is registered on every host's queue,
// and a run started on the wrong one (a parent workflow's child options, a
// client that skips the CLI) would create the cluster's VMs on that host
// and record its device claims in that host's ledger. It runs before the
// first activity and issues no command, so histories recorded before it
// replay unchanged (they all ran on their cluster's queue).
func refuseOtherHost(ctx workflow.Context, host string) error {
	queue := workflow.GetInfo(ctx).TaskQueueName
	if queue == TaskQueue(host) {
		return nil
	}
	served := "is not a host's queue"
	if h, ok := strings.CutPrefix(queue, TaskQueue("")); ok {
		served = "is served by the worker of host " + h
	}
	return badRequest(fmt.Errorf("cluster.host is %q, but this run was started on task queue %q, which %s: nothing was done; start it on task queue %q (the hpcvm CLI does), or fix cluster.host",
		host, queue, served, TaskQueue(host)))
}
