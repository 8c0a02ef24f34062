package workflows

import (
	"errors"
	"fmt"
	"github.com/hpcvm/hpcvm/api"
	"strings"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/hostchange"
	"github.com/hpcvm/hpcvm/templates"
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
// VM: inspect → host checks → network → pool → base image → for every VM in
// parallel: DHCP lease (on a running network) → volume → domain → start. On
// failure or cancellation it undoes, in reverse, what this run created, and
// says what failed and what was rolled back. On a cluster that already has
// VMs, a node that fails is rolled back alone and the others stay up.
func StartCluster(ctx workflow.Context, req Request) (StartResult, error) {
	o := req.Options.WithDefaults()
	tr, err := newTracker(ctx)
	if err != nil {
		return StartResult{}, err
	}
	defer tr.dropPending()
	actx := stepContext(ctx, o)
	if err := refuseOtherHost(ctx, req.Spec.Cluster.Host); err != nil {
		return StartResult{}, err
	}
	// The workflow checks its request itself: a client that skips the CLI
	// gets the same errors, and nothing is created for a bad request. The
	// checks are validate's (one preflight); a start stops at the first
	// that fails.
	pf := &preflight{ctx: ctx, actx: actx, req: req, failFast: true}
	if err := pf.file(); err != nil {
		return StartResult{}, err
	}
	fresh, hostChanges := pf.fresh, pf.hostChanges
	if hostChanges.Any() && hostChanges.Confirm && !req.ConfirmedHostChanges {
		// Whoever submits the run (the CLI's prompt, --yes, or a parent
		// workflow) must have said yes to what would change: nothing is
		// touched before. Changes already in place need no yes; what
		// cannot be looked at counts as a change. Runs begun before
		// asked for every change.
		asked := hostChanges
		if workflow.GetVersion(ctx, "confirm-pending-host-changes", workflow.DefaultVersion, 1) == 1 {
			var pending api.PendingChanges
			if err := workflow.ExecuteActivity(hostQuestion(ctx), api.ActPendingHostChanges, pendingRequest(req, fresh, hostChanges)).Get(ctx, &pending); err == nil {
				asked = OnlyPending(hostChanges, pending)
			}
		}
		if asked.Any() {
			return StartResult{}, badRequest(fmt.Errorf("cluster %s changes host %s outside libvirt (%s), and host_configuration asks for confirmation first: "+
				"run `hpcvm start` on a terminal and answer yes, or pass --yes (clients: set confirmed_host_changes)",
				fresh.Cluster, fresh.Host, strings.Join(cluster.HostChangeSummary(fresh, asked), "; ")))
		}
	}

	if err := run(tr, "inspect", func() (bool, error) { return false, pf.inspect(true) }); err != nil {
		var f *checkFailure
		if errors.As(err, &f) && f.short != "" {
			tr.set("inspect", StepFailed, f.short)
		}
		return StartResult{}, failStart(ctx, tr, &saga{}, err)
	}
	inv := pf.inv
	// Without network.forward an existing network keeps its forwarding:
	// its XML, which EnsureNetwork checks, says what it has.
	if pf.plan.Network.Forward == "" && inv.NetworkOwned() && inv.Network.Forward != "" {
		pf.plan.Network.Forward = inv.Network.Forward
	}

	// Host checks: nothing is created before the host has shown it can run
	// this cluster. A base volume already in the pool stands for the image:
	// its source is not needed any more.
	if err := run(tr, "host checks", func() (bool, error) { return false, pf.host() }); err != nil {
		return StartResult{}, failStart(ctx, tr, &saga{}, err)
	}
	plan, img, baseExisted := pf.plan, pf.img, pf.baseExisted
	discoveryExisted, resolverExisted := pf.discoveryExisted, pf.resolverExisted

	res := StartResult{Plan: plan, Notes: plan.Machine.Notes, NotInFile: notInFile(plan, inv), Checks: pf.checks}
	sg := &saga{}
	// ensure runs a step whose object did not exist before the run, or
	// checks one that did. What it created is counted from the snapshot, so
	// a retried step that finds its object made by the first try counts.
	ensure := func(name string, existed bool, undo func(workflow.Context) error, act any, arg any) error {
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

	if err := claimDevices(ctx, o, tr, sg, req.Spec, plan); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}
	netExisted := inv.NetworkOwned()
	tr.expect("", networkStep(plan.Network.Name))
	if hostChanges.Routing {
		tr.expect("", routingStep(plan.Network.Bridge))
	}
	if hostChanges.Resolver {
		tr.expect("", resolverStep(plan.Network.DomainName))
	}
	tr.expect("", poolStep(plan.Pool.Name), baseImageStep(plan.BaseImage.Volume))
	if hostChanges.Discovery {
		tr.expect("", discoveryStep(plan.Cluster))
	}
	for _, vm := range plan.VMs {
		if _, add := leaseToAdd(inv, netExisted, vm); add {
			tr.expect(vm.Name, leaseStep(vm.Name))
		}
		tr.expect(vm.Name, volumeStep(vm.Volume), domainStep(vm.Domain), startStep(vm.Domain))
	}

	netXML, err := templates.Network(plan)
	if err != nil {
		return res, failStart(ctx, tr, sg, &stepError{"render network", err})
	}
	netRef := api.NetworkRef{Name: plan.Network.Name, UUID: plan.Network.UUID}
	if err := ensure(networkStep(plan.Network.Name), netExisted, func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteNetwork, netRef).Get(c, nil)
	}, api.ActEnsureNetwork, netXML); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}
	if hostChanges.Routing {
		if err := joinRouting(ctx, o, tr, sg, req, plan, hostChanges, &res); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}
	// The host's resolver may ask the network for the cluster's names as
	// soon as it runs; they resolve once the VMs have their leases.
	if hostChanges.Resolver {
		if err := writeResolverEntry(ctx, o, tr, sg, req, plan, hostChanges, resolverExisted, &res); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}

	poolXML, err := templates.Pool(plan)
	if err != nil {
		return res, failStart(ctx, tr, sg, &stepError{"render pool", err})
	}
	poolRef := api.PoolRef{Name: plan.Pool.Name, UUID: plan.Pool.UUID}
	if err := ensure(poolStep(plan.Pool.Name), inv.PoolOwned(), func(c workflow.Context) error {
		return workflow.ExecuteActivity(stepContext(c, o), api.ActDeletePool, poolRef).Get(c, nil)
	}, api.ActEnsurePool, poolXML); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	baseXML, err := templates.BaseImage(plan, img.Format, img.VirtualSize)
	if err != nil {
		return res, failStart(ctx, tr, sg, &stepError{"render base image", err})
	}
	baseStep := baseImageStep(plan.BaseImage.Volume)
	baseRef := api.VolumeRef{Pool: plan.Pool.Name, PoolUUID: plan.Pool.UUID, Name: plan.BaseImage.Volume}
	if !baseExisted {
		sg.push(baseStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteVolume, baseRef).Get(c, nil)
		})
	}
	if err := run(tr, baseStep, func() (bool, error) {
		var up api.UploadResult
		err := workflow.ExecuteActivity(uploadContext(ctx, o), api.ActUploadBaseImage, api.UploadRequest{
			Pool: plan.Pool.Name, PoolUUID: plan.Pool.UUID, Volume: plan.BaseImage.Volume, XML: baseXML, Source: img.Path,
			Existed: baseExisted,
		}).Get(ctx, &up)
		if err != nil {
			return false, err
		}
		res.Notes = append(res.Notes, up.Notes...)
		if !baseExisted {
			res.Created = append(res.Created, baseStep)
		}
		return !baseExisted, nil
	}); err != nil {
		return res, failStart(ctx, tr, sg, err)
	}

	// Every VM in parallel; each branch has its own compensation stack.
	scaleOut := ownsDomains(inv)
	subs := sg.pushGroup("vms", len(plan.VMs))
	errs := make([]error, len(plan.VMs))
	wg := workflow.NewWaitGroup(ctx)
	for i, vm := range plan.VMs {
		i, vm := i, vm
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			errs[i] = startVM(gctx, o, tr, plan, vm, inv, netExisted, img.Format, subs[i], &res)
		})
	}
	wg.Wait(ctx)
	if ctx.Err() != nil {
		return res, failStart(ctx, tr, sg, &stepError{"start", ctx.Err()})
	}
	if err := firstError(errs); err != nil {
		if !scaleOut {
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
				names = append(names, plan.VMs[i].Name)
			}
		}
		failed := &saga{steps: []compensation{{name: "failed nodes", group: failedSubs}}}
		return res, failNodes(ctx, tr, failed, names, err)
	}
	// The registry learns the nodes once they run.
	if hostChanges.Discovery {
		if err := writeDiscoveryRecord(ctx, o, tr, sg, req, plan, hostChanges, discoveryExisted, &res); err != nil {
			return res, failStart(ctx, tr, sg, err)
		}
	}
	return res, nil
}

