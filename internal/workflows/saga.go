package workflows

import (
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/workflow"
)

// saga is a stack of compensations. A compensation is pushed before its step
// runs (a step can succeed in libvirt and still time out in Temporal), and
// decides itself, from the snapshot taken at the start of the run, whether
// there is anything of this run's to undo.
type saga struct {
	steps []compensation
}

type compensation struct {
	name string
	undo func(ctx workflow.Context) error
	// group is set for a parallel group: its members are compensated
	// concurrently, each member's own stack in reverse.
	group []*saga
}

func (s *saga) push(name string, undo func(ctx workflow.Context) error) {
	s.steps = append(s.steps, compensation{name: name, undo: undo})
}

// pushGroup registers n sub-sagas that will be filled by parallel branches.
func (s *saga) pushGroup(name string, n int) []*saga {
	subs := make([]*saga, n)
	for i := range subs {
		subs[i] = &saga{}
	}
	s.steps = append(s.steps, compensation{name: name, group: subs})
	return subs
}

// compensate runs every compensation in reverse order on a context that is
// not cancelled with the run, and reports what it undid and what it could
// not. Once an undo fails, the ones registered before it are not run: they
// are what it stands on (a volume under a domain that could not be deleted,
// the pool under that volume), so they are reported as not undone and left
// for `hpcvm destroy` once the cause is fixed. Parallel branches are
// independent: one branch's failure does not stop another's undo.
func (s *saga) compensate(ctx workflow.Context, tr *tracker) (undone, failed []string) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = undoContext(dctx)
	for i := len(s.steps) - 1; i >= 0; i-- {
		c := s.steps[i]
		if tr.silent {
			r, _ := routeOf(tr.ctx)
			for _, name := range stepNames(c) {
				tr.set(name, api.StepCompensationFailed, "not tried: host "+r.host+" did not answer")
				failed = append(failed, fmt.Sprintf("%s: not tried, host %s did not answer", name, r.host))
			}
			continue
		}
		if len(failed) > 0 {
			failed = append(failed, skippedNames(c)...)
			continue
		}
		if c.group != nil {
			type outcome struct{ undone, failed []string }
			ch := workflow.NewChannel(dctx)
			for _, sub := range c.group {
				sub := sub
				workflow.Go(dctx, func(gctx workflow.Context) {
					u, f := sub.compensate(gctx, tr)
					ch.Send(gctx, outcome{u, f})
				})
			}
			for range c.group {
				var o outcome
				ch.Receive(dctx, &o)
				undone = append(undone, o.undone...)
				failed = append(failed, o.failed...)
			}
			continue
		}
		err := c.undo(dctx)
		if e, silent := hostSilence(tr.ctx, err); silent {
			err, tr.silent = e, true
		}
		if err != nil {
			tr.set(c.name, api.StepCompensationFailed, rootMessage(err))
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		tr.set(c.name, api.StepCompensated, "")
		undone = append(undone, c.name)
	}
	return undone, failed
}

// stepNames lists the steps of a compensation (a group's, in the order
// they would be undone).
func stepNames(c compensation) []string {
	if c.group == nil {
		return []string{c.name}
	}
	var out []string
	for _, sub := range c.group {
		for i := len(sub.steps) - 1; i >= 0; i-- {
			out = append(out, stepNames(sub.steps[i])...)
		}
	}
	return out
}

// skippedNames lists a compensation (or a group's) as skipped.
func skippedNames(c compensation) []string {
	var out []string
	for _, name := range stepNames(c) {
		out = append(out, name+": skipped, an undo it depends on failed")
	}
	return out
}

// tracker keeps the run's progress for the progress query, and as the
// run's current details, which the Temporal Web UI shows on the run.
type tracker struct {
	ctx workflow.Context
	// silent is set once a step found its host silent (no worker took it
	// within the host timeout): the undos still to run are not tried.
	silent bool
	steps  []api.Step
	index  map[string]int
	vmOf   map[string]string // step name → the VM it works for
}

func newTracker(ctx workflow.Context) (*tracker, error) {
	t := &tracker{ctx: ctx, index: map[string]int{}, vmOf: map[string]string{}}
	err := workflow.SetQueryHandler(ctx, api.ProgressQuery, func() ([]api.Step, error) {
		return append([]api.Step(nil), t.steps...), nil
	})
	return t, err
}

func (t *tracker) set(name, status, detail string) {
	if i, ok := t.index[name]; ok {
		t.steps[i].Status, t.steps[i].Detail = status, detail
	} else {
		t.index[name] = len(t.steps)
		t.steps = append(t.steps, api.Step{Name: name, Status: status, Detail: detail, VM: t.vmOf[name]})
	}
	// Current details are not a command: setting them leaves the history,
	// and the replay of recorded runs, as they were.
	workflow.SetCurrentDetails(t.ctx, t.details())
}

// expect adds steps the run is going to take as pending, in order, so the
// progress counts them before they begin; vm labels them as forVM does.
func (t *tracker) expect(vm string, names ...string) {
	for _, name := range names {
		t.forVM(vm, name)
		if _, ok := t.index[name]; ok {
			continue
		}
		t.index[name] = len(t.steps)
		t.steps = append(t.steps, api.Step{Name: name, Status: api.StepPending, VM: vm})
	}
}

// dropPending removes the steps the run planned and never began, when it
// ends: it failed before them, and they did not happen.
func (t *tracker) dropPending() {
	kept := t.steps[:0]
	for _, s := range t.steps {
		if s.Status != api.StepPending {
			kept = append(kept, s)
		}
	}
	t.steps = kept
	t.index = map[string]int{}
	for i, s := range t.steps {
		t.index[s.Name] = i
	}
	workflow.SetCurrentDetails(t.ctx, t.details())
}

// forVM labels the step name as working for vm, and returns the name.
// Its undo, which carries the same name, keeps the label.
func (t *tracker) forVM(vm, name string) string {
	if vm != "" {
		t.vmOf[name] = vm
	}
	return name
}

// runningShown bounds the steps the current details name as running.
const runningShown = 6

// details is the run's progress in a few lines of markdown.
func (t *tracker) details() string {
	var running, failed []string
	finished, pending := 0, 0
	for _, s := range t.steps {
		switch s.Status {
		case api.StepPending:
			pending++
		case api.StepRunning:
			running = append(running, s.Name)
		case api.StepFailed, api.StepCompensationFailed:
			failed = append(failed, s.Name)
			finished++
		default:
			finished++
		}
	}
	out := fmt.Sprintf("**%d step(s) finished, %d running**", finished, len(running))
	if pending > 0 {
		out = fmt.Sprintf("**%d of %d step(s) finished, %d running**", finished, len(t.steps), len(running))
	}
	if len(running) > 0 {
		shown := running[:min(len(running), runningShown)]
		out += "\n\nrunning: " + strings.Join(shown, ", ")
		if more := len(running) - len(shown); more > 0 {
			out += fmt.Sprintf(" and %d more", more)
		}
	}
	if len(failed) > 0 {
		out += "\n\nfailed: " + strings.Join(failed, ", ")
	}
	return out
}
