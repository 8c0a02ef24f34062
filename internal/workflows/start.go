package workflows

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/api"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// stepError carries the name of the step that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// run executes one step and records its progress. fn reports whether the
// step changed anything.
func run(tr *tracker, name string, fn func() (changed bool, err error)) error {
	tr.set(name, api.StepRunning, "")
	changed, err := fn()
	if e, silent := hostSilence(tr.ctx, err); silent {
		// Nothing more is asked of that host: its undos would wait as
		// long, and are reported as left on it.
		err, tr.silent = e, true
	}
	switch {
	case err != nil:
		tr.set(name, api.StepFailed, rootMessage(err))
		return &stepError{step: name, err: err}
	case changed:
		tr.set(name, api.StepDone, "")
	default:
		tr.set(name, api.StepUnchanged, "")
	}
	return nil
}

// StartCluster creates whatever of the cluster is missing and starts every
// VM: preflight (one activity on the host: every check, the plan, the
// documents) → device claims → network → pool → base image → for every VM
// in parallel: DHCP lease (on a running network) → volume → domain →
// start. On failure or cancellation it undoes, in reverse, what this run
// created, and says what failed and what was rolled back. On a cluster
// that already has VMs, a node that fails is rolled back alone and the
// others stay up. The workflow decides nothing from the file or the host
// itself: it executes the plan the preflight recorded.
func StartCluster(ctx workflow.Context, req api.Request) (api.StartResult, error) {
	o := req.Options.WithDefaults()
	ctx, err := bindHost(ctx, req.Spec.Cluster.Host, o)
	if err != nil {
		return api.StartResult{}, err
	}
	tr, err := newTracker(ctx)
	if err != nil {
		return api.StartResult{}, err
	}
	defer tr.dropPending()
	actx := stepContext(ctx, o)
	// The workflow has its request checked on the host: a client that
	// skips the CLI gets the same errors, and nothing is created for a
	// bad request. The checks are validate's (one preflight); a start
	// stops at the first that fails.
	var (
		cp    api.ClusterPlan
		plan  cluster.Plan
		steps api.StartSteps
		res   api.StartResult
	)
	sg := &saga{}
	// A preflight chose CPUs no other cluster held when it looked; a start
	// running at the same moment may have claimed them since. The claim
	// step, one at a time in the host's ledger, is the judge: refused, the
	// run plans once more with those claims in view.
	for attempt := 1; ; attempt++ {
		if err := run(tr, stepPreflight, func() (bool, error) {
			cp = api.ClusterPlan{}
			return false, workflow.ExecuteActivity(actx, api.ActPreflight, api.PreflightRequest{Request: req, Mode: api.PreflightStart}).Get(ctx, &cp)
		}); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
		if f := cp.Refusal; f != nil {
			err := temporal.NewNonRetryableApplicationError(f.Message, f.Type, nil)
			tr.set(stepPreflight, api.StepFailed, orDefault(f.Short, f.Message))
			if f.OfRequest {
				return res, err
			}
			return res, failStart(ctx, tr, sg, &stepError{step: stepPreflight, err: err})
		}
		if cp.Steps == nil {
			return res, temporal.NewNonRetryableApplicationError("the host's preflight returned no steps and no refusal: the worker on host "+req.Spec.Cluster.Host+" runs another hpcvm; upgrade it", api.ErrTypeBadInput, nil)
		}
		plan, steps = cp.Plan, *cp.Steps
		res = api.StartResult{Plan: plan, Notes: steps.Notes, NotInFile: cp.NotInFile, Checks: cp.Checks}
		err := claimDevices(ctx, o, tr, sg, plan, steps.Devices, steps.Resources)
		var appErr *temporal.ApplicationError
		if err != nil && attempt == 1 && errors.As(err, &appErr) && appErr.Type() == api.ErrTypeResourcesClaimed {
			continue
		}
		if err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
		break
	}
	// The claims held, the cluster's name is bound to its host (the
	// preflight found it free, or bound here already).
	if steps.Bind {
		if err := bindCluster(ctx, o, tr, sg, plan); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}
	hc := steps.HostChanges

	// ensure runs a step whose object did not exist before the run, or
	// checks one that did. What it created is counted from the plan, so a
	// retried step that finds its object made by the first try counts.
	ensure := func(name string, existed bool, undo func(workflow.Context) error, act string, arg any) error {
		if !existed {
			sg.push(name, undo)
		}
		return run(tr, name, func() (bool, error) {
			var r api.EnsureResult
			if err := workflow.ExecuteActivity(actx, act, arg).Get(ctx, &r); err != nil {
				return false, err
			}
			if !existed {
				res.Created = append(res.Created, name)
			}
			return !existed, nil
		})
	}

	tr.expect("", networkStep(steps.Network.Name))
	if steps.Routing != nil {
		tr.expect("", routingStep(steps.Routing.Bridge))
	}
	if steps.Resolver != nil {
		tr.expect("", resolverStep(steps.Resolver.Request.Domain))
	}
	tr.expect("", poolStep(steps.Pool.Name), baseImageStep(steps.Base.Upload.Volume))
	if steps.Discovery != nil {
		tr.expect("", discoveryStep(plan.Cluster))
	}
	for _, vm := range steps.VMs {
		if vm.Lease != nil {
			tr.expect(vm.Name, leaseStep(vm.Name))
		}
		tr.expect(vm.Name, volumeStep(vm.VolumeName), domainStep(vm.Domain), startStep(vm.Domain))
	}

	netRef := api.NetworkRef{Name: steps.Network.Name, UUID: steps.Network.UUID}
	if err := ensure(networkStep(netRef.Name), steps.Network.Existed, func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteNetwork, netRef).Get(c, nil)
	}, api.ActEnsureNetwork, steps.Network.XML); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}
	if steps.Routing != nil {
		if err := joinRouting(ctx, o, tr, sg, *steps.Routing, hc.KeepOnFailure, &res); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}
	// The host's resolver may ask the network for the cluster's names as
	// soon as it runs; they resolve once the VMs have their leases.
	if steps.Resolver != nil {
		if err := writeHostFile(ctx, o, tr, sg, resolverFile(*steps.Resolver), hc.KeepOnFailure, &res); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}

	poolRef := api.PoolRef{Name: steps.Pool.Name, UUID: steps.Pool.UUID}
	if err := ensure(poolStep(poolRef.Name), steps.Pool.Existed, func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), api.ActDeletePool, poolRef).Get(c, nil)
	}, api.ActEnsurePool, steps.Pool.XML); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	up := steps.Base.Upload
	baseStep := baseImageStep(up.Volume)
	baseRef := api.VolumeRef{Pool: up.Pool, PoolUUID: up.PoolUUID, Name: up.Volume}
	if !steps.Base.Existed {
		sg.push(baseStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteVolume, baseRef).Get(c, nil)
		})
	}
	if err := run(tr, baseStep, func() (bool, error) {
		var r api.UploadResult
		if err := workflow.ExecuteActivity(uploadContext(ctx, o), api.ActUploadBaseImage, up).Get(ctx, &r); err != nil {
			return false, err
		}
		res.Notes = append(res.Notes, r.Notes...)
		if !steps.Base.Existed {
			res.Created = append(res.Created, baseStep)
		}
		return !steps.Base.Existed, nil
	}); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	// Every VM in parallel; each branch has its own compensation stack.
	subs := sg.pushGroup("vms", len(steps.VMs))
	errs := make([]error, len(steps.VMs))
	wg := workflow.NewWaitGroup(ctx)
	for i, vm := range steps.VMs {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			errs[i] = startVM(gctx, o, tr, plan, vm, subs[i], &res)
		})
	}
	wg.Wait(ctx)
	if ctx.Err() != nil {
		return res, failStart(ctx, tr, sg, &stepError{"start", ctx.Err()})
	}
	if err := firstError(errs); err != nil {
		if !steps.ScaleOut {
			return res, failStart(ctx, tr, sg, err)
		}
		// The cluster was up before this run: the nodes that failed are
		// rolled back alone, the others (old and new) stay as they are.
		// Each failed node is undone on its own stack, so one node's
		// failed undo does not stop another's.
		var failedSubs []*saga
		var names []string
		for i, e := range errs {
			if e != nil {
				failedSubs = append(failedSubs, subs[i])
				names = append(names, steps.VMs[i].Name)
			}
		}
		failed := &saga{steps: []compensation{{name: "failed nodes", group: failedSubs}}}
		return res, failNodes(ctx, tr, failed, names, err)
	}
	// The registry learns the nodes once they run.
	if steps.Discovery != nil {
		if err := writeHostFile(ctx, o, tr, sg, discoveryFile(*steps.Discovery), hc.KeepOnFailure, &res); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}
	return res, nil
}

