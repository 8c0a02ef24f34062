package cli

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
)

// lockedBuffer is written by the live view's drawing goroutine and read
// by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// drawn waits for the live view's next redraws and returns what it drew.
func drawn(out *lockedBuffer) string {
	time.Sleep(400 * time.Millisecond) // the block redraws every 150 ms
	return out.String()
}

func TestLiveViewDrawsTheUploadWhatRunsAndEachVM(t *testing.T) {
	out := &lockedBuffer{}
	v := newLiveView(out)
	steps := []api.Step{
		{Name: "network lab-network", Status: api.StepDone},
		{Name: "pool lab-pool", Status: api.StepDone},
		{Name: "base image lab-base.qcow2", Status: api.StepRunning},
	}
	const size = 3 << 30
	// Joined mid-upload: 2 GiB were sent before this client saw the run.
	// The rate is what it sees move (64 MiB per 100 ms here), not the
	// 2 GiB seen at once.
	for i, sent := range []int64{2 << 30, 2<<30 + 64<<20, 2<<30 + 128<<20, 2<<30 + 192<<20} {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		v.update(steps, &api.UploadProgress{Offset: sent - 64<<20, Sent: sent, Source: api.SourceStat{Size: size}})
	}
	text := drawn(out)
	assert.Contains(t, text, "base image")
	assert.Contains(t, text, "2.2 GiB / 3.0 GiB", "bytes sent of the image")
	assert.Regexp(t, `[0-9.]+ MiB/s`, text, "the rate, in MiB/s: not the GiB/s of counting the 2 GiB sent before")
	assert.Contains(t, text, "left ", "time left")
	assert.Contains(t, text, "2 of 3 steps done · running: base image lab-base.qcow2")

	// The upload ends; VMs are being made.
	steps[2].Status = api.StepDone
	steps = append(steps,
		api.Step{Name: "volume lab-compute-01.qcow2", Status: api.StepDone, VM: "compute-01"},
		api.Step{Name: "domain lab-compute-01", Status: api.StepRunning, VM: "compute-01"},
		api.Step{Name: "volume lab-controller.qcow2", Status: api.StepFailed, Detail: "pool full", VM: "controller"},
	)
	out.Reset()
	v.update(steps, nil)
	text = drawn(out)
	assert.Contains(t, text, "5 of 6 steps done · running: 1 on VMs")
	assert.Contains(t, text, "  compute-01  domain lab-compute-01")
	assert.Contains(t, text, "  controller  failed: volume lab-controller.qcow2 (pool full)")

	out.Reset()
	v.printAbove("  done         domain lab-compute-01")
	assert.Contains(t, drawn(out), "  done         domain lab-compute-01\n")
	v.finish()
}

func TestRunningLine(t *testing.T) {
	var steps []api.Step
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		steps = append(steps, api.Step{Name: n, Status: api.StepRunning})
	}
	steps = append(steps, api.Step{Name: "x", Status: api.StepFailed})
	assert.Equal(t, "1 of 6 steps done · running: a, b, c and 2 more", runningLine(steps))
	assert.Equal(t, "0 of 0 steps done", runningLine(nil))
	assert.False(t, isTerminal(&bytes.Buffer{}))
	assert.True(t, strings.HasPrefix(runningLine(steps[:1]), "0 of 1 steps done · running: a"))
}

func TestVMRowsPutBusyVMsFirstAndCountTheRest(t *testing.T) {
	var steps []api.Step
	for i := 1; i <= 30; i++ {
		vm := fmt.Sprintf("compute-%02d", i)
		status := api.StepDone
		if i%10 == 0 {
			status = api.StepRunning
		}
		steps = append(steps, api.Step{Name: "start lab-" + vm, Status: status, VM: vm})
	}
	steps = append(steps, api.Step{Name: "network lab-network", Status: api.StepRunning})
	rows := vmRows(steps, 5)
	assert.Len(t, rows, 5)
	assert.Equal(t, "  compute-10  start lab-compute-10", rows[0])
	assert.Equal(t, "  compute-30  start lab-compute-30", rows[2])
	assert.Equal(t, "  compute-01  done: start lab-compute-01", rows[3])
	assert.Equal(t, "  and 26 more VMs (0 at work, 0 waiting, 26 finished)", rows[4])

	assert.Len(t, vmRows(steps, 30), 30, "every VM on its own line when they fit")
	assert.Empty(t, vmRows(steps[30:], 5), "the cluster's shared steps make no VM row")

	// Steps planned and not begun: the VM waits, or has steps to go.
	planned := []api.Step{
		{Name: "volume a.qcow2", Status: api.StepDone, VM: "a"},
		{Name: "domain lab-a", Status: api.StepPending, VM: "a"},
		{Name: "volume b.qcow2", Status: api.StepPending, VM: "b"},
		{Name: "domain lab-b", Status: api.StepPending, VM: "b"},
	}
	assert.Equal(t, []string{"  a  done: volume a.qcow2, 1 step(s) to go", "  b  waiting (2 step(s) to go)"}, vmRows(planned, 5))
	assert.Equal(t, "1 of 4 steps done", runningLine(planned))
}
