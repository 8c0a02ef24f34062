package e2e

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// A second start with another spec while a start runs is refused with what
// differs, even with no worker up (the running run answers before the
// worker check); the identical start attaches to the running run.
func TestCLIStartWithAnotherSpecIsRefusedTheSameAttaches(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	// No worker yet: the first start waits in the queue, holding the cluster.
	first := e.submitStart(api.Options{})

	original := e.config
	other := filepath.Join(e.poolRoot, "other.yaml")
	writeFile(t, other, strings.Replace(readFile(t, original), "name: compute-02", "name: compute-03", 1))
	e.config = other
	code, out := e.hpcvm("start")
	e.config = original
	require.Equal(t, cli.ExitBusy, code, out)
	assert.Contains(t, out, `spec.compute_nodes[1].name: running "compute-02", yours "compute-03"`)
	assert.Contains(t, out, "StartCluster (workflow "+api.WorkflowID(e.cluster)+", run "+first.GetRunID()+") has been running since")
	assert.NotContains(t, out, "no hpcvm-worker", "the busy answer comes before the worker check")

	// Another operation is refused as well, naming the running one.
	code, out = e.hpcvm("stop")
	require.Equal(t, cli.ExitBusy, code, out)
	assert.Contains(t, out, "StartCluster (workflow "+api.WorkflowID(e.cluster))

	// The identical request attaches, also while no worker runs; it then
	// reports the first run's result once a worker picks the run up.
	attached := e.hpcvmInBackground("start")
	attached.waitForOutput(t, "already running: following it", time.Minute)
	e.startWorker()
	e.mustLeaveNothing()
	code, out = attached.wait(t, 3*time.Minute)
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "run "+first.GetRunID()+" of workflow")
	assert.Contains(t, out, "cluster "+e.cluster+" is running")
}

// A stop with another --timeout than the running stop's is refused with
// both timeouts as durations.
func TestCLIStopWithAnotherTimeoutIsRefused(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	spec, err := cluster.Load(e.config)
	require.NoError(t, err)
	// Submitted as the CLI would, to a host no worker serves yet, so it
	// keeps running.
	_, err = e.ts.GetDefaultClient().ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: api.WorkflowID(e.cluster), TaskQueue: api.TaskQueue(e.host),
	}, api.StopClusterName, api.Request{Spec: spec, Options: api.Options{ShutdownTimeout: 30 * time.Second}})
	require.NoError(t, err)

	code, out := e.hpcvm("stop", "--timeout", "1m")
	require.Equal(t, cli.ExitBusy, code, out)
	assert.Contains(t, out, "options.shutdown_timeout: running 30s, yours 1m0s")

	code, out = e.hpcvm("cancel", "--force")
	require.Equal(t, cli.ExitOK, code, out)
}

// A start to a host no worker serves is refused before anything is
// submitted; a worker of another host does not count.
func TestCLIStartToUnservedHostSubmitsNothing(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	served := e.host
	e.host = "e2e-other-" + randomSuffix()
	e.startWorker()
	e.host = served

	began := time.Now()
	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitUnreachable, code, out)
	assert.Contains(t, out, "no hpcvm-worker serves host "+e.host)
	assert.Contains(t, out, "task queue "+api.TaskQueue(e.host))
	assert.Contains(t, out, "hpcvm-worker --host "+e.host)
	assert.Contains(t, out, "nothing was submitted")
	assert.Less(t, time.Since(began), 15*time.Second, "the refusal is prompt")

	_, err := e.ts.GetDefaultClient().DescribeWorkflowExecution(context.Background(), api.WorkflowID(e.cluster), "")
	var notFound *serviceerror.NotFound
	require.ErrorAs(t, err, &notFound, "no run was submitted")
	assert.Empty(t, e.leftovers())
}

// A worker started a moment ago counts: the CLI runs right after Start, as
// scripts and these tests do. Each round has a fresh host, so a fresh
// queue no one has polled before.
func TestCLIWorkerStartedAMomentAgoCounts(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	base := e.host
	defer func() { e.host = base }()
	for round := 0; round < 5; round++ {
		e.host = fmt.Sprintf("%s-%d", base, round)
		e.startWorker()
		// destroy of a cluster that does not exist: a full run through the
		// worker that creates nothing.
		code, out := e.hpcvm("destroy", "--yes", "--host", e.host)
		require.Equal(t, cli.ExitOK, code, "round %d: %s", round, out)
		assert.Contains(t, out, "deleted 0 object(s)")
	}
}