// discoveryRequest is the cluster's service discovery record.
func discoveryRequest(req Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.DiscoveryRequest {
	dreq := api.DiscoveryRequest{Cluster: plan.Cluster, Dir: hc.DiscoveryDir, RequireRoot: hc.RequireRoot, RequestedBy: req.RequestedBy}
	for _, vm := range plan.VMs {
		dreq.Nodes = append(dreq.Nodes, hostchange.Node{VM: vm.Name, Role: vm.Role, Domain: vm.Domain, Address: vm.IP, MAC: vm.MAC})
	}
	return dreq
}

// writeDiscoveryRecord writes the cluster's service discovery record; the
// rollback removes it only if this run wrote the first one.
func writeDiscoveryRecord(ctx workflow.Context, o Options, tr *tracker, sg *saga, req Request, plan cluster.Plan, hc cluster.HostChangesPlan, existed bool, res *StartResult) error {
	actx := stepContext(ctx, o)
	step := discoveryStep(plan.Cluster)
	dreq := discoveryRequest(req, plan, hc)
	return run(tr, step, func() (bool, error) {
		if !existed && !hc.KeepOnFailure {
			sg.push(step, func(c workflow.Context) error {
				return workflow.ExecuteActivity(stepContext(c, o), api.ActRemoveDiscoveryRecord, api.DiscoveryRequest{Cluster: plan.Cluster, Dir: hc.DiscoveryDir, RequestedBy: req.RequestedBy}).Get(c, nil)
			})
		}
		var r api.HostChangeResult
		if err := workflow.ExecuteActivity(actx, api.ActWriteDiscoveryRecord, dreq).Get(ctx, &r); err != nil {
			return false, err
		}
		res.HostChanges = append(res.HostChanges, doneChanges(r)...)
		return r.Changed(), nil
	})
}

// resolverRequest is the host resolver's entry of the cluster.
func resolverRequest(req Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.ResolverRequest {
	return api.ResolverRequest{Cluster: plan.Cluster, Dir: hc.ResolverDir, Domain: plan.Network.DomainName,
		Gateway: plan.Network.Gateway, RequireRoot: hc.RequireRoot, RequestedBy: req.RequestedBy}
}

// writeResolverEntry teaches the host's resolver the cluster's domain; the
// rollback takes it back only if this run wrote the first entry.
func writeResolverEntry(ctx workflow.Context, o Options, tr *tracker, sg *saga, req Request, plan cluster.Plan, hc cluster.HostChangesPlan, existed bool, res *StartResult) error {
	step := resolverStep(plan.Network.DomainName)
	rreq := resolverRequest(req, plan, hc)
	return run(tr, step, func() (bool, error) {
		if !existed && !hc.KeepOnFailure {
			sg.push(step, func(c workflow.Context) error {
				return workflow.ExecuteActivity(stepContext(c, o), api.ActRemoveResolverEntry, api.ResolverRequest{Cluster: plan.Cluster, Dir: hc.ResolverDir, RequestedBy: req.RequestedBy}).Get(c, nil)
			})
		}
		var r api.HostChangeResult
		if err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActWriteResolverEntry, rreq).Get(ctx, &r); err != nil {
			return false, err
		}
		res.HostChanges = append(res.HostChanges, doneChanges(r)...)
		return r.Changed(), nil
	})
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

// routingRequest is the cluster's membership of the host's routing.
func routingRequest(req Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.RoutingRequest {
	return api.RoutingRequest{
		Cluster: plan.Cluster, Network: plan.Network.Name, Bridge: plan.Network.Bridge, Subnet: plan.Network.Range,
		EnableIPForwarding: hc.EnableIPForwarding, RequireRoot: hc.RequireRoot, RequestedBy: req.RequestedBy,
	}
}

// joinRouting makes the cluster's network one of the host's routed
// clusters, once its bridge exists. The rollback leaves the routing only if
// this run made the cluster a member.
func joinRouting(ctx workflow.Context, o Options, tr *tracker, sg *saga, req Request, plan cluster.Plan, hc cluster.HostChangesPlan, res *StartResult) error {
	actx := stepContext(ctx, o)
	step := routingStep(plan.Network.Bridge)
	routing := routingRequest(req, plan, hc)
	return run(tr, step, func() (bool, error) {
		var members []hostchange.Member
		if err := workflow.ExecuteActivity(actx, api.ActRoutedClusters).Get(ctx, &members); err != nil {
			return false, err
		}
		member := false
		for _, m := range members {
			member = member || m.Cluster == plan.Cluster
		}
		if !member && !hc.KeepOnFailure {
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

func startVM(ctx workflow.Context, o Options, tr *tracker, plan cluster.Plan, vm cluster.VMPlan, inv api.Inventory, netExisted bool, baseFormat string, sg *saga, res *StartResult) error {
	actx := stepContext(ctx, o)
	// A node rolled back alone (a scale-out) gives back the devices this
	// run claimed for it; the whole cluster's rollback frees the rest.
	if exclusiveDevices(vm) && workflow.GetVersion(ctx, "device-claims", workflow.DefaultVersion, 1) == 1 {
		info := workflow.GetInfo(ctx)
		release := api.ReleaseRequest{Host: plan.Host, Queue: info.TaskQueueName, Cluster: plan.Cluster, VM: vm.Name, RunID: info.FirstRunID}
		sg.push(tr.forVM(vm.Name, "device claims of "+vm.Name), func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActReleaseDevices, release).Get(c, nil)
		})
	}
	volXML, err := templates.VMVolume(plan, vm, baseFormat)
	if err != nil {
		return &stepError{"render volume " + vm.Volume, err}
	}
	domXML, err := templates.Domain(plan, vm, baseFormat)
	if err != nil {
		return &stepError{"render domain " + vm.Domain, err}
	}

	// A network that existed before the run gets the VM's lease in place,
	// without a restart: how a node joins a running cluster.
	if lease, add := leaseToAdd(inv, netExisted, vm); add {
		leaseName := leaseStep(vm.Name)
		req := api.DHCPHostRequest{Network: api.NetworkRef{Name: plan.Network.Name, UUID: plan.Network.UUID}, Lease: lease}
		if !hasMAC(inv.Network.Leases, vm.MAC) {
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

	volStep := volumeStep(vm.Volume)
	volRef := api.VolumeRef{Pool: plan.Pool.Name, PoolUUID: plan.Pool.UUID, Name: vm.Volume}
	_, volExisted := inv.Volume(vm.Volume)
	if !volExisted {
		sg.push(volStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteVolume, volRef).Get(c, nil)
		})
	}
	if err := run(tr, volStep, func() (bool, error) {
		err := workflow.ExecuteActivity(actx, api.ActEnsureVolume, api.VolumeRequest{Pool: plan.Pool.Name, PoolUUID: plan.Pool.UUID, XML: volXML}).Get(ctx, nil)
		if err == nil && !volExisted {
			res.Created = append(res.Created, volStep)
		}
		return !volExisted, err
	}); err != nil {
		return err
	}

	domStep := domainStep(vm.Domain)
	dom, existed := inv.Domain(vm.Domain)
	if !existed {
		ref := api.DomainRef{Name: vm.Domain, Cluster: plan.Cluster}
		sg.push(domStep, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActDeleteDomain, ref).Get(c, nil)
		})
	}
	var ensured api.EnsureResult
	if err := run(tr, domStep, func() (bool, error) {
		err := workflow.ExecuteActivity(actx, api.ActEnsureDomain, domXML).Get(ctx, &ensured)
		if err == nil && !existed {
			res.Created = append(res.Created, domStep)
		}
		return !existed, err
	}); err != nil {
		return err
	}
	if ensured.Kept != "" {
		note := fmt.Sprintf("domain %s was kept as it is, though it differs from what this hpcvm defines in what no cluster.yaml key sets: %s; it was changed by hand or defined by another version of hpcvm (`hpcvm destroy --vm %s`, then start, re-creates it from the template, with a new disk)", vm.Domain, ensured.Kept, vm.Name)
		tr.set(domStep, StepUnchanged, note)
		res.Notes = append(res.Notes, note)
	}

	startName := startStep(vm.Domain)
	domRef := api.DomainRef{Name: vm.Domain, Cluster: plan.Cluster}
	wasRunning := existed && dom.Running()
	if !wasRunning {
		sg.push(startName, func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActForceOffDomain, domRef).Get(c, nil)
		})
	}
	return run(tr, startName, func() (bool, error) {
		err := workflow.ExecuteActivity(launchContext(ctx, o), api.ActStartDomain, domRef).Get(ctx, nil)
		// Counted from the snapshot: a retry that finds the domain
		// started by the first try still started it in this run.
		if err == nil && !wasRunning {
			res.Started = append(res.Started, vm.Domain)
		}
		return !wasRunning, err
	})
}

// leaseToAdd is the DHCP lease of vm, and whether the run adds it to a
// network that existed before it (a new network has every lease in its XML).
func leaseToAdd(inv api.Inventory, netExisted bool, vm cluster.VMPlan) (cluster.HostLease, bool) {
	lease := cluster.HostLease{Name: vm.Name, MAC: vm.MAC, IP: vm.IP}
	return lease, netExisted && !hasLease(inv.Network.Leases, lease)
}

// refuseLookalikes stops a start before it creates anything when an object
// has one of the cluster's names but not hpcvm's mark: hpcvm would
// otherwise adopt, change or later delete someone else's object.
func refuseLookalikes(p cluster.Plan, inv api.Inventory) error {
	var problems []string
	if n := inv.Network; n != nil && !n.Owned {
		problems = append(problems, fmt.Sprintf("network %s exists but was not created by hpcvm (its UUID %s is not the one hpcvm gives cluster %s's network)", n.Name, n.UUID, p.Cluster))
	}
	if pl := inv.Pool; pl != nil && !pl.Owned {
		problems = append(problems, fmt.Sprintf("pool %s (at %s) exists but was not created by hpcvm (its UUID %s is not the one hpcvm gives cluster %s's pool)", pl.Name, pl.Path, pl.UUID, p.Cluster))
	}
	for _, d := range inv.Domains {
		if !d.Owned {
			problems = append(problems, fmt.Sprintf("domain %s exists but was not created by hpcvm for cluster %s (it has no hpcvm metadata naming the cluster)", d.Name, p.Cluster))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	msg := strings.Join(problems, "; ") + ". hpcvm never changes or deletes what it did not create, and nothing was created: rename or remove those objects yourself (virsh), or give the cluster another name"
	return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeNotOwned, nil)
}

// plannedForward is the forward mode the cluster's network has after the run.
func plannedForward(n cluster.NetworkPlan, inv api.Inventory) string {
	if inv.NetworkOwned() && inv.Network.Forward != "" && n.Forward == "" {
		return inv.Network.Forward + " (kept)"
	}
	return n.ForwardMode()
}

// refuseForwardChange stops a start whose cluster.yaml names a forward
// mode other than the one the cluster's existing network has: libvirt
// changes a network's forwarding only by tearing it down, which cuts every
// guest off. Without network.forward the network keeps what it has (a
// cluster made before the key existed keeps its isolated network).
func refuseForwardChange(p cluster.Plan, inv api.Inventory) error {
	n := inv.Network
	if !inv.NetworkOwned() || n.Forward == "" || p.Network.Forward == "" || n.Forward == p.Network.Forward {
		return nil
	}
	msg := fmt.Sprintf("network.forward is %q, but the cluster's network %s was created with forward %q; hpcvm does not change the forwarding of an existing network (it would cut every guest off): remove network.forward or set it to %q to keep the network as it is, or destroy the cluster and start it again to get %q; nothing was changed",
		p.Network.Forward, n.Name, n.Forward, n.Forward, p.Network.Forward)
	return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeBadInput, nil)
}

// refuseDNSChange stops a start whose DNS forwarders (network.dns_servers,
// and the host resolver of host DNS integration) differ from those of the
// cluster's existing network: libvirt changes them only by restarting the
// network, which cuts every guest off.
func refuseDNSChange(p cluster.Plan, inv api.Inventory) error {
	if !inv.NetworkOwned() {
		return nil
	}
	show := func(fs []cluster.DNSForwarder) string {
		if len(fs) == 0 {
			return "none (the host's resolv.conf)"
		}
		out := make([]string, len(fs))
		for i, f := range fs {
			out[i] = f.String()
		}
		return strings.Join(out, ", ")
	}
	have, want := show(inv.Network.DNSForwarders), show(p.Network.DNSForwarders())
	if have == want {
		return nil
	}
	return badRequest(fmt.Errorf("cluster.yaml gives network %s the DNS forwarders %s, but it has %s "+
		"(hpcvm sets them when it creates the network, from network.dns_servers and, with host_configuration.network.enable_host_dns_integration, the host's dnsmasq for *.local; a hand edit of the network counts too); "+
		"hpcvm does not change the DNS of an existing network (libvirt would restart it and cut every guest off): make the file ask for what the network has, "+
		"or destroy the cluster and start it again; nothing was changed", p.Network.Name, want, have))
}

// refuseRoutingChange refuses to start a routed cluster whose file no
// longer asks for the routing: a start makes what is missing and does not
// undo host changes; destroy does.
func refuseRoutingChange(p cluster.Plan, hc cluster.HostChangesPlan, inv api.Inventory) error {
	if inv.Routing == nil || !inv.Routing.Member || hc.Routing {
		return nil
	}
	with := "no other cluster yet"
	if len(inv.Routing.With) > 0 {
		with = strings.Join(inv.Routing.With, ", ")
	}
	msg := fmt.Sprintf("cluster %s is one of host %s's routed clusters (firewall rules tagged hpcvm-routed:%s; routed with %s), but cluster.yaml no longer asks for it "+
		"(it takes network.dns_mode routed and host_configuration.network.enable_cross_cluster_routing: true); hpcvm does not take a running cluster out of the routing: "+
		"put both back to keep it, or `hpcvm destroy` the cluster (which undoes the routing) and start it again; nothing was changed",
		p.Cluster, p.Host, p.Cluster, with)
	return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeBadInput, nil)
}

