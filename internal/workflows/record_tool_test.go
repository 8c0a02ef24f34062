//go:build record

// The history recorder is a tool, not a test: it is built only with the
// "record" tag, so a plain `go test` (and CI) neither runs nor skips it.
// It records on a Temporal server that runs beside it (the dev server), so
// the main module does not depend on the Temporal server's code:
//
//	bin/hpcvm-devserver --port 7533 --ui-port 0 --db-file "$(mktemp -d)/record.db" &
//	HPCVM_RECORD_TEMPORAL=127.0.0.1:7533 HPCVM_RECORD_HISTORIES=v2 \
//	  go test -tags record -count=1 -run 'TestRecordHistories$' ./internal/workflows/

package workflows

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

const (
	// recordTemporalEnv names the frontend (host:port) the recorder runs
	// the workflows on; recordNamespaceEnv its namespace (default "default").
	recordTemporalEnv  = "HPCVM_RECORD_TEMPORAL"
	recordNamespaceEnv = "HPCVM_RECORD_NAMESPACE"
)

// recordingClient connects to the Temporal server named by
// HPCVM_RECORD_TEMPORAL and makes sure no other worker serves the queue the
// scenarios run on: its real activities would act on this machine's libvirt,
// and the histories would not be the fake activities' scripts.
func recordingClient(t *testing.T, queue string, logger sdklog.Logger) client.Client {
	addr := os.Getenv(recordTemporalEnv)
	require.NotEmpty(t, addr, "%s names the Temporal frontend to record on (host:port). Start a dev server of your own: "+
		"`make build && bin/hpcvm-devserver --port 7533 --ui-port 0 --db-file \"$(mktemp -d)/record.db\"`, then %s=127.0.0.1:7533 "+
		"(`make up` runs one on 127.0.0.1:7233 too)", recordTemporalEnv, recordTemporalEnv)
	namespace := os.Getenv(recordNamespaceEnv)
	if namespace == "" {
		namespace = "default"
	}
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: namespace, Identity: recorderIdentity, Logger: logger})
	require.NoError(t, err, "connecting to the Temporal frontend %s=%s (is the dev server running?)", recordTemporalEnv, addr)
	t.Cleanup(c.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, kind := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		desc, err := c.DescribeTaskQueue(ctx, queue, kind)
		require.NoError(t, err, "describing task queue %s in namespace %s on %s", queue, namespace, addr)
		for _, p := range desc.GetPollers() {
			require.Equal(t, recorderIdentity, p.GetIdentity(),
				"worker %q serves %s (%s) on %s, namespace %s: record on a Temporal server of your own, where only the recorder's fake activities run",
				p.GetIdentity(), queue, kind, addr, namespace)
		}
	}
	return c
}

func TestRecordHistories(t *testing.T) {
	set := os.Getenv(recordHistoriesEnv)
	require.Regexp(t, recordingSetName, set, "%s names the recording set (lower-case letters, digits, '-')", recordHistoriesEnv)
	scenarios := historyScenarios()
	for _, sc := range scenarios {
		path := historyFile(sc.name, set)
		_, err := os.Stat(path)
		require.True(t, os.IsNotExist(err), "%s exists: recorded histories are never overwritten; record under a new set name (or delete the files of a set that was never committed)", path)
	}
	require.NoError(t, os.MkdirAll(historiesDir, 0o755))

	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c := recordingClient(t, api.TaskQueue("hv1"), quiet)
	_ = recordingClient(t, api.ControlQueue, quiet) // no one else serves it either
	fake := &fakeActivities{}
	// As a host's worker: the clusters' workflows on the control queue,
	// the host's activities (and its own workflows) on its queue.
	w := worker.New(c, api.TaskQueue("hv1"), worker.Options{Identity: recorderIdentity})
	Register(w)
	registerFakeActivities(t, w, fake)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop) // before the client closes
	control := worker.New(c, api.ControlQueue, worker.Options{Identity: recorderIdentity})
	Register(control)
	require.NoError(t, control.Start())
	t.Cleanup(control.Stop)

	for _, sc := range scenarios {
		if !t.Run(sc.name, func(t *testing.T) { recordScenario(t, c, fake, sc, set) }) {
			t.FailNow()
		}
	}
}

func recordScenario(t *testing.T, c client.Client, fake *fakeActivities, sc historyScenario, set string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req := sc.request(t)
	script := sc.script(t)
	fake.use(script)
	id, input, queue := api.WorkflowID(req.Spec.Cluster.Name)+"-"+sc.name, any(req), api.ControlQueue
	if sc.questions != nil {
		id, input, queue = api.HostQuestionsID(sc.questions.Host)+"-"+sc.name, *sc.questions, api.TaskQueue(sc.questions.Host)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: queue,
		// The server may keep an open run of an earlier, interrupted
		// recording under this ID: fail rather than record that run.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, sc.workflow, input)
	require.NoError(t, err)
	if sc.drive != nil {
		sc.drive(ctx, t, c, run, script)
	}
	var runErr error
	if sc.questions != nil {
		// run.Get would follow the run it continued as; this run is the
		// one recorded, and the next is not needed.
		awaitClosed(ctx, t, c, run)
		defer func() { _ = c.TerminateWorkflow(context.Background(), run.GetID(), "", "recorded") }()
	} else {
		runErr = run.Get(ctx, nil)
	}
	sc.check(t, run, runErr)

	hist := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	require.Equal(t, sc.closed, hist.Events[len(hist.Events)-1].GetEventType(), "the run ended otherwise than the scenario says")

	// Only a history the current code replays is written.
	replayer := worker.NewWorkflowReplayer()
	Register(replayer)
	require.NoError(t, replayer.ReplayWorkflowHistory(testLogger(t), hist))

	data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	path := historyFile(sc.name, set)
	require.NoError(t, os.WriteFile(path, append(data, '\n'), 0o644))
	t.Logf("recorded %s: %d events", path, len(hist.Events))
}

// awaitClosed waits until the run (not one it continued as) has closed.
func awaitClosed(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun) {
	for {
		desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		require.NoError(t, err)
		if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("run %s did not close: %v", run.GetRunID(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
