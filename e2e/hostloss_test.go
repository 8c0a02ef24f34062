package e2e

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

// A host whose worker is killed and not restarted mid-start: the run,
// on the control queue (served here by a worker without libvirt, as on a
// machine that is not a hypervisor), fails once the host's next step has
// waited the run's host timeout, tries no undo on the silent host, names
// what is left there, and frees the cluster: once the worker is back,
// destroy leaves nothing.
func TestAHostLostMidStartFailsWithinTheHostTimeout(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	control := hostworker.NewControl(e.ts.GetDefaultClient(), hostworker.ControlOptions{})
	require.NoError(t, control.Start())
	t.Cleanup(control.Stop)
	bin := buildWorker(t)
	host := e.startWorkerProcess(bin)

	c := e.ts.GetDefaultClient()
	const hostTimeout = 8 * time.Second
	run := e.submitStart(api.Options{HostTimeout: hostTimeout})
	waitForStep(t, c, run, "pool ")
	require.NoError(t, host.Process.Signal(syscall.SIGKILL))
	_, _ = host.Process.Wait()
	killed := time.Now()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := run.Get(ctx, nil)
	require.Error(t, err, "the run ends without its host")
	// The time it took: the step running at the kill waits out its
	// heartbeat timeout, its retry the host timeout (a figure, not an
	// assertion).
	t.Logf("the run failed %s after the host's worker was killed (heartbeat timeout %s, host timeout %s)",
		time.Since(killed).Round(100*time.Millisecond), api.DefaultHeartbeatTimeout, hostTimeout)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	msg := appErr.Message()
	assert.Contains(t, msg, "host "+e.host+" did not answer: no worker took the step from task queue "+api.TaskQueue(e.host)+" within 8s")
	assert.Contains(t, msg, "COULD NOT UNDO: ")
	assert.Contains(t, msg, "not tried, host "+e.host+" did not answer")
	assert.Contains(t, msg, "pool "+e.cluster+"-pool: not tried", "what is left on the host is named")
	assert.Contains(t, msg, "left on host "+e.host+", which did not answer: run `hpcvm destroy` once its worker is back")
	var f api.Failure
	require.NoError(t, appErr.Details(&f))
	assert.Empty(t, f.RolledBack, "nothing was tried on the silent host")
	assert.NotEmpty(t, f.NotUndone)

	// The cluster is free: the next operation is not refused as busy.
	e.startWorkerProcess(bin)
	code, out := e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
	code, out = e.hpcvm("list")
	require.Equal(t, cli.ExitOK, code, out)
	assert.True(t, strings.Contains(out, e.cluster), out)
}
