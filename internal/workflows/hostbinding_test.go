package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// onHost is a test environment whose runs are on host's task queue, as
// the CLI submits them.
func onHost(s *testsuite.WorkflowTestSuite, host string) *testsuite.TestWorkflowEnvironment {
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: api.TaskQueue(host)})
	return env
}

// buildLabOn composes cluster creation as a child on the given queue,
// right or wrong.
func buildLabOn(ctx workflow.Context, req api.Request, queue string) (api.StartResult, error) {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        api.WorkflowID(req.Spec.Cluster.Name),
		TaskQueue:         queue,
		ParentClosePolicy: enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	})
	var res api.StartResult
	err := workflow.ExecuteChildWorkflow(ctx, api.StartClusterName, req).Get(ctx, &res)
	return res, err
}

// A child workflow started on another host's queue creates nothing there
// and claims nothing in that host's ledger: the run is refused before its
// first activity.
func TestAChildOnAnotherHostsQueueIsRefusedBeforeAnything(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv2")
	Register(env)
	env.RegisterWorkflow(buildLabOn)
	r := &recorder{}
	r.install(env)
	env.ExecuteWorkflow(buildLabOn, testRequest(t), api.TaskQueue("hv2"))
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `cluster.host is "hv1", but this run was started on task queue "hpcvm.host.hv2", which is served by the worker of host hv2`)
	assert.Empty(t, r.calls, "no activity ran on the wrong host")
}

// Every cluster workflow refuses a request for another host's queue; on
// its own host's queue (older clients) it runs.
func TestEveryClusterWorkflowRefusesAnotherHostsRequest(t *testing.T) {
	for name, wf := range map[string]any{
		"start": StartCluster, "stop": StopCluster, "destroy": DestroyCluster, "describe": DescribeCluster, "plan": PlanCluster,
	} {
		t.Run(name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := onHost(&s, "hv2")
			r := &recorder{}
			r.install(env)
			env.ExecuteWorkflow(wf, testRequest(t))
			err := env.GetWorkflowError()
			require.Error(t, err)
			assert.Contains(t, err.Error(), `start it on task queue "hpcvm.control"`)
			assert.Empty(t, r.calls, "no activity ran on the wrong host")

			s2 := testsuite.WorkflowTestSuite{}
			env = onHost(&s2, "hv1")
			r = &recorder{}
			r.install(env)
			env.ExecuteWorkflow(wf, testRequest(t))
			if werr := env.GetWorkflowError(); werr != nil {
				assert.NotContains(t, werr.Error(), "task queue")
			}
			assert.NotEmpty(t, r.calls, "on its own host the run goes on")
		})
	}
}

// On the control queue, as the CLI submits them, every cluster workflow
// sends each of its steps to the queue of the cluster's host, bounded by
// the host timeout (the e2e TestAHostLostMidStart shows the bound).
func TestClusterWorkflowsOnTheControlQueueRouteStepsToTheHost(t *testing.T) {
	for name, wf := range map[string]any{
		"start": StartCluster, "stop": StopCluster, "destroy": DestroyCluster, "describe": DescribeCluster, "plan": PlanCluster,
	} {
		t.Run(name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: api.ControlQueue})
			r := &recorder{}
			r.install(env)
			var mu sync.Mutex
			queues := map[string]bool{}
			env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
				mu.Lock()
				defer mu.Unlock()
				queues[info.TaskQueue] = true
			})
			req := testRequest(t)
			req.Options.HostTimeout = 7 * time.Second
			env.ExecuteWorkflow(wf, req)
			if werr := env.GetWorkflowError(); werr != nil {
				assert.NotContains(t, werr.Error(), "task queue")
			}
			assert.NotEmpty(t, r.calls, "the run goes on")
			assert.Equal(t, map[string]bool{api.TaskQueue("hv1"): true}, queues, "every step on the host's queue")
		})
	}
}
