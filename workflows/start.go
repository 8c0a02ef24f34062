package workflows

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/templates"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// a is used only to name activities (a.EnsureNetwork); the worker registers
// the real instance.
var a *activities.Activities

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
	tr.set(name, StepRunning, "")
	changed, err := fn()
	switch {
	case err != nil:
		tr.set(name, StepFailed, rootMessage(err))
		return &stepError{step: name, err: err}
	case changed:
		tr.set(name, StepDone, "")
	default:
		tr.set(name, StepUnchanged, "")
	}
	return nil
}

// StartCluster creates whatever of the cluster is missing and starts every
// VM: host checks → network → pool → base image → for every VM in parallel:
// volume → domain → start. On failure or cancellation it undoes, in reverse,
// what this run created, and says what failed and what was rolled back.
func StartCluster(ctx workflow.Context, req Request) (StartResult, error) {
	o := req.Options.withDefaults()
	tr, err := newTracker(ctx)
	if err != nil {
		return StartResult{}, err
	}
	actx := stepContext(ctx, o)
	plan, err := cluster.NewPlan(req.Spec)
	if err != nil {
		return StartResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, err)
	}

	// Host checks: nothing is created before the host has shown it can run
	// this cluster.
	var img activities.ImageInfo
	err = run(tr, "host checks", func() (bool, error) {
		var caps cluster.HostCapabilities
		if err := workflow.ExecuteActivity(actx, a.ProbeHost).Get(ctx, &caps); err != nil {
			return false, err
		}
		if err := plan.Negotiate(req.Spec, caps); err != nil {
			return false, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, err)
		}
		if err := workflow.ExecuteActivity(actx, a.InspectBaseImage, plan.BaseImage.Source).Get(ctx, &img); err != nil {
			return false, err
		}
		for _, vm := range plan.VMs {
			if uint64(vm.DiskGiB)*templates.GiB < img.VirtualSize {
				msg := fmt.Sprintf("VM %s has disk_size_gb %d, smaller than the base image's virtual size (%.1f GiB): give it at least %d", vm.Name, vm.DiskGiB, float64(img.VirtualSize)/float64(templates.GiB), (img.VirtualSize+templates.GiB-1)/templates.GiB)
				return false, temporal.NewNonRetryableApplicationError(msg, activities.ErrTypeBadInput, nil)
			}
		}
		return false, nil
	})
	if err != nil {
		return StartResult{}, failStart(ctx, tr, &saga{}, err)
	}

	var inv activities.Inventory
	if err := run(tr, "inspect", func() (bool, error) {
		return false, workflow.ExecuteActivity(actx, a.InspectCluster, activities.InspectRequest{Plan: plan}).Get(ctx, &inv)
	}); err != nil {
		return StartResult{}, failStart(ctx, tr, &saga{}, err)
	}

	res := StartResult{Plan: plan, Notes: plan.Machine.Notes}
	sg := &saga{}
	ensure := func(name string, existed bool, undo func(workflow.Context) error, act any, arg any) error {
		if !existed {
			sg.push(name, undo)
		}
		return run(tr, name, func() (bool, error) {
			var r activities.EnsureResult
			err := workflow.ExecuteActivity(actx, act, arg).Get(ctx, &r)
			if r.Created {
				res.Created = append(res.Created, name)
			}
			return r.Created, err
		})
	}

	netXML, err := templates.Network(plan)
	if err != nil {
		return res, failStart(ctx, tr, sg, &stepError{"render network", err})
	}
	netRef := activities.NetworkRef{Name: plan.Network.Name, Bridge: plan.Network.Bridge}
	if err := ensure("network "+plan.Network.Name, inv.Network != nil, func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), a.DeleteNetwork, netRef).Get(c, nil)
	}, a.EnsureNetwork, netXML); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	poolXML, err := templates.Pool(plan)
	if err != nil {
		return res, failStart(ctx, tr, sg, &stepError{"render pool", err})
	}
	poolRef := activities.PoolRef{Name: plan.Pool.Name, Path: plan.Pool.Path}
	if err := ensure("pool "+plan.Pool.Name, inv.Pool != nil, func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), a.DeletePool, poolRef).Get(c, nil)
	}, a.EnsurePool, poolXML); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	baseXML, err := templates.BaseImage(plan, img.Format, img.VirtualSize)
	if err != nil {
		return res, failStart(ctx, tr, sg, &stepError{"render base image", err})
	}
	baseStep := "base image " + plan.BaseImage.Volume
	baseRef := activities.VolumeRef{Pool: plan.Pool.Name, Name: plan.BaseImage.Volume}
	if inv.BaseVolume == nil {
		sg.push(baseStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), a.DeleteVolume, baseRef).Get(c, nil)
		})
	}
	if err := run(tr, baseStep, func() (bool, error) {
		var up activities.UploadResult
		err := workflow.ExecuteActivity(uploadContext(ctx, o), a.UploadBaseImage, activities.UploadRequest{
			Pool: plan.Pool.Name, Volume: plan.BaseImage.Volume, XML: baseXML, Source: img.Path,
			Existed: inv.BaseVolume != nil,
		}).Get(ctx, &up)
		if err == nil && !up.AlreadyDone {
			res.Created = append(res.Created, baseStep)
		}
		return err == nil && !up.AlreadyDone, err
	}); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	// Every VM in parallel; each branch has its own compensation stack.
	subs := sg.pushGroup("vms", len(plan.VMs))
	errs := make([]error, len(plan.VMs))
	wg := workflow.NewWaitGroup(ctx)
	for i, vm := range plan.VMs {
		i, vm := i, vm
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			errs[i] = startVM(gctx, o, tr, plan, vm, inv, img.Format, subs[i], &res)
		})
	}
	wg.Wait(ctx)
	if err := firstError(errs); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}
	if ctx.Err() != nil {
		return res, failStart(ctx, tr, sg, &stepError{"start", ctx.Err()})
	}
	return res, nil
}

