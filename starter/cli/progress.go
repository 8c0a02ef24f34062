package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/workflows"
	"github.com/schollz/progressbar/v3"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/term"
)

// isTerminal says out is a terminal a live display can redraw.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// liveView shows a run on a terminal: each step that ends as a line, and
// below them one live line: the base image upload as a bar with bytes,
// rate and time left, or else what is running now.
type liveView struct {
	out       io.Writer
	bar       *progressbar.ProgressBar
	uploading bool
	started   time.Time
}

func newLiveView(out io.Writer) *liveView { return &liveView{out: out, started: time.Now()} }

// printAbove prints a line above the live one.
func (v *liveView) printAbove(line string) {
	if v.bar != nil {
		_ = v.bar.Clear()
	}
	fmt.Fprintln(v.out, line)
	if v.bar != nil {
		_ = v.bar.RenderBlank()
	}
}

// update redraws the live line from the run's steps and its pending upload.
func (v *liveView) update(steps []workflows.Step, upload *activities.UploadProgress) {
	if upload != nil && upload.Source.Size > 0 {
		if !v.uploading {
			v.finishBar()
			v.bar = progressbar.NewOptions64(upload.Source.Size,
				progressbar.OptionSetWriter(v.out),
				progressbar.OptionSetDescription("base image"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionShowElapsedTimeOnFinish(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
			v.uploading = true
		}
		sent := upload.Sent
		if sent == 0 {
			sent = upload.Offset
		}
		_ = v.bar.Set64(sent)
		return
	}
	if v.uploading {
		v.finishBar()
	}
	if v.bar == nil {
		v.bar = progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(v.out),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	v.bar.Describe(runningLine(steps))
	_ = v.bar.Add(1)
}

func (v *liveView) finishBar() {
	if v.bar != nil {
		_ = v.bar.Clear()
		_ = v.bar.Exit()
	}
	v.bar, v.uploading = nil, false
}

// runningLine is "N done · running: a, b and 3 more".
func runningLine(steps []workflows.Step) string {
	var running []string
	done := 0
	for _, s := range steps {
		if s.Status == workflows.StepRunning {
			running = append(running, s.Name)
		} else {
			done++
		}
	}
	line := fmt.Sprintf("%d done", done)
	if len(running) > 0 {
		shown := running[:min(len(running), 3)]
		line += " · running: " + strings.Join(shown, ", ")
		if more := len(running) - len(shown); more > 0 {
			line += fmt.Sprintf(" and %d more", more)
		}
	}
	return line
}

// pendingUpload is the heartbeat of the run's base image upload, if one
// is running.
func pendingUpload(ctx context.Context, c client.Client, run client.WorkflowRun) *activities.UploadProgress {
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil
	}
	for _, p := range desc.GetPendingActivities() {
		if p.GetActivityType().GetName() != activities.ActUploadBaseImage || p.GetHeartbeatDetails() == nil {
			continue
		}
		var up activities.UploadProgress
		if converter.GetDefaultDataConverter().FromPayloads(p.GetHeartbeatDetails(), &up) == nil {
			return &up
		}
	}
	return nil
}
