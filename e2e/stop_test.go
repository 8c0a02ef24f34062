package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A stop right after a start finds guests still booting, deaf to the ACPI
// power button: it waits for each to answer (its guest agent connects, or
// it takes a fresh lease) before pressing, within the stop's timeout, so
// every guest shuts down cleanly instead of being forced off when the
// timeout ends.
func TestStopRightAfterStartShutsDownCleanly(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	began := time.Now()
	code, out = e.hpcvm("stop")
	took := time.Since(began)
	require.Equal(t, cli.ExitOK, code, out)
	t.Logf("stop right after start took %s", took.Round(time.Millisecond))
	assert.Contains(t, out, "3 shut down cleanly, 0 forced off")
	assert.Equal(t, 3, strings.Count(out, "had booted"), "stop says which guests it waited for:\n%s", out)
	assert.Contains(t, out, "before pressing its power button")
	for _, vm := range []string{"controller-01", "compute-01", "compute-02"} {
		st, err := e.lv.DomainState(e.cluster + "-" + vm)
		require.NoError(t, err)
		assert.Equal(t, "shut off", string(st), vm)
	}

	// Guests that have taken their leases answer: a stop after
	// `start --wait-ip` presses at once, and has nothing to say of it.
	code, out = e.hpcvm("start", "--wait-ip")
	require.Equal(t, cli.ExitOK, code, out)
	code, out = e.hpcvm("stop")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "3 shut down cleanly, 0 forced off")
	assert.NotContains(t, out, "had booted")

	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
}
