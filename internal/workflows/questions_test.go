package workflows

import (
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

func questionsEnv(t *testing.T, host string) (*testsuite.TestWorkflowEnvironment, *recorder) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, host)
	env.RegisterWorkflowWithOptions(HostQuestions, workflow.RegisterOptions{Name: api.HostQuestionsName})
	r := &recorder{}
	r.install(env)
	return env, r
}

// One run answers any number of questions, each as an update, and ends
// only by continuing as new with what it counted.
func TestHostQuestionsAnswersEachQuestionInOneRun(t *testing.T) {
	env, _ := questionsEnv(t, "hv1")
	env.OnActivity(a.ReadAuditLog, mock.Anything, mock.Anything).Return(api.AuditLog{Host: "hv1"}, nil)
	req := testRequest(t)
	var describe, plan, audit, pending updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.QuestionDescribe, "1", req, &describe)
		update(env, api.QuestionPlan, "2", req, &plan)
		update(env, api.QuestionAudit, "3", api.AuditRequest{Cluster: "lab"}, &audit)
		update(env, api.QuestionPendingHostChanges, "4", api.PendingRequest{Routing: &api.RoutingRequest{}}, &pending)
	}, 0)
	env.ExecuteWorkflow(api.HostQuestionsName, api.HostQuestionsState{Host: "hv1", Answered: 10, PerRun: 4})

	for name, o := range map[string]updateOutcome{"describe": describe, "plan": plan, "audit": audit, "pending": pending} {
		require.NoError(t, o.rejected, name)
		require.NoError(t, o.err, name)
	}
	d, ok := describe.value.(api.Description)
	require.True(t, ok, "%T", describe.value)
	assert.Equal(t, "lab", d.Plan.Cluster)
	r, ok := plan.value.(api.PlanReport)
	require.True(t, ok, "%T", plan.value)
	assert.True(t, r.OK(), "%+v", r.Checks)
	assert.Equal(t, api.AuditLog{Host: "hv1"}, audit.value)
	assert.Equal(t, api.PendingChanges{Routing: true}, pending.value)

	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can, "after PerRun questions the run continues as new")
	assert.Equal(t, api.HostQuestionsName, can.WorkflowType.Name)
	var next api.HostQuestionsState
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	assert.Equal(t, api.HostQuestionsState{Host: "hv1", Answered: 14, PerRun: 4}, next)
}

// A question whose answer fails (a bad file) fails that update only; the
// run answers the next question.
func TestHostQuestionsSurvivesAFailedAnswer(t *testing.T) {
	env, _ := questionsEnv(t, "hv1")
	bad := testRequest(t)
	bad.Spec.Cluster.Name = "Not A Name"
	var failed, after updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.QuestionDescribe, "1", bad, &failed)
		update(env, api.QuestionDescribe, "2", testRequest(t), &after)
	}, 0)
	env.ExecuteWorkflow(api.HostQuestionsName, api.HostQuestionsState{Host: "hv1", PerRun: 2})
	require.NoError(t, failed.rejected)
	require.Error(t, failed.err)
	require.NoError(t, after.err)
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
}

// A host's questions workflow started on another host's queue refuses to
// run: it would answer about the wrong machine.
func TestHostQuestionsRefusesAnotherHostsQueue(t *testing.T) {
	env, _ := questionsEnv(t, "hv2")
	env.ExecuteWorkflow(api.HostQuestionsName, api.HostQuestionsState{Host: "hv1"})
	require.Error(t, env.GetWorkflowError())
	assert.Contains(t, env.GetWorkflowError().Error(), "hv1")
}
