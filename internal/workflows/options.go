package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// stepRetry retries what can heal (a libvirtd restart, a worker crash);
// activities mark everything else non-retryable. The first retry comes
// quickly: after a crash, the heartbeat timeout has already been waited.
var stepRetry = &temporal.RetryPolicy{
	InitialInterval:    250 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
	MaximumAttempts:    20,
}

// activityContext builds the activity options every hpcvm step shares: the
// heartbeat timeout makes a dead worker visible in seconds, and the retry
// policy retries only what activities mark retryable.
func activityContext(ctx workflow.Context, o api.Options, startToClose time.Duration, waitForCancel bool) workflow.Context {
	return workflow.WithActivityOptions(ctx, routed(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    o.HeartbeatTimeout,
		RetryPolicy:         stepRetry,
		WaitForCancellation: waitForCancel,
	}))
}

// stepContext is the activity context of a short libvirt step.
// WaitForCancellation keeps a cancelled run from compensating before the
// step it cancelled has really finished.
func stepContext(ctx workflow.Context, o api.Options) workflow.Context {
	return activityContext(ctx, o, o.StepTimeout, true)
}

// uploadContext is the activity context of the base image upload, which may
// take long and heartbeats its offset.
func uploadContext(ctx workflow.Context, o api.Options) workflow.Context {
	return activityContext(ctx, o, o.UploadTimeout, true)
}

// launchHeartbeatTimeout is the least heartbeat timeout of a domain start.
// QEMU launches are when a host is busiest: with 100 guests starting on
// 2 cores (make bench-scale), the worker's once-a-second heartbeats fell
// more than 5 s behind and live StartDomain attempts were retried
// ("activity Heartbeat timeout"). A worker that dies is still noticed at
// once when it comes back (hostworker.TakeOver); this only bounds how long
// a host whose worker does not come back keeps a start waiting.
const launchHeartbeatTimeout = 15 * time.Second

// launchContext is stepContext for StartDomain.
func launchContext(ctx workflow.Context, o api.Options) workflow.Context {
	if o.HeartbeatTimeout < launchHeartbeatTimeout {
		o.HeartbeatTimeout = launchHeartbeatTimeout
	}
	return stepContext(ctx, o)
}