func startVM(ctx workflow.Context, o Options, tr *tracker, plan cluster.Plan, vm cluster.VMPlan, inv activities.Inventory, baseFormat string, sg *saga, res *StartResult) error {
	actx := stepContext(ctx, o)
	volXML, err := templates.VMVolume(plan, vm, baseFormat)
	if err != nil {
		return &stepError{"render volume " + vm.Volume, err}
	}
	domXML, err := templates.Domain(plan, vm)
	if err != nil {
		return &stepError{"render domain " + vm.Domain, err}
	}

	volStep := "volume " + vm.Volume
	volRef := activities.VolumeRef{Pool: plan.Pool.Name, Name: vm.Volume}
	if _, existed := inv.Volumes[vm.Volume]; !existed {
		sg.push(volStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), a.DeleteVolume, volRef).Get(c, nil)
		})
	}
	if err := run(tr, volStep, func() (bool, error) {
		var r activities.EnsureResult
		err := workflow.ExecuteActivity(actx, a.EnsureVolume, activities.VolumeRequest{Pool: plan.Pool.Name, XML: volXML}).Get(ctx, &r)
		if r.Created {
			res.Created = append(res.Created, volStep)
		}
		return r.Created, err
	}); err != nil {
		return err
	}

	domStep := "domain " + vm.Domain
	dom, existed := inv.Domain(vm.Domain)
	if !existed {
		ref := activities.DomainRef{Name: vm.Domain, Cluster: plan.Cluster}
		sg.push(domStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), a.DeleteDomain, ref).Get(c, nil)
		})
	}
	if err := run(tr, domStep, func() (bool, error) {
		var r activities.EnsureResult
		err := workflow.ExecuteActivity(actx, a.EnsureDomain, domXML).Get(ctx, &r)
		if r.Created {
			res.Created = append(res.Created, domStep)
		}
		return r.Created, err
	}); err != nil {
		return err
	}

	startStep := "start " + vm.Domain
	if !existed || !dom.Running() {
		sg.push(startStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), a.ForceOffDomain, vm.Domain).Get(c, nil)
		})
	}
	return run(tr, startStep, func() (bool, error) {
		var started bool
		err := workflow.ExecuteActivity(actx, a.StartDomain, vm.Domain).Get(ctx, &started)
		if started {
			res.Started = append(res.Started, vm.Domain)
		}
		return started, err
	})
}

// failStart rolls back and builds the error the operator reads: what failed,
// why, and what was undone.
func failStart(ctx workflow.Context, tr *tracker, sg *saga, err error) error {
	undone, notUndone := sg.compensate(ctx, tr)
	f := Failure{FailedStep: "start", Cause: rootMessage(err), RolledBack: undone, NotUndone: notUndone}
	var se *stepError
	if errors.As(err, &se) {
		f.FailedStep = se.step
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "step %q failed: %s", f.FailedStep, f.Cause)
	if len(undone) > 0 {
		fmt.Fprintf(&msg, "; rolled back: %s", strings.Join(undone, ", "))
	} else {
		msg.WriteString("; nothing had been created, nothing to roll back")
	}
	if len(notUndone) > 0 {
		fmt.Fprintf(&msg, "; COULD NOT UNDO: %s (run `hpcvm destroy` to clean up)", strings.Join(notUndone, "; "))
	}
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		return temporal.NewCanceledError(f)
	}
	errType := "StartFailed"
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeBadInput {
		errType = activities.ErrTypeBadInput
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

// inspected is the common start of stop and destroy: the plan, the progress
// tracker, and what exists of the cluster now.
func inspected(ctx workflow.Context, req Request) (Options, *tracker, cluster.Plan, activities.Inventory, error) {
	o := req.Options.withDefaults()
	var inv activities.Inventory
	tr, err := newTracker(ctx)
	if err != nil {
		return o, nil, cluster.Plan{}, inv, err
	}
	plan, err := cluster.NewPlan(req.Spec)
	if err != nil {
		return o, tr, plan, inv, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, err)
	}
	err = run(tr, "inspect", func() (bool, error) {
		return false, workflow.ExecuteActivity(stepContext(ctx, o), a.InspectCluster, activities.InspectRequest{Plan: plan}).Get(ctx, &inv)
	})
	return o, tr, plan, inv, err
}
