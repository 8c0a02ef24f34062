package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

// A start cancelled in the middle removes what it had created, on the real
// libvirtd, and ends cancelled.
func TestCancelledStartRollsBack(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()

	c := e.ts.GetDefaultClient()
	run := e.submitStart(api.Options{})

	waitForStep(t, c, run, "pool ")
	require.NoError(t, c.CancelWorkflow(context.Background(), run.GetID(), run.GetRunID()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run.Get(ctx, nil)
	var canceled *temporal.CanceledError
	require.True(t, errors.As(err, &canceled), "the run ends cancelled, got %v", err)
	var f api.Failure
	require.NoError(t, canceled.Details(&f))
	assert.Contains(t, f.RolledBack, "network "+e.cluster+"-network")
	assert.Contains(t, f.RolledBack, "pool "+e.cluster+"-pool")
	assert.Empty(t, f.NotUndone)
	assert.Empty(t, e.leftovers(), "a cancelled start leaves nothing behind")
}
