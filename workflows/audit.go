package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/activities"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// HostAudit reads the audit log of the host whose queue it runs on: the
// changes hpcvm made there outside libvirt. The log lives on the host, so
// that it outlasts Temporal's retention of the runs that made them; a
// client reaches it through the host's worker. It changes nothing.
func HostAudit(ctx workflow.Context, req activities.AuditRequest) (activities.AuditLog, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		// Interactive, as status is: fail fast without a worker.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var log activities.AuditLog
	err := workflow.ExecuteActivity(ctx, a.ReadAuditLog, req).Get(ctx, &log)
	return log, err
}
