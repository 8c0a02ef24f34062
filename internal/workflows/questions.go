package workflows

import (
	"fmt"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/workflow"
)

// HostQuestions answers questions about its host, any number at once,
// until it continues as new. It holds no state that matters: a run that
// is terminated (or a namespace that never had one) only means the next
// question starts a new run.
func HostQuestions(ctx workflow.Context, st api.HostQuestionsState) error {
	// The host's questions run on its own queue, and so do their steps.
	if queue := workflow.GetInfo(ctx).TaskQueueName; queue != api.TaskQueue(st.Host) {
		return badRequest(fmt.Errorf("the questions of host %q were started on task queue %q: nothing was done; start them on task queue %q (the hpcvm CLI does)", st.Host, queue, api.TaskQueue(st.Host)))
	}
	perRun := st.PerRun
	if perRun <= 0 {
		perRun = api.DefaultQuestionsPerRun
	}
	answered := 0
	summary := func() {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("Answers read-only questions about host %s (status, plan, validate, audit); %d answered so far.", st.Host, st.Answered+answered))
	}
	summary()
	handlers := map[string]any{
		api.QuestionDescribe: func(ctx workflow.Context, req api.Request) (api.Description, error) {
			answered++
			return DescribeCluster(ctx, req)
		},
		api.QuestionPlan: func(ctx workflow.Context, req api.Request) (api.PlanReport, error) {
			answered++
			return PlanCluster(ctx, req)
		},
		api.QuestionAudit: func(ctx workflow.Context, req api.AuditRequest) (api.AuditLog, error) {
			answered++
			return HostAudit(ctx, req)
		},
		api.QuestionPendingHostChanges: func(ctx workflow.Context, req api.PendingRequest) (api.PendingChanges, error) {
			answered++
			return PendingHostChanges(ctx, req)
		},
	}
	for _, name := range []string{api.QuestionDescribe, api.QuestionPlan, api.QuestionAudit, api.QuestionPendingHostChanges} {
		if err := workflow.SetUpdateHandler(ctx, name, handlers[name]); err != nil {
			return err
		}
	}
	for answered < perRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
		seen := answered
		if err := workflow.Await(ctx, func() bool {
			return answered != seen || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		}); err != nil {
			return err
		}
		summary()
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	st.Answered += answered
	return workflow.NewContinueAsNewError(ctx, api.HostQuestionsName, st)
}
