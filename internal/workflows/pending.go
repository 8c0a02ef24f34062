package workflows

import (
	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/workflow"
)

// PendingHostChanges looks at the host whose queue it runs on and answers
// which of the host changes req names are missing. It changes nothing.
// (preflight.PendingHostChangesFor is the question for a cluster file.)
func PendingHostChanges(ctx workflow.Context, req api.PendingRequest) (api.PendingChanges, error) {
	var p api.PendingChanges
	err := workflow.ExecuteActivity(hostQuestion(ctx), api.ActPendingHostChanges, req).Get(ctx, &p)
	return p, err
}
