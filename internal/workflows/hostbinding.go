package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// bindHost routes every activity the run schedules under the returned
// context to the queue of the cluster's host, each bounded by the
// options' HostTimeout: the run itself may be on the control queue,
// served by any worker. It refuses a run started on another host's queue:
// runs of older clients started there, and a run on the wrong one (a
// parent workflow's child options, a client that skips the CLI) would
// record its device claims in that host's ledger.
func bindHost(ctx workflow.Context, host string, o api.Options) (workflow.Context, error) {
	queue := workflow.GetInfo(ctx).TaskQueueName
	if queue != api.ControlQueue && queue != api.TaskQueue(host) {
		served := "is neither the control queue nor a host's queue"
		if h, ok := strings.CutPrefix(queue, api.TaskQueue("")); ok {
			served = "is served by the worker of host " + h
		}
		return ctx, badRequest(fmt.Errorf("cluster.host is %q, but this run was started on task queue %q, which %s: nothing was done; start it on task queue %q (the hpcvm CLI does), or fix cluster.host",
			host, queue, served, api.ControlQueue))
	}
	return workflow.WithValue(ctx, hostKey{}, hostRoute{host: host, queue: api.TaskQueue(host), timeout: o.WithDefaults().HostTimeout}), nil
}

// hostKey carries the run's hostRoute in its context.
type hostKey struct{}

type hostRoute struct {
	host    string
	queue   string
	timeout time.Duration
}

func routeOf(ctx workflow.Context) (hostRoute, bool) {
	r, ok := ctx.Value(hostKey{}).(hostRoute)
	return r, ok
}

// routed sets the host's queue and the bound on the host's answer in an
// activity's options; a context without a route (the host's own
// workflows, on its queue) leaves them as they are.
func routed(ctx workflow.Context, opts workflow.ActivityOptions) workflow.ActivityOptions {
	if r, ok := routeOf(ctx); ok {
		opts.TaskQueue = r.queue
		if opts.ScheduleToStartTimeout == 0 || opts.ScheduleToStartTimeout > r.timeout {
			opts.ScheduleToStartTimeout = r.timeout
		}
	}
	return opts
}

// ErrTypeHostSilent is the error type of a step whose host's worker did
// not take it within the run's HostTimeout.
const ErrTypeHostSilent = api.ErrTypeHostSilent

// hostSilence turns a step that no worker of its host took in time into
// an error that says so; other errors are returned as they are.
func hostSilence(ctx workflow.Context, err error) (error, bool) {
	var te *temporal.TimeoutError
	if !errors.As(err, &te) || te.TimeoutType() != enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
		return err, false
	}
	r, _ := routeOf(ctx)
	msg := fmt.Sprintf("host %s did not answer: no worker took the step from task queue %s within %s (host_timeout); is hpcvm-worker running there, and does it reach Temporal?", r.host, r.queue, r.timeout)
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeHostSilent, err), true
}
