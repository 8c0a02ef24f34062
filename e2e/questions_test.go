package e2e

import (
	"context"
	"sort"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// The read-only questions (status, plan, validate, audit, list --live) are
// updates of the host's one questions workflow: asking them leaves no run
// in the namespace, so the Web UI lists what operators did.
func TestReadOnlyQuestionsLeaveNoRuns(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	// The first question starts the host's questions workflow.
	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "running")
	e.waitForRuns("WorkflowType = '"+api.HostQuestionsName+"'", 1)
	before := e.allRuns()

	for i := 0; i < 5; i++ {
		code, out = e.hpcvm("status")
		require.Equal(t, cli.ExitOK, code, out)
	}
	for _, args := range [][]string{{"plan"}, {"validate"}, {"audit"}, {"list", "--live"}, {"inventory"}} {
		code, out = e.hpcvm(args...)
		require.Equal(t, cli.ExitOK, code, "%v: %s", args, out)
	}
	assert.Contains(t, out, "controller-01")
	// An operation's run is listed once visibility has caught up with what
	// came before it: then the list is what it was plus that run.
	code, out = e.hpcvm("stop")
	require.Equal(t, cli.ExitOK, code, out)
	stopRun := e.waitForRuns("WorkflowType = '"+api.StopClusterName+"'", 1)
	require.Len(t, stopRun, 1)
	want := append(before, api.StopClusterName+" "+stopRun[0])
	sort.Strings(want)
	assert.Equal(t, want, e.allRuns(), "a read-only question started a workflow run")

	// They were answered by one run, which says so in the Web UI.
	questions := e.waitForRuns("WorkflowType = '"+api.HostQuestionsName+"'", 1)
	assert.Len(t, questions, 1)
	desc, err := e.ts.GetDefaultClient().DescribeWorkflowExecution(context.Background(), api.HostQuestionsID(e.host), "")
	require.NoError(t, err)
	assert.Contains(t, desc.GetWorkflowExtendedInfo().String()+desc.GetExecutionConfig().GetUserMetadata().GetSummary().String(), "questions")

	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
}

// allRuns is every run in the test's namespace, by run ID, sorted.
func (e *env) allRuns() []string {
	e.t.Helper()
	c := e.ts.GetDefaultClient()
	var ids []string
	var token []byte
	for {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token})
		require.NoError(e.t, err)
		for _, ex := range resp.GetExecutions() {
			ids = append(ids, ex.GetType().GetName()+" "+ex.GetExecution().GetRunId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Strings(ids)
	return ids
}

// A questions run whose workflow task keeps failing (here: a run of a type
// the worker does not know, as an older worker would see HostQuestions)
// holds nothing: status ends it and asks a new run. A worker that starts
// ends the host's questions run, so that its own code answers.
func TestAStuckQuestionsRunIsReplaced(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	c := e.ts.GetDefaultClient()
	id := api.HostQuestionsID(e.host)
	stuck, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: api.TaskQueue(e.host)}, "NoSuchWorkflow")
	require.NoError(t, err)

	code, out := e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "absent")
	desc, err := c.DescribeWorkflowExecution(context.Background(), id, stuck.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_TERMINATED, desc.GetWorkflowExecutionInfo().GetStatus())

	retired, err := hostworker.RetireQuestions(context.Background(), c, e.host)
	require.NoError(t, err)
	assert.True(t, retired, "the run status started is ended")
	retired, err = hostworker.RetireQuestions(context.Background(), c, e.host)
	require.NoError(t, err)
	assert.False(t, retired, "no run is left to end")
	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
}
