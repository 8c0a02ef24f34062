package hostworker

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeadOnThisMachine(t *testing.T) {
	machine, err := os.Hostname()
	require.NoError(t, err)
	boot := bootID()
	require.NotEmpty(t, boot)

	assert.False(t, deadOnThisMachine(Identity("h1")), "this very process runs")

	// A worker process that ran and is gone.
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	ticks, err := processStart(cmd.Process.Pid)
	require.NoError(t, err)
	gone := fmt.Sprintf("hpcvm-worker h1 pid %d started %d boot %s@%s", cmd.Process.Pid, ticks, boot, machine)
	assert.False(t, deadOnThisMachine(gone), "it still runs")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	assert.True(t, deadOnThisMachine(gone), "it was killed")

	self, err := processStart(os.Getpid())
	require.NoError(t, err)
	for identity, dead := range map[string]bool{
		// the pid runs, but it is another process: it started at another time
		fmt.Sprintf("hpcvm-worker h1 pid %d started %d boot %s@%s", os.Getpid(), self+1, boot, machine): true,
		// the machine booted since
		fmt.Sprintf("hpcvm-worker h1 pid %d started %d boot another-boot@%s", os.Getpid(), self, machine): true,
		// another machine: nothing can be told from here
		fmt.Sprintf("hpcvm-worker h1 pid 999999 started 1 boot %s@another-%s", boot, machine): false,
		// not an hpcvm worker's identity (the SDK's default one)
		"12345@" + machine + "@": false,
		"":                       false,
	} {
		assert.Equal(t, dead, deadOnThisMachine(identity), identity)
	}
}
