//go:build record

// The history recorder is a tool, not a test: it is built only with the
// "record" tag, so a plain `go test` (and CI) neither runs nor skips it.
//
//	HPCVM_RECORD_HISTORIES=v2 go test -tags record -count=1 -run 'TestRecordHistories$' ./workflows/

package workflows

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
)

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
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.NewClientWithOptions(client.Options{Identity: recorderIdentity, Logger: quiet})
	fake := &fakeActivities{}
	w := worker.New(c, TaskQueue("hv1"), worker.Options{Identity: recorderIdentity})
	Register(w)
	registerFakeActivities(t, w, fake)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop) // before the server stops

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
	id, input := WorkflowID(req.Spec.Cluster.Name)+"-"+sc.name, any(req)
	if sc.questions != nil {
		id, input = HostQuestionsID(sc.questions.Host)+"-"+sc.name, *sc.questions
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: TaskQueue(req.Spec.Cluster.Host),
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
