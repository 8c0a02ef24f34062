package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/workflows"
	"github.com/stretchr/testify/assert"
)

func TestLiveViewDrawsTheUploadAndWhatRuns(t *testing.T) {
	var out bytes.Buffer
	v := newLiveView(&out)
	steps := []workflows.Step{
		{Name: "network lab-network", Status: workflows.StepDone},
		{Name: "pool lab-pool", Status: workflows.StepDone},
		{Name: "base image lab-base.qcow2", Status: workflows.StepRunning},
	}
	const size = 3 << 30
	for _, sent := range []int64{256 << 20, 1 << 30, 2 << 30} {
		v.update(steps, &activities.UploadProgress{Offset: sent - 64<<20, Sent: sent, Source: activities.SourceStat{Size: size}})
		time.Sleep(120 * time.Millisecond) // the bar redraws at most every 100 ms
	}
	drawn := out.String()
	assert.Contains(t, drawn, "base image")
	assert.Contains(t, drawn, "2.1/3.2 GB", "bytes sent of the image")
	assert.Contains(t, drawn, "GB/s", "the rate")
	assert.Regexp(t, `\[\d+s:\d+s\]`, drawn, "time spent and time left")

	// The upload ends: the live line shows what runs.
	steps[2].Status = workflows.StepDone
	steps = append(steps, workflows.Step{Name: "domain lab-compute-01", Status: workflows.StepRunning})
	out.Reset()
	v.update(steps, nil)
	time.Sleep(120 * time.Millisecond)
	v.update(steps, nil)
	assert.Contains(t, out.String(), "3 done · running: domain lab-compute-01")

	out.Reset()
	v.printAbove("  done         domain lab-compute-01")
	assert.Contains(t, out.String(), "  done         domain lab-compute-01\n")
	v.finishBar()
}

func TestRunningLine(t *testing.T) {
	var steps []workflows.Step
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		steps = append(steps, workflows.Step{Name: n, Status: workflows.StepRunning})
	}
	steps = append(steps, workflows.Step{Name: "x", Status: workflows.StepFailed})
	assert.Equal(t, "1 done · running: a, b, c and 2 more", runningLine(steps))
	assert.Equal(t, "0 done", runningLine(nil))
	assert.False(t, isTerminal(&bytes.Buffer{}))
	assert.True(t, strings.HasPrefix(runningLine(steps[:1]), "0 done · running: a"))
}
