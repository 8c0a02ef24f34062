package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"

	"go.temporal.io/sdk/workflow"
)

// StopCluster presses the ACPI power button of every running VM of the
// cluster in parallel, waits for them to power off, and after
// Options.ShutdownTimeout (a durable timer: it survives worker restarts)
// forces off those still running. Disks, pool and network stay.
//
// It stops every VM the cluster owns in libvirt (by hpcvm's metadata), so it
// needs only the cluster's name and host, whatever cluster.yaml says today.
func StopCluster(ctx workflow.Context, req api.Request) (api.StopResult, error) {
	o := req.Options.WithDefaults()
	ctx, err := bindHost(ctx, req.Spec.Cluster.Host, o)
	if err != nil {
		return api.StopResult{}, err
	}
	tr, err := newTracker(ctx)
	if err != nil {
		return api.StopResult{}, err
	}
	defer tr.dropPending()
	if err := cluster.ValidateTarget(req.Spec.Cluster.Name, req.Spec.Cluster.Host); err != nil {
		return api.StopResult{}, badRequest(err)
	}
	var inv api.Inventory
	if err := run(tr, "inspect", func() (bool, error) {
		return false, workflow.ExecuteActivity(stepContext(ctx, o), api.ActInspectCluster,
			api.InspectRequest{Cluster: req.Spec.Cluster.Name}).Get(ctx, &inv)
	}); err != nil {
		return api.StopResult{}, err
	}

	var res api.StopResult
	var running []string
	began := workflow.Now(ctx)
	shutdown := map[string]api.ShutdownRequest{}
	for _, d := range inv.Domains {
		switch {
		case !d.Owned:
			// Named like ours but not created by hpcvm: not ours to stop.
		case d.Running():
			running = append(running, d.Name)
			shutdown[d.Name] = shutdownRequest(req.Spec.Cluster.Name, d, began, o.ShutdownTimeout)
		default:
			res.WasStopped = append(res.WasStopped, d.Name)
		}
	}
	if len(running) == 0 {
		return res, nil
	}

	for _, name := range running {
		tr.expect(vmOfDomain(req.Spec.Cluster.Name, name), shutdownStep(name))
	}
	tr.expect("", waitPowerOffStep)
	for _, name := range running {
		tr.expect(vmOfDomain(req.Spec.Cluster.Name, name), forceOffStep(name))
	}
	pressed := map[string]api.ShutdownResult{}
	if err := parallel(ctx, running, func(gctx workflow.Context, name string) error {
		sreq := shutdown[name]
		err := run(tr, shutdownStep(name), func() (bool, error) {
			if sreq.AwaitBoot > 0 {
				tr.set(shutdownStep(name), api.StepRunning, fmt.Sprintf("booted %s ago: waiting up to %s for the guest to answer before pressing the power button",
					began.Sub(sreq.BootedAt).Round(time.Second), sreq.AwaitBoot))
			}
			var r api.ShutdownResult
			err := workflow.ExecuteActivity(stepContext(gctx, o), api.ActShutdownDomain, sreq).Get(gctx, &r)
			pressed[name] = r
			return true, err
		})
		if err == nil && sreq.AwaitBoot > 0 {
			tr.set(shutdownStep(name), api.StepDone, bootWaitWords(pressed[name]))
		}
		return err
	}); err != nil {
		return res, err
	}
	for _, name := range running {
		if sreq := shutdown[name]; sreq.AwaitBoot > 0 {
			r := pressed[name]
			res.AwaitedBoot = append(res.AwaitedBoot, api.BootWait{VM: vmOfDomain(req.Spec.Cluster.Name, name),
				Booted: began.Sub(sreq.BootedAt).Round(time.Second), Waited: r.Waited, Answer: r.Answer})
		}
	}
	// The guests get what is left of the timeout after the wait for
	// booting ones: one timeout for the whole stop.
	timeout := o.ShutdownTimeout - workflow.Now(ctx).Sub(began)
	if timeout < time.Second {
		timeout = time.Second
	}

	// Race the guests against the durable timer.
	waitCtx, cancelWait := workflow.WithCancel(ctx)
	// The wait only reads: when the timer wins, force off at once instead
	// of waiting for the cancel to reach it at its next heartbeat.
	waitCtx = activityContext(waitCtx, o, timeout+o.StepTimeout, false)
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	tr.set(waitPowerOffStep, api.StepRunning, fmt.Sprintf("up to %s, then force off", timeout.Round(time.Second)))
	wait := workflow.ExecuteActivity(waitCtx, api.ActWaitDomainsOff, running)
	timer := workflow.NewTimer(timerCtx, timeout)
	timedOut := false
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(wait, func(f workflow.Future) { cancelTimer() })
	sel.AddFuture(timer, func(f workflow.Future) { timedOut = true; cancelWait() })
	sel.Select(ctx)
	if waitErr := wait.Get(ctx, nil); waitErr != nil && !timedOut {
		// The wait itself failed (not cancelled by the timer): the guests
		// still get their full time before they are forced off.
		tr.set(waitPowerOffStep, api.StepFailed, rootMessage(waitErr)+"; waiting out the timeout")
		_ = timer.Get(ctx, nil)
		timedOut = true
	} else {
		tr.set(waitPowerOffStep, api.StepDone, "")
	}
	res.TimerEnded = timedOut

	forced := map[string]bool{}
	if err := parallel(ctx, running, func(gctx workflow.Context, name string) error {
		return run(tr, forceOffStep(name), func() (bool, error) {
			var wasRunning bool
			err := workflow.ExecuteActivity(stepContext(gctx, o), api.ActForceOffDomain, api.DomainRef{Name: name, Cluster: req.Spec.Cluster.Name}).Get(gctx, &wasRunning)
			forced[name] = wasRunning
			return wasRunning, err
		})
	}); err != nil {
		return res, err
	}
	for _, name := range running {
		if forced[name] {
			res.ForcedOff = append(res.ForcedOff, name)
		} else {
			res.ShutDown = append(res.ShutDown, name)
		}
	}
	return res, nil
}