// cancel --force ends a run no worker serves, at once and without rollback,
// and frees the cluster for the next operation; plain cancel says no
// worker would answer and points at --force.
func TestCLICancelForceFreesTheCluster(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	run := e.submitStart(api.Options{})

	code, out := e.hpcvm("cancel")
	require.Equal(t, cli.ExitUnreachable, code, out)
	assert.Contains(t, out, "cancel of StartCluster")
	assert.Contains(t, out, "is requested, but no hpcvm-worker has polled task queue "+api.TaskQueue(e.host))
	assert.Contains(t, out, "hpcvm cancel --force")

	code, out = e.hpcvm("cancel", "--force")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "terminated StartCluster of cluster "+e.cluster)
	assert.Contains(t, out, "nothing was rolled back")
	assert.Contains(t, out, "`hpcvm destroy` removes everything the cluster owns")

	desc, err := e.ts.GetDefaultClient().DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_TERMINATED, desc.GetWorkflowExecutionInfo().GetStatus())

	code, out = e.hpcvm("cancel")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "no operation is running")

	// destroy needs a worker, and is not refused as busy.
	e.startWorker()
	e.mustLeaveNothing()
	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
}

// Plain cancel waits at most --wait: a run whose worker polls but never
// answers leaves the cancel pending (exit 5), and the run still running.
func TestCLICancelWaitIsBounded(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	// A worker on the host's queue that knows no hpcvm workflow: it polls,
	// so the CLI sees a worker, but the run never makes progress.
	deaf := worker.New(e.ts.GetDefaultClient(), api.TaskQueue(e.host), worker.Options{})
	deaf.RegisterWorkflowWithOptions(func(workflow.Context) error { return nil }, workflow.RegisterOptions{Name: "NotAnHpcvmWorkflow"})
	require.NoError(t, deaf.Start())
	t.Cleanup(deaf.Stop)
	run := e.submitStart(api.Options{})

	began := time.Now()
	code, out := e.hpcvm("cancel", "--wait", "3s")
	require.Equal(t, cli.ExitPending, code, out)
	assert.Contains(t, out, "is requested and still pending after 3s")
	assert.Contains(t, out, "hpcvm cancel --force")
	assert.Less(t, time.Since(began), 20*time.Second)

	desc, err := e.ts.GetDefaultClient().DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())

	code, out = e.hpcvm("cancel", "--force")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
}

// backgroundCLI is an hpcvm command running while the test goes on.
type backgroundCLI struct {
	out  lockedBuffer
	code chan int
}

// hpcvmInBackground runs the CLI like e.hpcvm, without waiting for it.
func (e *env) hpcvmInBackground(args ...string) *backgroundCLI {
	full := append([]string{args[0], "-c", e.config,
		"--temporal-address", e.ts.GetFrontendHostPort(), "--namespace", e.ts.GetDefaultNamespace()}, args[1:]...)
	b := &backgroundCLI{code: make(chan int, 1)}
	go func() { b.code <- cli.Main(full, strings.NewReader(""), &b.out, &b.out) }()
	return b
}

func (b *backgroundCLI) waitForOutput(t *testing.T, want string, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.out.String(), want) {
			return
		}
	}
	t.Fatalf("the CLI did not print %q within %s; it printed:\n%s", want, within, b.out.String())
}

func (b *backgroundCLI) wait(t *testing.T, within time.Duration) (int, string) {
	t.Helper()
	select {
	case code := <-b.code:
		t.Logf("background hpcvm → exit %d\n%s", code, b.out.String())
		return code, b.out.String()
	case <-time.After(within):
		t.Fatalf("the CLI did not end within %s; it printed:\n%s", within, b.out.String())
		return 0, ""
	}
}

// lockedBuffer is written by the CLI's goroutine and read by the test's.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