// stepPreflight is the step of the host's preflight in a start's progress.
const stepPreflight = "preflight"

// hostFile is a host change made by writing a file (the discovery
// record, the resolver entry): the activity that writes it and the one
// that takes it back, with their requests.
type hostFile struct {
	step              string
	existed           bool // hpcvm's file was there before the run
	write, remove     string
	writeArg, undoArg any
}

// writeHostFile writes a host change's file; the rollback removes it only
// if this run wrote the first one and the cluster does not keep its host
// changes on failure.
func writeHostFile(ctx workflow.Context, o api.Options, tr *tracker, sg *saga, f hostFile, keepOnFailure bool, res *api.StartResult) error {
	return run(tr, f.step, func() (bool, error) {
		if !f.existed && !keepOnFailure {
			sg.push(f.step, func(c workflow.Context) error {
				return workflow.ExecuteActivity(stepContext(c, o), f.remove, f.undoArg).Get(c, nil)
			})
		}
		var r api.HostChangeResult
		if err := workflow.ExecuteActivity(stepContext(ctx, o), f.write, f.writeArg).Get(ctx, &r); err != nil {
			return false, err
		}
		res.HostChanges = append(res.HostChanges, doneChanges(r)...)
		return r.Changed(), nil
	})
}

// discoveryFile is the cluster's service discovery record.
func discoveryFile(d api.DiscoveryStep) hostFile {
	return hostFile{step: discoveryStep(d.Request.Cluster), existed: d.Existed,
		write: api.ActWriteDiscoveryRecord, writeArg: d.Request,
		remove: api.ActRemoveDiscoveryRecord, undoArg: api.DiscoveryRequest{Cluster: d.Request.Cluster, Dir: d.Request.Dir, RequestedBy: d.Request.RequestedBy}}
}

