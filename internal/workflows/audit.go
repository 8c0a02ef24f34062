package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// HostAudit reads the audit log of the host whose queue it runs on: the
// changes hpcvm made there outside libvirt. The log lives on the host, so
// that it outlasts Temporal's retention of the runs that made them; a
// client reaches it through the host's worker. It changes nothing.
func HostAudit(ctx workflow.Context, req api.AuditRequest) (api.AuditLog, error) {
	var log api.AuditLog
	err := workflow.ExecuteActivity(hostQuestion(ctx), api.ActReadAuditLog, req).Get(ctx, &log)
	return log, err
}

// hostQuestion is the activity context of a short workflow that asks a
// host something for a client waiting on it.
func hostQuestion(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, routed(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		// Interactive, as status is: fail fast without a worker.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	}))
}