// notInFile lists the VMs the cluster owns that the plan no longer names.
func notInFile(p cluster.Plan, inv api.Inventory) []string {
	var out []string
	for _, d := range inv.Domains {
		if _, planned := p.VM(d.VM); d.Owned && !planned {
			out = append(out, d.VM)
		}
	}
	return out
}

func ownsDomains(inv api.Inventory) bool {
	for _, d := range inv.Domains {
		if d.Owned {
			return true
		}
	}
	return false
}

func domainNames(p cluster.Plan) []string {
	out := make([]string, len(p.VMs))
	for i, vm := range p.VMs {
		out[i] = vm.Domain
	}
	return out
}

func hasLease(ls []cluster.HostLease, want cluster.HostLease) bool {
	for _, l := range ls {
		if strings.EqualFold(l.MAC, want.MAC) && l.Name == want.Name && l.IP == want.IP {
			return true
		}
	}
	return false
}

func hasMAC(ls []cluster.HostLease, mac string) bool {
	for _, l := range ls {
		if strings.EqualFold(l.MAC, mac) {
			return true
		}
	}
	return false
}

// failNodes rolls back the nodes that failed on a cluster that was already
// up, and says so.
func failNodes(ctx workflow.Context, tr *tracker, sg *saga, names []string, err error) error {
	tr.dropPending() // what was not begun will not be: the progress shows the rollback
	undone, notUndone := sg.compensate(ctx, tr)
	f := Failure{FailedStep: "start", Cause: rootMessage(err), RolledBack: undone, NotUndone: notUndone}
	var se *stepError
	if errors.As(err, &se) {
		f.FailedStep = se.step
	}
	msg := fmt.Sprintf("step %q failed: %s; node(s) %s rolled back alone (%s); the cluster's other nodes, old and new, are up",
		f.FailedStep, f.Cause, strings.Join(names, ", "), orDefault(strings.Join(undone, ", "), "nothing of theirs had been created"))
	if len(notUndone) > 0 {
		msg += fmt.Sprintf("; COULD NOT UNDO: %s (run `hpcvm destroy --vm NAME` once the cause is fixed)", strings.Join(notUndone, "; "))
	}
	return temporal.NewNonRetryableApplicationError(msg, "StartFailed", err, f)
}