// resolverFile is the host resolver's entry of the cluster's domain.
func resolverFile(rs api.ResolverStep) hostFile {
	return hostFile{step: resolverStep(rs.Request.Domain), existed: rs.Existed,
		write: api.ActWriteResolverEntry, writeArg: rs.Request,
		remove: api.ActRemoveResolverEntry, undoArg: api.ResolverRequest{Cluster: rs.Request.Cluster, Dir: rs.Request.Dir, RequestedBy: rs.Request.RequestedBy}}
}

// doneChanges are the changes a host change step made.
func doneChanges(r api.HostChangeResult) []string {
	var out []string
	for _, rec := range r.Records {
		if rec.Outcome == hostchange.OutcomeDone {
			out = append(out, rec.Change)
		}
	}
	return out
}

// joinRouting makes the cluster's network one of the host's routed
// clusters, once its bridge exists. The rollback leaves the routing only if
// this run made the cluster a member.
func joinRouting(ctx workflow.Context, o api.Options, tr *tracker, sg *saga, routing api.RoutingRequest, keepOnFailure bool, res *api.StartResult) error {
	actx := stepContext(ctx, o)
	step := routingStep(routing.Bridge)
	return run(tr, step, func() (bool, error) {
		var members []hostchange.Member
		if err := workflow.ExecuteActivity(actx, api.ActRoutedClusters).Get(ctx, &members); err != nil {
			return false, err
		}
		member := false
		for _, m := range members {
			member = member || m.Cluster == routing.Cluster
		}
		if !member && !keepOnFailure {
			sg.push(step, func(c workflow.Context) error {
				return workflow.ExecuteActivity(stepContext(c, o), api.ActLeaveRouting, routing).Get(c, nil)
			})
		}
		var r api.HostChangeResult
		if err := workflow.ExecuteActivity(actx, api.ActJoinRouting, routing).Get(ctx, &r); err != nil {
			return false, err
		}
		res.HostChanges = append(res.HostChanges, doneChanges(r)...)
		return r.Changed(), nil
	})
}

