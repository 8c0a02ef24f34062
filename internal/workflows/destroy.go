package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DestroyCluster removes every trace of the cluster: its domains (forced
// off and undefined, in parallel) with their disks, the copy-on-write disks
// no domain claims, the base volume once nothing stands on it, the pool
// with its directory, and the network. It works from what the cluster owns
// in libvirt (network and pool UUIDs, domain metadata), so it needs only the
// cluster's name and host, whatever cluster.yaml says today; it works on a
// half-created cluster and is idempotent. With Request.VMs it removes only
// those nodes (domain, disk, DHCP lease).
//
// It never deletes what hpcvm did not create: objects with the cluster's
// names but without its marks are left alone and listed. Whenever anything
// of the cluster is left (a failure, files in its pool it did not create, a
// base a kept disk stands on), it fails with DestroyIncomplete listing it.
func DestroyCluster(ctx workflow.Context, req api.Request) (api.DestroyResult, error) {
	o := req.Options.WithDefaults()
	ctx, err := bindHost(ctx, req.Spec.Cluster.Host, o)
	if err != nil {
		return api.DestroyResult{}, err
	}
	tr, err := newTracker(ctx)
	if err != nil {
		return api.DestroyResult{}, err
	}
	defer tr.dropPending()
	name := req.Spec.Cluster.Name
	if err := cluster.ValidateTarget(name, req.Spec.Cluster.Host); err != nil {
		return api.DestroyResult{}, badRequest(err)
	}
	var inv api.Inventory
	if err := run(tr, "inspect", func() (bool, error) {
		return false, workflow.ExecuteActivity(stepContext(ctx, o), api.ActInspectCluster,
			api.InspectRequest{Cluster: name, Activate: true, LookalikePrefix: name + "-", Binding: true}).Get(ctx, &inv)
	}); err != nil {
		return api.DestroyResult{}, err
	}
	d := decideDestroy(name, inv, req.VMs)
	if len(d.Missing) > 0 {
		// A typo among several names must not delete the others: nothing
		// is touched.
		msg := fmt.Sprintf("cluster %s has no VM %s (no domain, disk or lease of that name); its VMs are: %s; nothing was deleted",
			name, strings.Join(d.Missing, ", "), orDefault(strings.Join(clusterVMs(inv), ", "), "none"))
		return api.DestroyResult{Missing: d.Missing}, temporal.NewNonRetryableApplicationError(msg, api.ErrTypeBadInput, nil)
	}

	res := api.DestroyResult{LeftAlone: d.LeftAlone, Kept: d.Kept}
	var failures []string
	// outcome sorts an activity's result into deleted / kept / failed.
	outcome := func(step, object string, err error) error {
		var appErr *temporal.ApplicationError
		switch {
		case err == nil:
			res.Deleted = append(res.Deleted, object)
			return nil
		case errors.As(err, &appErr) && (appErr.Type() == api.ErrTypeNotOwned || appErr.Type() == api.ErrTypeNotEmpty):
			// Changed since the inspection: proven not ours after all.
			res.Kept = append(res.Kept, fmt.Sprintf("%s (%s)", object, appErr.Message()))
			return err
		default:
			failures = append(failures, fmt.Sprintf("%s: %s", step, rootMessage(err)))
			return err
		}
	}
	var poolName, poolUUID string
	if inv.Pool != nil {
		poolName, poolUUID = inv.Pool.Name, cluster.PoolUUID(name)
	}
	deleted := map[string]bool{} // volumes
	deleteVolume := func(gctx workflow.Context, vol string) error {
		step := deleteVolumeStep(vol)
		return run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(gctx, o), api.ActDeleteVolume,
				api.VolumeRef{Pool: poolName, PoolUUID: poolUUID, Name: vol}).Get(gctx, nil)
			if err == nil {
				deleted[vol] = true
			}
			return true, outcome(step, "volume "+vol, err)
		})
	}

	// What destroy is going to do, counted up front for the progress.
	for _, td := range d.Domains {
		tr.expect(td.VM, deleteDomainStep(td.Name))
		for _, vol := range td.Volumes {
			tr.expect(td.VM, deleteVolumeStep(vol))
		}
	}
	for _, vol := range d.LooseVolumes {
		tr.expect("", deleteVolumeStep(vol))
	}
	for _, vm := range leaseNames(d.Leases) {
		tr.expect(vm, removeLeaseStep(vm))
	}
	if len(req.VMs) == 0 {
		for _, b := range d.Bases {
			tr.expect("", deleteVolumeStep(b))
		}
	}
	if d.Pool {
		tr.expect("", deletePoolStep(poolName))
	}
	if d.Network {
		tr.expect("", deleteNetworkStep(inv.Network.Name))
	}

	// undoHost runs one undo of the cluster's host changes as a step; its
	// failure is the destroy's, not the end of it.
	undoHost := func(ctx workflow.Context, step string, act, arg any) {
		_ = run(tr, step, func() (bool, error) {
			var r api.HostChangeResult
			if err := workflow.ExecuteActivity(stepContext(ctx, o), act, arg).Get(ctx, &r); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %s", step, rootMessage(err)))
				return false, err
			}
			res.UndoneHostChanges = append(res.UndoneHostChanges, doneChanges(r)...)
			return r.Changed(), nil
		})
	}

	// The cluster's host changes (routing rules, the service discovery
	// record, the host resolver's entry) go with it, beside the domains:
	// found by the cluster's tag on the host or in its audit log, whatever
	// the file says.
	var leaving workflow.WaitGroup
	if len(req.VMs) == 0 {
		leaving = workflow.NewWaitGroup(ctx)
		leaving.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer leaving.Done()
			undoHost(gctx, leaveRoutingStep, api.ActLeaveRouting, api.RoutingRequest{Cluster: name, Network: cluster.NetworkName(name), RequestedBy: req.RequestedBy})
			undoHost(gctx, removeDiscoveryStep, api.ActRemoveDiscoveryRecord, api.DiscoveryRequest{Cluster: name, RequestedBy: req.RequestedBy})
			undoHost(gctx, removeResolverStep, api.ActRemoveResolverEntry, api.ResolverRequest{Cluster: name, RequestedBy: req.RequestedBy})
		})
	}

	// Every domain in parallel, then its disks.
	byName := map[string]domainTeardown{}
	var domains []string
	for _, td := range d.Domains {
		byName[td.Name] = td
		domains = append(domains, td.Name)
	}
	stillThere := map[string]bool{} // VMs whose domain could not be deleted
	domainsErr := parallel(ctx, domains, func(gctx workflow.Context, dom string) error {
		step := deleteDomainStep(dom)
		err := run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(gctx, o), api.ActDeleteDomain, api.DomainRef{Name: dom, Cluster: name}).Get(gctx, nil)
			return true, outcome(step, "domain "+dom, err)
		})
		if err != nil {
			stillThere[byName[dom].VM] = true
			for _, vol := range byName[dom].Volumes {
				res.Kept = append(res.Kept, fmt.Sprintf("volume %s (its domain %s was not deleted)", vol, dom))
			}
			return err
		}
		return parallel(gctx, byName[dom].Volumes, deleteVolume)
	})
	_ = parallel(ctx, d.LooseVolumes, deleteVolume)

	if len(d.Leases) > 0 {
		netRef := api.NetworkRef{Name: cluster.NetworkName(name), UUID: cluster.NetworkUUID(name)}
		_ = parallel(ctx, leaseNames(d.Leases), func(gctx workflow.Context, vm string) error {
			l := leaseOf(d.Leases, vm)
			if stillThere[vm] {
				res.Kept = append(res.Kept, fmt.Sprintf("DHCP lease %s %s (its domain was not deleted)", vm, l.IP))
				return nil
			}
			step := removeLeaseStep(vm)
			return run(tr, step, func() (bool, error) {
				err := workflow.ExecuteActivity(stepContext(gctx, o), api.ActDeleteDHCPHost, api.DHCPHostRequest{Network: netRef, Lease: l}).Get(gctx, nil)
				return true, outcome(step, fmt.Sprintf("DHCP lease %s %s", vm, l.IP), err)
			})
		})
	}

	// A base goes only when no volume that stays stands on it.
	inUse := basesInUse(inv, d.Bases, deleted)
	var bases []string
	for _, b := range d.Bases {
		if users := inUse[b]; len(users) > 0 {
			res.Kept = append(res.Kept, fmt.Sprintf("volume %s (the base image: %s still stand on it)", b, strings.Join(users, ", ")))
			continue
		}
		bases = append(bases, b)
	}
	_ = parallel(ctx, bases, deleteVolume)

	allGone := true
	for vol := range inv.Volumes {
		allGone = allGone && deleted[vol]
	}
	switch {
	case !d.Pool:
	case domainsErr != nil || !allGone:
		res.Kept = append(res.Kept, fmt.Sprintf("pool %s (volumes of it remain, see above)", poolName))
	default:
		step := deletePoolStep(poolName)
		_ = run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActDeletePool, api.PoolRef{Name: poolName, UUID: poolUUID}).Get(ctx, nil)
			return true, outcome(step, "pool "+poolName, err)
		})
	}

	switch {
	case d.Network && domainsErr != nil:
		res.Kept = append(res.Kept, fmt.Sprintf("network %s (a domain of the cluster could not be deleted and may still use it)", inv.Network.Name))
	case d.Network:
		netName := inv.Network.Name
		step := deleteNetworkStep(netName)
		_ = run(tr, step, func() (bool, error) {
			err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActDeleteNetwork, api.NetworkRef{Name: netName, UUID: cluster.NetworkUUID(name)}).Get(ctx, nil)
			return true, outcome(step, "network "+netName, err)
		})
	}

	// The cluster's device claims go with its domains.
	vms := req.VMs
	if len(vms) == 0 {
		vms = []string{""} // all of the cluster's
	}
	if len(stillThere) > 0 {
		// Only the VMs whose domains are gone give their devices
		// back: a domain still defined still names its devices.
		vms = nil
		for _, td := range d.Domains {
			if !stillThere[td.VM] && td.VM != "" {
				vms = append(vms, td.VM)
			}
		}
	}
	queue := api.TaskQueue(req.Spec.Cluster.Host)
	for _, vm := range vms {
		step := "release device claims"
		if vm != "" {
			step = tr.forVM(vm, step+" of "+vm)
		}
		_ = run(tr, step, func() (bool, error) {
			var r api.ReleaseResult
			err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActReleaseDevices, api.ReleaseRequest{
				Host: req.Spec.Cluster.Host, Queue: queue, Cluster: name, VM: vm}).Get(ctx, &r)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %s", step, rootMessage(err)))
				return false, err
			}
			res.ReleasedDevices = append(res.ReleasedDevices, r.Released...)
			return len(r.Released) > 0, nil
		})
	}

	// Destroyed VMs leave the cluster's service discovery record (a
	// whole cluster's record goes with the other host changes).
	if len(req.VMs) > 0 {
		var gone []string
		for _, vm := range req.VMs {
			if !stillThere[vm] {
				gone = append(gone, vm)
			}
		}
		if len(gone) > 0 {
			undoHost(ctx, pruneDiscoveryStep, api.ActPruneDiscoveryRecord, api.DiscoveryRequest{Cluster: name, VMs: gone, RequestedBy: req.RequestedBy})
		}
	}

	if leaving != nil {
		leaving.Wait(ctx)
	}
	// The name is free for any host once nothing of the cluster is left
	// here. (An inspection recorded before the registry binds nothing.)
	if len(req.VMs) == 0 && len(failures) == 0 && len(res.Kept) == 0 && slices.Contains(inv.BoundTo, req.Spec.Cluster.Host) {
		_ = run(tr, stepUnbind, func() (bool, error) {
			var r api.UnbindResult
			err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActUnbindCluster, api.UnbindRequest{Cluster: name, Host: req.Spec.Cluster.Host}).Get(ctx, &r)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %s", stepUnbind, rootMessage(err)))
			}
			return r.Removed, err
		})
	}
	if len(failures) > 0 || len(res.Kept) > 0 {
		var parts []string
		if len(failures) > 0 {
			parts = append(parts, "failed: "+strings.Join(failures, "; "))
		}
		if len(res.Kept) > 0 {
			parts = append(parts, "left: "+strings.Join(res.Kept, "; "))
		}
		msg := fmt.Sprintf("destroy of cluster %s is incomplete: %s; what was deleted stays deleted; fix the cause and run destroy again", name, strings.Join(parts, "; "))
		return res, temporal.NewNonRetryableApplicationError(msg, api.ErrTypeDestroyIncomplete, nil, res)
	}
	return res, nil
}

// clusterVMs lists the VMs the cluster owns: its domains and its leases.
func clusterVMs(inv api.Inventory) []string {
	seen := map[string]bool{}
	for _, d := range inv.Domains {
		if d.Owned && d.VM != "" {
			seen[d.VM] = true
		}
	}
	if inv.NetworkOwned() {
		for _, l := range inv.Network.Leases {
			seen[l.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func leaseNames(ls []cluster.HostLease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}

func leaseOf(ls []cluster.HostLease, vm string) cluster.HostLease {
	for _, l := range ls {
		if l.Name == vm {
			return l
		}
	}
	return cluster.HostLease{}
}

// badRequest is a request the workflow refuses itself: a client that skips
// the CLI gets the same errors as the CLI gives.
func badRequest(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeBadInput, err)
}
