package workflows

import (
	"fmt"

	"github.com/hpcvm/hpcvm/activities"
	"go.temporal.io/sdk/workflow"
)

// HostQuestionsName is the long-lived workflow of a host that answers the
// read-only questions of `hpcvm status`, `start --wait-ip`, `list --live`,
// `validate`, `plan`, `audit` and start's look at pending host changes.
//
// Each question is an update of this one run, not a workflow run of its
// own: a `status` polled every two seconds used to leave a run per poll in
// the namespace, burying the start, stop and destroy runs an operator
// looks for in the Web UI. The answers are the same functions the old
// one-question workflows ran (they stay registered for clients of an
// older hpcvm), so a question reads the host exactly as before.
const HostQuestionsName = "HostQuestions"

// HostQuestionsID is the workflow ID of a host's questions workflow.
// It does not share the clusters' prefix (WorkflowID), so `hpcvm list`
// never takes it for a cluster.
func HostQuestionsID(host string) string { return "hpcvm-questions-" + host }

// The questions (update names) HostQuestions answers.
const (
	// QuestionDescribe: Request → Description (DescribeCluster).
	QuestionDescribe = "describe"
	// QuestionPlan: Request → PlanReport (PlanCluster).
	QuestionPlan = "plan"
	// QuestionAudit: activities.AuditRequest → activities.AuditLog (HostAudit).
	QuestionAudit = "audit"
	// QuestionPendingHostChanges: activities.PendingRequest →
	// activities.PendingChanges (PendingHostChanges).
	QuestionPendingHostChanges = "pending-host-changes"
)

// HostQuestionsState is carried from one run to the next.
type HostQuestionsState struct {
	Host string `json:"host"`
	// Answered counts the questions of every run so far (for the Web UI's
	// summary and for the operator's curiosity; nothing depends on it).
	Answered int `json:"answered"`
	// PerRun bounds one run's history: after this many questions (or when
	// the server suggests it, as a plan with its XML is large) the run
	// continues as new. The updates of a run are replayed when a worker
	// restarts, so a short history also keeps that cheap. 0 means
	// DefaultQuestionsPerRun. Part of the input, so that a replay ends
	// its run where the recorded one did.
	PerRun int `json:"per_run,omitempty"`
}

// DefaultQuestionsPerRun is HostQuestionsState.PerRun's default.
const DefaultQuestionsPerRun = 200

// HostQuestions answers questions about its host, any number at once,
// until it continues as new. It holds no state that matters: a run that
// is terminated (or a namespace that never had one) only means the next
// question starts a new run.
func HostQuestions(ctx workflow.Context, st HostQuestionsState) error {
	if err := refuseOtherHost(ctx, st.Host); err != nil {
		return err
	}
	perRun := st.PerRun
	if perRun <= 0 {
		perRun = DefaultQuestionsPerRun
	}
	answered := 0
	summary := func() {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("Answers read-only questions about host %s (status, plan, validate, audit); %d answered so far.", st.Host, st.Answered+answered))
	}
	summary()
	handlers := map[string]any{
		QuestionDescribe: func(ctx workflow.Context, req Request) (Description, error) {
			answered++
			return DescribeCluster(ctx, req)
		},
		QuestionPlan: func(ctx workflow.Context, req Request) (PlanReport, error) {
			answered++
			return PlanCluster(ctx, req)
		},
		QuestionAudit: func(ctx workflow.Context, req activities.AuditRequest) (activities.AuditLog, error) {
			answered++
			return HostAudit(ctx, req)
		},
		QuestionPendingHostChanges: func(ctx workflow.Context, req activities.PendingRequest) (activities.PendingChanges, error) {
			answered++
			return PendingHostChanges(ctx, req)
		},
	}
	for _, name := range []string{QuestionDescribe, QuestionPlan, QuestionAudit, QuestionPendingHostChanges} {
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
	return workflow.NewContinueAsNewError(ctx, HostQuestionsName, st)
}