func startVM(ctx workflow.Context, o api.Options, tr *tracker, plan cluster.Plan, vm api.VMSteps, sg *saga, res *api.StartResult) error {
	actx := stepContext(ctx, o)
	// A node rolled back alone (a scale-out) gives back the devices this
	// run claimed for it; the whole cluster's rollback frees the rest.
	if vm.ExclusiveDevices || vm.Claims {
		info := workflow.GetInfo(ctx)
		release := api.ReleaseRequest{Host: plan.Host, Queue: api.TaskQueue(plan.Host), Cluster: plan.Cluster, VM: vm.Name, RunID: info.FirstRunID}
		sg.push(tr.forVM(vm.Name, "ledger claims of "+vm.Name), func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActReleaseDevices, release).Get(c, nil)
		})
	}

	// A network that existed before the run gets the VM's lease in place,
	// without a restart: how a node joins a running cluster.
	if vm.Lease != nil {
		leaseName := leaseStep(vm.Name)
		req := *vm.Lease
		if !vm.LeaseHadMAC {
			sg.push(leaseName, func(c workflow.Context) error {
				return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteDHCPHost, req).Get(c, nil)
			})
		}
		if err := run(tr, leaseName, func() (bool, error) {
			return true, workflow.ExecuteActivity(actx, api.ActEnsureDHCPHost, req).Get(ctx, nil)
		}); err != nil {
			return err
		}
	}

	volStep := volumeStep(vm.VolumeName)
	volRef := api.VolumeRef{Pool: vm.Volume.Pool, PoolUUID: vm.Volume.PoolUUID, Name: vm.VolumeName}
	if !vm.VolumeExisted {
		sg.push(volStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteVolume, volRef).Get(c, nil)
		})
	}
	if err := run(tr, volStep, func() (bool, error) {
		err := workflow.ExecuteActivity(actx, api.ActEnsureVolume, vm.Volume).Get(ctx, nil)
		if err == nil && !vm.VolumeExisted {
			res.Created = append(res.Created, volStep)
		}
		return !vm.VolumeExisted, err
	}); err != nil {
		return err
	}

	domStep := domainStep(vm.Domain)
	domRef := api.DomainRef{Name: vm.Domain, Cluster: plan.Cluster}
	if !vm.DomainExisted {
		sg.push(domStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteDomain, domRef).Get(c, nil)
		})
	}
	var ensured api.EnsureResult
	if err := run(tr, domStep, func() (bool, error) {
		err := workflow.ExecuteActivity(actx, api.ActEnsureDomain, vm.DomainXML).Get(ctx, &ensured)
		if err == nil && !vm.DomainExisted {
			res.Created = append(res.Created, domStep)
		}
		return !vm.DomainExisted, err
	}); err != nil {
		return err
	}
	if ensured.Kept != "" {
		note := fmt.Sprintf("domain %s was kept as it is, though it differs from what this hpcvm defines in what no cluster.yaml key sets: %s; it was changed by hand or defined by another version of hpcvm (`hpcvm destroy --vm %s`, then start, re-creates it from the template, with a new disk)", vm.Domain, ensured.Kept, vm.Name)
		tr.set(domStep, api.StepUnchanged, note)
		res.Notes = append(res.Notes, note)
	}

	startName := startStep(vm.Domain)
	if !vm.WasRunning {
		sg.push(startName, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActForceOffDomain, domRef).Get(c, nil)
		})
	}
	return run(tr, startName, func() (bool, error) {
		err := workflow.ExecuteActivity(launchContext(ctx, o), api.ActStartDomain, domRef).Get(ctx, nil)
		// Counted from the plan: a retry that finds the domain started by
		// the first try still started it in this run.
		if err == nil && !vm.WasRunning {
			res.Started = append(res.Started, vm.Domain)
		}
		return !vm.WasRunning, err
	})
}

