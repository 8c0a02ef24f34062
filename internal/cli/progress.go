package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"golang.org/x/term"
)

// isTerminal says out is a terminal a live display can redraw: one that
// says how wide it is (a pseudo-terminal nobody sized reports 0 columns,
// where the block would be cut to nothing).
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0
}

// maxVMRows bounds the live block's lines about VMs, so a 100-VM run
// fits a terminal: the busy VMs come first, the rest are counted.
const maxVMRows = 10

// Live block priorities: lower is drawn higher.
const (
	prioritySummary = iota
	priorityUpload
	priorityVMRows
)

// liveView shows a run on a terminal: each step that ends as a line, and
// below them a live block redrawn in place: how many steps are done and
// what runs, the base image upload as a bar with bytes, rate and time
// left, and a line per VM saying what it is doing.
//
// mpb draws the block: it redraws several lines in place, prints lines
// above them, and keeps a moving average of the upload's rate, which
// progressbar/v3 (one line, rate averaged from the bar's creation, so a
// bar joined mid-upload started with a rate too high and a wrong time
// left) could not.
type liveView struct {
	p   *mpb.Progress
	out io.Writer
	// broken is set when mpb stopped (a write to the terminal failed):
	// the view then draws nothing and prints lines directly.
	broken bool

	mu      sync.Mutex
	summary string
	rows    []string // one per VM row bar, redrawn by the bars
	rowBars []*mpb.Bar
	status  *mpb.Bar

	upload     *mpb.Bar
	uploadSent int64     // bytes sent at the last heartbeat seen
	uploadSeen time.Time // when this client saw it
}

func newLiveView(out io.Writer) *liveView {
	v := &liveView{out: out, p: mpb.New(mpb.WithOutput(out), mpb.ForceTTY(), mpb.WithAutoRefresh(), mpb.WithRefreshRate(150*time.Millisecond))}
	v.status = v.add(0, mpb.NopStyle(), mpb.BarPriority(prioritySummary), mpb.BarRemoveOnComplete(), mpb.BarFillerTrim(),
		mpb.PrependDecorators(decor.Spinner(nil), decor.Name(" "), decor.Any(func(decor.Statistics) string {
			v.mu.Lock()
			defer v.mu.Unlock()
			return v.summary
		})),
		mpb.AppendDecorators(decor.Name(" · "), decor.Elapsed(decor.ET_STYLE_MMSS)))
	return v
}

// add adds a bar to the block; nil (and the view broken) once mpb has
// stopped.
func (v *liveView) add(total int64, filler mpb.BarFillerBuilder, options ...mpb.BarOption) *mpb.Bar {
	if v.broken {
		return nil
	}
	b, err := v.p.Add(total, filler.Build(), options...)
	if err != nil {
		v.broken = true
		return nil
	}
	return b
}

// printAbove prints a line above the live block.
func (v *liveView) printAbove(line string) {
	if !v.broken {
		if _, err := v.p.Write([]byte(line + "\n")); err == nil {
			return
		}
		v.broken = true
	}
	fmt.Fprintln(v.out, line)
}

// update redraws the live block from the run's steps and its pending upload.
func (v *liveView) update(steps []api.Step, upload *api.UploadProgress) {
	rows := vmRows(steps, maxVMRows)
	v.mu.Lock()
	v.summary = runningLine(steps)
	v.rows = rows
	v.mu.Unlock()
	if v.broken {
		return
	}
	for len(v.rowBars) < len(rows) {
		i := len(v.rowBars)
		bar := v.add(0, mpb.NopStyle(), mpb.BarPriority(priorityVMRows+i), mpb.BarRemoveOnComplete(), mpb.BarFillerTrim(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				v.mu.Lock()
				defer v.mu.Unlock()
				if i < len(v.rows) {
					return v.rows[i]
				}
				return ""
			})))
		if bar == nil {
			return
		}
		v.rowBars = append(v.rowBars, bar)
	}
	for len(v.rowBars) > len(rows) {
		last := len(v.rowBars) - 1
		v.rowBars[last].Abort(true)
		v.rowBars = v.rowBars[:last]
	}
	v.showUpload(upload)
}

// showUpload draws the upload's bar while one runs. Its rate is a moving
// average of what was sent between the heartbeats this client saw, so a
// bar joined mid-upload does not count the bytes sent before it.
func (v *liveView) showUpload(upload *api.UploadProgress) {
	if upload == nil || upload.Source.Size <= 0 {
		if v.upload != nil {
			v.upload.SetTotal(-1, true)
			v.upload = nil
		}
		return
	}
	sent := upload.Sent
	if sent == 0 {
		sent = upload.Offset
	}
	now := time.Now()
	if v.upload == nil {
		v.upload = v.add(upload.Source.Size, mpb.BarStyle(), mpb.BarPriority(priorityUpload), mpb.BarRemoveOnComplete(), mpb.BarWidth(30),
			mpb.PrependDecorators(decor.Name("  base image "), decor.CountersKibiByte("% .1f / % .1f")),
			mpb.AppendDecorators(decor.EwmaSpeed(decor.SizeB1024(0), " % .1f", ewmaAge), decor.Name(" · left "), decor.EwmaETA(decor.ET_STYLE_GO, ewmaAge)))
		if v.upload == nil {
			return
		}
		v.upload.SetCurrent(sent)
		v.uploadSent, v.uploadSeen = sent, now
		return
	}
	if sent < v.uploadSent {
		// A retried upload that resumed from an earlier offset: the bar
		// goes back, and the rate starts again from there.
		v.upload.SetCurrent(sent)
		v.uploadSent, v.uploadSeen = sent, now
		return
	}
	if sent > v.uploadSent {
		v.upload.EwmaSetCurrent(sent, now.Sub(v.uploadSeen))
		v.uploadSent, v.uploadSeen = sent, now
	}
}

