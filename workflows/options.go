package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// stepRetry retries what can heal (a libvirtd restart, a worker crash);
// activities mark everything else non-retryable.
var stepRetry = &temporal.RetryPolicy{
	InitialInterval:    time.Second,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
	MaximumAttempts:    20,
}

// stepContext is the activity context of a short libvirt step. The
// heartbeat timeout makes a dead worker visible in seconds;
// WaitForCancellation keeps a cancelled run from compensating before the
// step it cancelled has really finished.
func stepContext(ctx workflow.Context, o Options) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.StepTimeout,
		HeartbeatTimeout:    o.HeartbeatTimeout,
		RetryPolicy:         stepRetry,
		WaitForCancellation: true,
	})
}

// uploadContext is the activity context of the base image upload, which may
// take long and heartbeats its offset.
func uploadContext(ctx workflow.Context, o Options) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.UploadTimeout,
		HeartbeatTimeout:    o.HeartbeatTimeout,
		RetryPolicy:         stepRetry,
		WaitForCancellation: true,
	})
}