// failStart rolls back and builds the error the operator reads: what failed,
// why, and what was undone.
func failStart(ctx workflow.Context, tr *tracker, sg *saga, err error) error {
	tr.dropPending() // what was not begun will not be: the progress shows the rollback
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
	// A device another cluster claims is a conflict in the file, found
	// before anything was created, like bad input.
	if errors.As(err, &appErr) && (appErr.Type() == api.ErrTypeBadInput || appErr.Type() == api.ErrTypeDeviceClaimed) {
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

// runningVMs names the cluster's VMs whose domains hold their memory
// already (running, paused, suspended): their hugepages are taken.
func runningVMs(inv api.Inventory) []string {
	var out []string
	for _, d := range inv.Domains {
		holds := d.State != "shut off" && d.State != "crashed" && d.State != ""
		if d.Owned && holds && d.VM != "" {
			out = append(out, d.VM)
		}
	}
	return out
}

// claimDevices claims the cluster's exclusive PCI functions in the host's
// device ledger before anything is created; the compensation frees what
// this run claimed (a claim the cluster held before stays). Runs recorded
// before the ledger existed claimed nothing.
func claimDevices(ctx workflow.Context, o Options, tr *tracker, sg *saga, s cluster.Spec, plan cluster.Plan) error {
	devices := cluster.ExclusiveDevices(s)
	if len(devices) == 0 || workflow.GetVersion(ctx, "device-claims", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	info := workflow.GetInfo(ctx)
	// Claims are the run chain's: a reset run (a new run ID) still gives
	// back what its first run claimed.
	req := api.ClaimRequest{Host: plan.Host, Queue: info.TaskQueueName, Cluster: plan.Cluster, RunID: info.FirstRunID}
	for _, d := range devices {
		req.Devices = append(req.Devices, api.DeviceClaim{Address: d.PCIAddress, VM: d.VM})
	}
	release := api.ReleaseRequest{Host: plan.Host, Queue: req.Queue, Cluster: plan.Cluster, RunID: req.RunID}
	err := run(tr, "device claims", func() (bool, error) {
		var r api.ClaimResult
		if err := workflow.ExecuteActivity(stepContext(ctx, o), api.ActClaimDevices, req).Get(ctx, &r); err != nil {
			return false, err
		}
		return len(r.Added) > 0, nil
	})
	// A claim is all or nothing: refused, it took nothing. Any other
	// outcome (success, or a result lost to a timeout) may hold claims of
	// this run, which the compensation frees by the run's ID.
	var appErr *temporal.ApplicationError
	if !(errors.As(err, &appErr) && appErr.Type() == api.ErrTypeDeviceClaimed) {
		sg.push("device claims", func(c workflow.Context) error {
			return workflow.ExecuteActivity(stepContext(c, o), api.ActReleaseDevices, release).Get(c, nil)
		})
	}
	return err
}

// judgeSpace weighs what start writes into the pool against the free space
// of its file system: the base image is written in full when uploaded, so
// it must fit; the VMs' copy-on-write disks start empty and grow, so that
// they could outgrow the space is a note, not a refusal.
func judgeSpace(p cluster.Plan, inv api.Inventory, img api.ImageInfo, baseExisted bool, space api.SpaceInfo) (string, error) {
	var base uint64
	if !baseExisted {
		base = uint64(max(img.Allocated, 0))
		if img.Allocated == 0 {
			base = uint64(max(img.FileSize, 0))
		}
	}
	if base > space.Available {
		return "", fmt.Errorf("the pool's file system (at %s) has %s free, and the base image %s needs %s: free space there, or choose another cluster.storage.pool_path",
			space.Measured, size(space.Available), img.Path, size(base))
	}
	var disks uint64
	var vms int
	for _, vm := range p.VMs {
		if _, exists := inv.Volume(vm.Volume); !exists {
			disks += uint64(vm.DiskGiB) * templates.GiB
			vms++
		}
	}
	if left := space.Available - base; disks > left {
		return fmt.Sprintf("thin volumes: the %d new VM disk(s) may grow to %s in all, and the pool's file system (at %s) has %s free once the base image is in; a guest's writes fail when it is full",
			vms, size(disks), space.Measured, size(left)), nil
	}
	return "", nil
}

func exclusiveDevices(vm cluster.VMPlan) bool {
	for _, d := range vm.HostDevices {
		if d.Exclusive {
			return true
		}
	}
	return false
}

// specValidator is the validation the run began under: runs recorded
// before the hardware settings were judged (recorded is true), before
// host_configuration was checked key by key, or before hpcvm made host
// changes, replay under their rules.
func specValidator(ctx workflow.Context) (validate func(cluster.Spec) error, recorded bool) {
	if recordedRules(ctx) {
		return cluster.ValidateAsRecorded, true
	}
	switch hostRulesVersion(ctx) {
	case workflow.DefaultVersion:
		return cluster.ValidateBeforeHostRules, false
	case 1:
		return cluster.ValidateBeforeHostChanges, false
	case 2:
		return cluster.ValidateBeforeResolver, false
	}
	return cluster.Validate, false
}

// hostRulesVersion is the generation of host_configuration's rules the run
// began under: 1 checked it key by key with every change off, 2 makes the
// routing it allows, 3 teaches the host's resolver the names when allowed
// and compares the network's DNS forwarders. (Temporal returns the first answer to every later
// call in the run.)
func hostRulesVersion(ctx workflow.Context) workflow.Version {
	return workflow.GetVersion(ctx, "host-configuration-rules", workflow.DefaultVersion, 3)
}

// hostChangesOf is what the run may change on the host: nothing for runs
// begun before hpcvm made host changes.
func hostChangesOf(ctx workflow.Context, spec cluster.Spec) cluster.HostChangesPlan {
	v := hostRulesVersion(ctx)
	if recordedRules(ctx) || v < 2 {
		return cluster.HostChangesPlan{}
	}
	h := cluster.HostChangesOf(spec)
	if v < 3 {
		h.Resolver, h.ResolverDir, h.ResolverAddress = false, "", ""
	}
	return h
}

// recordedRules says the run was recorded before the hardware settings
// were judged and acted on: it goes on under the rules it began with.
func recordedRules(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "typed-hardware", workflow.DefaultVersion, 1) == workflow.DefaultVersion
}