// ewmaAge is the age of the upload rate's moving average: 30 is the
// ewma package's simple average, which starts at the first sample (other
// ages wait for 10 samples before they show anything).
const ewmaAge = 30

// finish removes the live block, leaving the lines printed above it.
func (v *liveView) finish() {
	if v.upload != nil {
		v.upload.SetTotal(-1, true)
	}
	for _, b := range v.rowBars {
		b.SetTotal(-1, true)
	}
	if v.status != nil {
		v.status.SetTotal(-1, true)
	}
	v.p.Wait()
}

// runningLine is "N of M steps done · running: a, b and 3 more". Steps
// of a VM are counted, not named: the VM's own line names them.
func runningLine(steps []api.Step) string {
	var running []string
	done, onVMs := 0, 0
	for _, s := range steps {
		switch {
		case s.Status == api.StepPending:
		case s.Status != api.StepRunning:
			done++
		case s.VM != "":
			onVMs++
		default:
			running = append(running, s.Name)
		}
	}
	line := fmt.Sprintf("%d of %d steps done", done, len(steps))
	if onVMs > 0 {
		running = append(running, fmt.Sprintf("%d on VMs", onVMs))
	}
	if len(running) > 0 {
		line += " · running: " + shortList(running, 3)
	}
	return line
}

// shortList is "a, b, c and 2 more".
func shortList(items []string, shown int) string {
	s := strings.Join(items[:min(len(items), shown)], ", ")
	if more := len(items) - min(len(items), shown); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// vmActivity is what one VM's steps say it is doing.
type vmActivity struct {
	vm      string
	running []string
	last    api.Step // the last step that ended
	failed  bool
	pending int // steps planned, not begun
}

// vmRows says what each VM is doing, a line per VM in the order the run
// first touched them; with more VMs than limit lines, the busy ones come
// first and the last line counts the others.
func vmRows(steps []api.Step, limit int) []string {
	var order []string
	byVM := map[string]*vmActivity{}
	for _, s := range steps {
		if s.VM == "" {
			continue
		}
		a := byVM[s.VM]
		if a == nil {
			a = &vmActivity{vm: s.VM}
			byVM[s.VM] = a
			order = append(order, s.VM)
		}
		switch s.Status {
		case api.StepPending:
			a.pending++
		case api.StepRunning:
			a.running = append(a.running, s.Name)
		case api.StepFailed, api.StepCompensationFailed:
			a.failed = true
			a.last = s
		default:
			if !a.failed {
				a.last = s
			}
		}
	}
	width := 0
	for _, vm := range order {
		width = max(width, len(vm))
	}
	line := func(a *vmActivity) string {
		switch {
		case len(a.running) > 0:
			return fmt.Sprintf("  %-*s  %s", width, a.vm, shortList(a.running, 2))
		case a.last.Name == "":
			return fmt.Sprintf("  %-*s  waiting (%d step(s) to go)", width, a.vm, a.pending)
		case a.pending > 0 && !a.failed:
			return fmt.Sprintf("  %-*s  %s: %s, %d step(s) to go", width, a.vm, a.last.Status, a.last.Name, a.pending)
		case a.last.Detail != "":
			return fmt.Sprintf("  %-*s  %s: %s (%s)", width, a.vm, a.last.Status, a.last.Name, a.last.Detail)
		default:
			return fmt.Sprintf("  %-*s  %s: %s", width, a.vm, a.last.Status, a.last.Name)
		}
	}
	if len(order) <= limit {
		rows := make([]string, 0, len(order))
		for _, vm := range order {
			rows = append(rows, line(byVM[vm]))
		}
		return rows
	}
	var busy, idle []*vmActivity
	for _, vm := range order {
		if a := byVM[vm]; len(a.running) > 0 || a.failed {
			busy = append(busy, a)
		} else {
			idle = append(idle, a)
		}
	}
	shown := append(busy, idle...)[:limit-1]
	rows := make([]string, 0, limit)
	for _, a := range shown {
		rows = append(rows, line(a))
	}
	atWork, waiting, finished := 0, 0, 0
	for _, a := range append(busy, idle...)[limit-1:] {
		switch {
		case len(a.running) == 0 && a.last.Name == "":
			waiting++
		case len(a.running) > 0 || (a.pending > 0 && !a.failed):
			atWork++
		default:
			finished++
		}
	}
	return append(rows, fmt.Sprintf("  and %d more VMs (%d at work, %d waiting, %d finished)", len(order)-len(shown), atWork, waiting, finished))
}

// pendingUpload is the heartbeat of the run's base image upload, if one
// is running.
func pendingUpload(ctx context.Context, c client.Client, run client.WorkflowRun) *api.UploadProgress {
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil
	}
	for _, p := range desc.GetPendingActivities() {
		if p.GetActivityType().GetName() != api.ActUploadBaseImage || p.GetHeartbeatDetails() == nil {
			continue
		}
		var up api.UploadProgress
		if converter.GetDefaultDataConverter().FromPayloads(p.GetHeartbeatDetails(), &up) == nil {
			return &up
		}
	}
	return nil
}