// rollBack undoes what the saga holds, in reverse, after err, and says
// which step failed and what was and was not undone.
func rollBack(ctx workflow.Context, tr *tracker, sg *saga, err error) (f api.Failure, undone, notUndone []string) {
	tr.dropPending() // what was not begun will not be: the progress shows the rollback
	undone, notUndone = sg.compensate(ctx, tr)
	f = api.Failure{FailedStep: "start", Cause: rootMessage(err), RolledBack: undone, NotUndone: notUndone}
	var se *stepError
	if errors.As(err, &se) {
		f.FailedStep = se.step
	}
	return f, undone, notUndone
}

// failNodes rolls back the nodes that failed on a cluster that was already
// up, and says so.
func failNodes(ctx workflow.Context, tr *tracker, sg *saga, names []string, err error) error {
	f, undone, notUndone := rollBack(ctx, tr, sg, err)
	msg := fmt.Sprintf("step %q failed: %s; node(s) %s rolled back alone (%s); the cluster's other nodes, old and new, are up",
		f.FailedStep, f.Cause, strings.Join(names, ", "), orDefault(strings.Join(undone, ", "), "nothing of theirs had been created"))
	if len(notUndone) > 0 {
		msg += fmt.Sprintf("; COULD NOT UNDO: %s (%s)", strings.Join(notUndone, "; "), cleanUpHint(tr, "hpcvm destroy --vm NAME"))
	}
	return temporal.NewNonRetryableApplicationError(msg, "StartFailed", err, f)
}

// failStart rolls back and builds the error the operator reads: what failed,
// why, and what was undone.
func failStart(ctx workflow.Context, tr *tracker, sg *saga, err error) error {
	f, undone, notUndone := rollBack(ctx, tr, sg, err)
	var msg strings.Builder
	fmt.Fprintf(&msg, "step %q failed: %s", f.FailedStep, f.Cause)
	switch {
	case len(undone) > 0:
		fmt.Fprintf(&msg, "; rolled back: %s", strings.Join(undone, ", "))
	case len(notUndone) == 0:
		msg.WriteString("; nothing had been created, nothing to roll back")
	}
	if len(notUndone) > 0 {
		fmt.Fprintf(&msg, "; COULD NOT UNDO: %s (%s)", strings.Join(notUndone, "; "), cleanUpHint(tr, "hpcvm destroy"))
	}
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		return temporal.NewCanceledError(f)
	}
	errType := "StartFailed"
	var appErr *temporal.ApplicationError
	// A device, CPU or page another cluster claims, or a cluster that
	// lives on another host, is a conflict found before anything was
	// created, like bad input.
	if errors.As(err, &appErr) && (appErr.Type() == api.ErrTypeBadInput || appErr.Type() == api.ErrTypeDeviceClaimed ||
		appErr.Type() == api.ErrTypeResourcesClaimed || appErr.Type() == api.ErrTypeClusterBound) {
		errType = api.ErrTypeBadInput
	}
	return temporal.NewNonRetryableApplicationError(msg.String(), errType, err, f)
}

