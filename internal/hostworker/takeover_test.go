package hostworker

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestDeadOnThisMachine(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	boot, machine := bootID(), machineID()
	require.NotEmpty(t, boot)
	require.NotEmpty(t, machine)
	ns, err := pidNamespace()
	require.NoError(t, err)
	id := func(pid int, ticks uint64, ns uint64, boot, machine string) string {
		return fmt.Sprintf("hpcvm-worker h1 pid %d started %d pidns %d boot %s machine %s@%s", pid, ticks, ns, boot, machine, host)
	}

	self := Identity("h1")
	require.True(t, strings.HasPrefix(self, "hpcvm-worker h1 pid "), self)
	require.Regexp(t, identityPattern, self, "this process can describe itself")
	assert.False(t, deadOnThisMachine(self), "this very process runs")

	// A worker process that ran and is gone.
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	ticks, zombie, err := processStart(cmd.Process.Pid)
	require.NoError(t, err)
	require.False(t, zombie)
	gone := id(cmd.Process.Pid, ticks, ns, boot, machine)
	assert.False(t, deadOnThisMachine(gone), "it still runs")
	require.NoError(t, cmd.Process.Kill())
	// Killed but not yet reaped (waited for without reaping): a zombie is
	// dead.
	var info unix.Siginfo
	require.NoError(t, unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil))
	_, zombie, err = processStart(cmd.Process.Pid)
	require.NoError(t, err)
	require.True(t, zombie)
	assert.True(t, deadOnThisMachine(gone), "killed, not yet reaped")
	_ = cmd.Wait()
	assert.True(t, deadOnThisMachine(gone), "killed and reaped")

	mine, _, err := processStart(os.Getpid())
	require.NoError(t, err)
	for identity, dead := range map[string]bool{
		// the pid runs, but it is another process: it started at another time
		id(os.Getpid(), mine+1, ns, boot, machine): true,
		// the machine booted since
		id(os.Getpid(), mine, ns, "another-boot", machine): true,
		// another machine (same hostname): nothing can be told from here
		id(999999, 1, ns, "another-boot", "another-machine"): false,
		// another pid namespace (a container): its pids mean nothing here
		id(999999, 1, ns+1, boot, machine): false,
		// not an hpcvm worker's identity (the SDK's default one), or one
		// a worker that could not describe itself gave
		"12345@" + host + "@":            false,
		"hpcvm-worker h1 pid 12345@host": false,
		"":                               false,
	} {
		assert.Equal(t, dead, deadOnThisMachine(identity), identity)
	}
}
