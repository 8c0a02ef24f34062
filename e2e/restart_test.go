//go:build libvirtdrestart

// This file restarts the test libvirtd, which would fail every other test
// talking to it at that moment: it is built only with the libvirtdrestart
// tag, and `make test` runs it alone, after the rest of the suite.

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
)

// libvirtd restarted in the middle of a start: every step still succeeds at
// its first attempt. The worker's pooled connections are all dead after
// the restart; each call that finds one dead waits for libvirtd to answer
// again and runs once more on a fresh connection.
func TestLibvirtdRestartedMidRun(t *testing.T) {
	pidFile := "/run/hpcvm-test/libvirtd.pid"
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err, "this test restarts the libvirtd that scripts/libvirtd-up.sh started (its PID is in %s); it never touches another one", pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	require.NoError(t, err, "the recorded libvirtd %d is not running", pid)
	require.Equal(t, "libvirtd", strings.TrimSpace(string(comm)))

	e := newEnv(t)
	e.writeSpec(clusterFile{computes: []string{"compute-01", "compute-02", "compute-03", "compute-04", "compute-05"}})
	e.startWorker() // in-process: its libvirt client is e.lv
	c := e.ts.GetDefaultClient()
	run := e.submitStart(api.Options{})
	waitForStep(t, c, run, "base image ")

	began := time.Now()
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			break
		}
		require.True(t, time.Now().Before(deadline), "libvirtd %d did not stop within 30 s", pid)
	}
	// The run was still going when libvirtd went: the restart is mid-run.
	d, err := c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus(), "the run ended before libvirtd stopped")
	out, err := exec.Command("bash", "../scripts/libvirtd-up.sh").CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("libvirtd restarted in %s", time.Since(began).Round(10*time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, run.Get(ctx, nil), "the run completes across the restart")
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	names := map[int64]string{}
	steps := 0
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			names[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			steps++
			assert.Equal(t, int32(1), a.GetAttempt(), "%s needed another attempt: %v", names[a.GetScheduledEventId()], a.GetLastFailure())
		}
	}
	t.Logf("%d steps, each at its first attempt", steps)
	code, text := e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, text)
	assert.Empty(t, e.leftovers())
}
