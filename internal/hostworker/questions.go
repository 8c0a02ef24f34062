package hostworker

import (
	"context"
	"errors"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// RetireQuestions ends the host's questions run (workflows.HostQuestions)
// when a worker starts. The run holds nothing worth keeping, and it may
// have begun under an older worker: its version markers would keep
// answering validate and plan by that worker's rules, and a change of its
// code would stop its replay and with it every question on the host. The
// next question starts a run on this worker's code. It reports whether a
// run was ended.
func RetireQuestions(ctx context.Context, c client.Client, host string) (bool, error) {
	err := c.TerminateWorkflow(ctx, api.HostQuestionsID(host), "", "a worker of host "+host+" started: the next question starts a run on its code")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}
