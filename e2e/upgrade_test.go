package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// A worker is upgraded under a running start: the start begun by one
// release completes on the next, whose StartCluster changed with version
// markers (README.md, "Upgrading a worker"; the change is the drill's,
// internal/workflows/upgradedrill.go). First the same change without its markers
// is tried on the run: it fails its workflow task as nondeterministic and
// changes nothing, which shows the drill can fail; the guarded release
// then finishes the run.
func TestWorkerUpgradedUnderARunningStart(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	previous := buildWorker(t)
	upgraded := buildWorker(t, "upgradedrill")
	unguarded := buildWorker(t, "upgradedrill", "upgradedrill_unguarded")

	c := e.ts.GetDefaultClient()
	old := e.startWorkerProcess(previous)
	run := e.submitStart(api.Options{})
	waitForStep(t, c, run, "pool ")
	require.NoError(t, old.Process.Signal(syscall.SIGKILL))
	_, _ = old.Process.Wait()

	// The unguarded change: its replay of the run does not match.
	bad := e.startWorkerProcess(unguarded)
	failed := waitForEvent(t, c, run, func(ev *historypb.HistoryEvent) bool {
		f := ev.GetWorkflowTaskFailedEventAttributes()
		return f != nil && f.GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
	})
	t.Logf("the unguarded release failed the run's workflow task: %s", firstLine(failed.GetWorkflowTaskFailedEventAttributes().GetFailure().GetMessage()))
	require.NoError(t, bad.Process.Signal(syscall.SIGKILL))
	_, _ = bad.Process.Wait()

	// The guarded release takes the run over and finishes it.
	good := e.startWorkerProcess(upgraded)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var res api.StartResult
	require.NoError(t, run.Get(ctx, &res), "the run begun by the previous release completes on the upgraded worker")
	assert.Contains(t, strings.Join(res.Notes, "\n"), "upgrade drill: the end of this run was executed by the upgraded worker")
	var markers []string
	var lastIdentity string
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if m := ev.GetMarkerRecordedEventAttributes(); m != nil {
			markers = append(markers, m.String())
		}
		if wt := ev.GetWorkflowTaskCompletedEventAttributes(); wt != nil {
			lastIdentity = wt.GetIdentity()
		}
	}
	joined := strings.Join(markers, "\n")
	assert.Contains(t, joined, "upgrade-drill-end", "the change after the point the previous release reached was taken")
	assert.NotContains(t, joined, "upgrade-drill-begin", "the change before it was not: the run replays as it began")
	assert.Contains(t, lastIdentity, fmt.Sprintf("pid %d ", good.Process.Pid), "the upgraded worker completed the run")

	code, out := e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Status: running")
	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
}

// waitForEvent polls the run's history until an event matches.
func waitForEvent(t *testing.T, c client.Client, run client.WorkflowRun, match func(*historypb.HistoryEvent) bool) *historypb.HistoryEvent {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		it := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				break
			}
			if match(ev) {
				return ev
			}
		}
	}
	t.Fatalf("no matching event in the history of %s", run.GetID())
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