// bootGrace is how long after its QEMU started a guest is taken to be still
// booting, and so deaf to the ACPI power button, unless it shows it is up
// (its guest agent connects, or it takes a DHCP lease).
const bootGrace = time.Minute

// shutdownRequest is the press of one running domain's power button: at
// once, or, for a guest that booted less than bootGrace ago, once it
// answers, waiting at most the rest of its grace and never more than half
// the timeout, so that it keeps time to shut down.
func shutdownRequest(clusterName string, d api.DomainState, now time.Time, timeout time.Duration) api.ShutdownRequest {
	req := api.ShutdownRequest{DomainRef: api.DomainRef{Name: d.Name, Cluster: clusterName}}
	if d.StartedAt.IsZero() {
		return req
	}
	age := now.Sub(d.StartedAt)
	if age < 0 {
		age = 0 // the host's clock is ahead of Temporal's
	}
	if age >= bootGrace {
		return req
	}
	req.AwaitBoot, req.BootedAt = bootGrace-age, d.StartedAt
	if req.AwaitBoot > timeout/2 {
		req.AwaitBoot = timeout / 2
	}
	req.AwaitUntil = now.Add(req.AwaitBoot)
	return req
}

// bootWaitWords says how a booting guest's press went.
func bootWaitWords(r api.ShutdownResult) string {
	if r.Answer == "" {
		return fmt.Sprintf("pressed the power button after %s without an answer from the guest", r.Waited)
	}
	return fmt.Sprintf("pressed the power button after %s: %s", r.Waited, r.Answer)
}

// parallel runs fn for every name concurrently and returns the first error,
// after all have finished.
func parallel(ctx workflow.Context, names []string, fn func(workflow.Context, string) error) error {
	errs := make([]error, len(names))
	wg := workflow.NewWaitGroup(ctx)
	for i, name := range names {
		i, name := i, name
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			errs[i] = fn(gctx, name)
		})
	}
	wg.Wait(ctx)
	return firstError(errs)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// vmOfDomain is the cluster.yaml name of the VM behind one of the
// cluster's domains (see cluster.DomainName).
func vmOfDomain(clusterName, domain string) string {
	return strings.TrimPrefix(domain, clusterName+"-")
}