// firstError picks the error of the branch that failed on its own, rather
// than one that was merely cancelled because another failed.
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if temporal.IsCanceledError(err) {
			if canceled == nil {
				canceled = err
			}
			continue
		}
		return err
	}
	return canceled
}

// rootMessage is the innermost message of an error chain: what libvirt or
// the activity said, without Temporal's wrapping.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "cancelled"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// claimDevices claims in the host's ledger, before anything is created,
// the cluster's exclusive PCI functions and every VM's pinned CPUs,
// hugepages and memory; the compensation frees what this run claimed (a
// claim the cluster held before stays).
func claimDevices(ctx workflow.Context, o api.Options, tr *tracker, sg *saga, plan cluster.Plan, devices []api.DeviceClaim, resources []api.ResourceClaim) error {
	if len(devices) == 0 && len(resources) == 0 {
		return nil
	}
	info := workflow.GetInfo(ctx)
	// Claims are the run chain's: a reset run (a new run ID) still gives
	// back what its first run claimed.
	req := api.ClaimRequest{Host: plan.Host, Queue: api.TaskQueue(plan.Host), Cluster: plan.Cluster, RunID: info.FirstRunID, Devices: devices, Resources: resources}
	release := api.ReleaseRequest{Host: plan.Host, Queue: req.Queue, Cluster: plan.Cluster, RunID: req.RunID}
	step := "device claims"
	if len(resources) > 0 {
		step = stepLedgerClaims
	}
	err := run(tr, step, func() (bool, error) {
		var r api.ClaimResult
		if err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActClaimDevices, req).Get(ctx, &r); err != nil {
			return false, err
		}
		return len(r.Added) > 0 || len(r.ResourcesAdded) > 0, nil
	})
	// A claim is all or nothing: refused, it took nothing. Any other
	// outcome (success, or a result lost to a timeout) may hold claims of
	// this run, which the compensation frees by the run's ID.
	var appErr *temporal.ApplicationError
	if !(errors.As(err, &appErr) && (appErr.Type() == api.ErrTypeDeviceClaimed || appErr.Type() == api.ErrTypeResourcesClaimed)) {
		sg.push(step, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActReleaseDevices, release).Get(c, nil)
		})
	}
	return err
}

// bindCluster binds the cluster to its host in the cluster registry; the
// compensation unbinds it if this run made the binding.
func bindCluster(ctx workflow.Context, o api.Options, tr *tracker, sg *saga, plan cluster.Plan) error {
	info := workflow.GetInfo(ctx)
	req := api.BindRequest{Cluster: plan.Cluster, Host: plan.Host, RunID: info.FirstRunID}
	var r api.BindResult
	err := run(tr, stepBind, func() (bool, error) {
		if err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActBindCluster, req).Get(ctx, &r); err != nil {
			return false, err
		}
		return r.Added, nil
	})
	// Refused, it bound nothing; a result lost to a timeout may have
	// bound it: the unbind names the run, so it never removes a binding
	// an earlier start made.
	var appErr *temporal.ApplicationError
	if err == nil && !r.Added || errors.As(err, &appErr) && appErr.Type() == api.ErrTypeClusterBound {
		return err
	}
	sg.push(stepBind, func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), api.ActUnbindCluster, api.UnbindRequest{Cluster: req.Cluster, Host: req.Host, RunID: req.RunID}).Get(c, nil)
	})
	return err
}

// cleanUpHint says how to remove what a rollback could not: with command
// once the cause is fixed, or once a silent host's worker is back (what
// is listed is left on that host).
func cleanUpHint(tr *tracker, command string) string {
	if tr.silent {
		r, _ := routeOf(tr.ctx)
		return fmt.Sprintf("left on host %s, which did not answer: run `%s` once its worker is back", r.host, command)
	}
	return fmt.Sprintf("run `%s` once the cause is fixed", command)
}
