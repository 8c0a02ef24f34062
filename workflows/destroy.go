package workflows

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/activities"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DestroyCluster removes every trace of the cluster: its domains (forced off
// and undefined, in parallel), their volumes, the base volume and the pool
// with its directory, and the network. It works on a half-created cluster and
// is idempotent. It never deletes what hpcvm did not create: a domain must
// carry hpcvm's metadata naming this cluster, the pool must have the planned
// directory and the network the planned bridge; anything else with our names
// is left alone and reported.
func DestroyCluster(ctx workflow.Context, req Request) (DestroyResult, error) {
	o, tr, plan, inv, err := inspected(ctx, req)
	if err != nil {
		return DestroyResult{}, err
	}

	var res DestroyResult
	var failures []string
	// outcome sorts an activity's result into deleted / left alone / failed.
	outcome := func(step, object string, err error) error {
		var appErr *temporal.ApplicationError
		switch {
		case err == nil:
			res.Deleted = append(res.Deleted, object)
			return nil
		case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeNotOwned:
			res.LeftAlone = append(res.LeftAlone, fmt.Sprintf("%s (%s)", object, appErr.Message()))
			return nil
		default:
			failures = append(failures, fmt.Sprintf("%s: %s", step, rootMessage(err)))
			return err
		}
	}

	poolOurs := inv.Pool != nil && inv.Pool.Path == plan.Pool.Path
	switch {
	case inv.Pool == nil:
		res.WasMissing = append(res.WasMissing, "pool "+plan.Pool.Name)
	case !poolOurs:
		res.LeftAlone = append(res.LeftAlone, fmt.Sprintf("pool %s (its directory is %s, not the planned %s)", inv.Pool.Name, inv.Pool.Path, plan.Pool.Path))
	}

	// Every VM in parallel: its domain, then its volume (a volume goes only
	// once the domain using it is gone).
	vmVolumes := map[string]bool{}
	var domains []string
	for _, d := range inv.Domains {
		if d.Owned {
			domains = append(domains, d.Name)
		} else {
			res.LeftAlone = append(res.LeftAlone, fmt.Sprintf("domain %s (it has no hpcvm metadata for cluster %s, so hpcvm did not create it)", d.Name, plan.Cluster))
		}
	}
	// A domain's disk is its VM's volume: from the plan, or from the
	// metadata of an owned domain the plan no longer lists.
	volumeOf := map[string]string{}
	for _, vm := range plan.VMs {
		volumeOf[vm.Domain] = vm.Volume
	}
	for _, d := range inv.Domains {
		if _, planned := volumeOf[d.Name]; !planned && d.Owned && d.VM != "" {
			volumeOf[d.Name] = d.VM + ".qcow2"
		}
	}
	// Disks of domains that were left alone stay, whatever else happens.
	keep := map[string]bool{}
	for _, d := range inv.Domains {
		if !d.Owned {
			keep[volumeOf[d.Name]] = true
		}
	}
	deleteVolume := func(gctx workflow.Context, name string) error {
		step := "delete volume " + name
		return run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(gctx, o), a.DeleteVolume, activities.VolumeRef{Pool: plan.Pool.Name, Name: name}).Get(gctx, nil)
			return true, outcome(step, "volume "+name, err)
		})
	}
	domainsErr := parallel(ctx, domains, func(gctx workflow.Context, name string) error {
		step := "delete domain " + name
		deleted := false
		err := run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(gctx, o), a.DeleteDomain, activities.DomainRef{Name: name, Cluster: plan.Cluster}).Get(gctx, nil)
			deleted = err == nil
			return true, outcome(step, "domain "+name, err)
		})
		vol, known := volumeOf[name]
		if !deleted {
			keep[vol] = true // left alone (not ours after all) or failed: its disk stays
			return err
		}
		if !poolOurs || !known {
			return nil
		}
		if _, exists := inv.Volumes[vol]; !exists {
			return nil
		}
		vmVolumes[vol] = true
		return deleteVolume(gctx, vol)
	})

	switch {
	case !poolOurs:
	case domainsErr != nil:
		// A domain that could not be deleted may still use its disk.
		failures = append(failures, "pool "+plan.Pool.Name+": kept because a domain could not be deleted")
	default:
		// Volumes no domain claimed (a half-created VM), then the pool
		// with whatever is left in it: the base volume.
		// Volumes no domain claimed: a half-created VM's disk and the base.
		// Anything else in the directory is not ours: DeletePool then keeps
		// the pool and says what it holds.
		planned := map[string]bool{}
		for _, vol := range volumeOf {
			planned[vol] = true
		}
		var rest []string
		for name := range inv.Volumes {
			if planned[name] && !vmVolumes[name] && !keep[name] {
				rest = append(rest, name)
			}
		}
		// The base goes only if no disk that stays may be layered on it.
		if inv.BaseVolume != nil && len(keep) == 0 {
			rest = append(rest, inv.BaseVolume.Name)
		}
		_ = parallel(ctx, sorted(rest), deleteVolume)
		step := "delete pool " + plan.Pool.Name
		_ = run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(ctx, o), a.DeletePool, activities.PoolRef{Name: plan.Pool.Name, Path: plan.Pool.Path}).Get(ctx, nil)
			return true, outcome(step, "pool "+plan.Pool.Name, err)
		})
	}

	switch {
	case inv.Network == nil:
		res.WasMissing = append(res.WasMissing, "network "+plan.Network.Name)
	case inv.Network.Bridge != plan.Network.Bridge:
		res.LeftAlone = append(res.LeftAlone, fmt.Sprintf("network %s (its bridge is %s, not the planned %s)", inv.Network.Name, inv.Network.Bridge, plan.Network.Bridge))
	default:
		step := "delete network " + plan.Network.Name
		_ = run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(ctx, o), a.DeleteNetwork, activities.NetworkRef{Name: plan.Network.Name, Bridge: plan.Network.Bridge}).Get(ctx, nil)
			return true, outcome(step, "network "+plan.Network.Name, err)
		})
	}

	if len(failures) > 0 {
		msg := fmt.Sprintf("destroy of cluster %s is incomplete: %s; what was deleted stays deleted, run `hpcvm destroy` again once the cause is fixed", plan.Cluster, strings.Join(failures, "; "))
		return res, temporal.NewNonRetryableApplicationError(msg, "DestroyIncomplete", nil, res)
	}
	return res, nil
}
