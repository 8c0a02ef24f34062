package preflight

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/templates"
	"go.temporal.io/sdk/temporal"
)

// inspect reads what exists of the cluster and checks that start may act
// on it: names, routing, forwarding, addresses, DNS. A start's inspection
// activates the cluster's inactive pool to read its volumes.
func (r *run) inspect() error {
	inv, err := r.host.InspectCluster(r.ctx, api.InspectRequest{
		Cluster: r.fresh.Cluster, PlannedDomains: domainNames(r.fresh), Activate: r.failFast, AddressesInUse: true,
	})
	if err != nil {
		return err
	}
	r.inv = inv
	if err := r.shortCheck(CheckNames, refuseLookalikes(r.fresh, r.inv), "no object with the cluster's names was made by anyone but hpcvm",
		"objects with the cluster's names were not created by hpcvm"); err != nil {
		return err
	}
	if err := r.binding(); err != nil {
		return err
	}
	routingErr := refuseRoutingChange(r.fresh, r.hostChanges, r.inv)
	if rt := r.inv.Routing; !r.failFast && routingErr == nil && rt != nil && rt.Problem != "" && !r.hostChanges.Routing {
		// "Cannot tell" is not "not routed" (fail closed) for validate.
		// A start's inspection refuses itself when the cluster was ever
		// routed (its audit log says so) and goes on otherwise.
		routingErr = fmt.Errorf("cannot tell whether cluster %s is one of host %s's routed clusters: %s; run it again once the host's firewall rules can be read",
			r.fresh.Cluster, r.fresh.Host, rt.Problem)
	}
	if err := r.shortCheck(CheckRouting, routingErr, routingDetail(r.hostChanges, r.inv),
		"the cluster is routed; cluster.yaml no longer asks for it"); err != nil {
		return err
	}
	if err := r.shortCheck(CheckForward, refuseForwardChange(r.fresh, r.inv), "the network's forwarding is the one cluster.yaml asks for",
		"network.forward differs from the existing network's"); err != nil {
		return err
	}
	// A new network's range must be free on the host: libvirt would
	// refuse it only at the network step ("in use by interface"), after
	// the run had claimed devices. (An inspection that could not list
	// the host's addresses says so: no clash is claimed absent then.)
	if r.inv.Network == nil && (len(r.inv.AddressesInUse) > 0 || r.inv.AddressesListed) {
		if err := r.shortCheck(CheckRange, rangeClash(r.fresh, r.inv.AddressesInUse), fmt.Sprintf("%s overlaps no network or route of the host", r.fresh.Network.Range),
			"the network's range is in use on the host"); err != nil {
			return err
		}
	}
	// Addresses the network already gives stay with their VMs.
	var leases []cluster.HostLease
	if r.inv.NetworkOwned() {
		leases = r.inv.Network.Leases
	}
	plan, err := cluster.NewPlanKeeping(r.req.Spec, leases)
	if err != nil {
		if e := r.shortCheck(CheckAddresses, badRequest(err), "", "the VMs' addresses cannot be planned"); e != nil {
			return e
		}
		return errStop
	}
	r.out.Checks = append(r.out.Checks, api.Check{Name: CheckAddresses, OK: true, Detail: "every VM has a MAC and an address"})
	r.hostChanges.ApplyTo(&plan)
	// Without network.forward an existing network keeps its forwarding:
	// its XML, which EnsureNetwork checks, says what it has.
	if plan.Network.Forward == "" && r.inv.NetworkOwned() && r.inv.Network.Forward != "" {
		plan.Network.Forward, r.forwardKept = r.inv.Network.Forward, true
	}
	r.plan = plan
	return r.shortCheck(CheckDNS, refuseDNSChange(r.plan, r.inv), "the network's DNS forwarders are the ones cluster.yaml asks for",
		"the DNS forwarders differ from the existing network's")
}

func routingDetail(hc cluster.HostChangesPlan, inv api.Inventory) string {
	switch {
	case hc.Routing:
		return "cluster.yaml asks for routing between clusters"
	case inv.Routing != nil && inv.Routing.Member:
		return "routed"
	}
	return "the cluster is not routed, and cluster.yaml does not ask for it"
}

// hostChecks checks that the host can run the plan: capabilities,
// hardware, PCI functions, paths, host-change files, base image, disks,
// pool space.
func (r *run) hostChecks() error {
	caps, err := r.host.ProbeHost(r.ctx)
	if err != nil {
		return err
	}
	r.caps = caps
	r.out.Checks = append(r.out.Checks, api.Check{Name: CheckHost, OK: true, Detail: HostSummary(r.caps)})
	if err := r.readLedger(); err != nil {
		return err
	}
	r.negotiated = true
	if err := r.plan.NegotiateRunning(r.req.Spec, r.caps, runningVMs(r.inv)); err != nil {
		r.negotiated = false
		var mismatch *cluster.HostMismatchError
		if errors.As(err, &mismatch) {
			if err := r.problems(CheckHardware, badRequest(err), mismatch.Problems); err != nil {
				return err
			}
		} else if err := r.check(CheckHardware, badRequest(err), ""); err != nil {
			return err
		}
	} else {
		r.out.Checks = append(r.out.Checks, api.Check{Name: CheckHardware, OK: true, Detail: machineSummary(r.plan.Machine)})
		if err := r.ledgerCheck(); err != nil {
			r.negotiated = false
			return err
		}
	}
	if err := r.pci(); err != nil {
		return err
	}

	// Paths the worker may not use are refused before anything exists.
	r.base, r.baseExisted = r.inv.Volume(r.plan.BaseImage.Volume)
	paths := hostPaths(r.req.Spec, r.plan, r.inv, r.baseExisted)
	if r.hostChanges.Discovery {
		paths.DiscoveryDir = r.hostChanges.DiscoveryDir
	}
	if r.hostChanges.Resolver {
		paths.ResolverDir = r.hostChanges.ResolverDir
	}
	if !paths.Empty() {
		err := r.host.CheckHostPaths(r.ctx, paths)
		if err != nil && !isBadInput(err) {
			return err
		}
		if err := r.check(CheckPaths, err, "the worker may use every path the cluster names"); err != nil {
			return err
		}
	}
	if err := r.hostChangeFiles(); err != nil {
		return err
	}

	if r.baseExisted {
		r.img = api.ImageInfo{Path: r.plan.BaseImage.Source, Format: r.base.Format, VirtualSize: r.base.Capacity}
		// A base an older hpcvm uploaded is judged as an image would be
		// (InspectCluster read its header).
		var problem error
		switch {
		case r.base.Problem != "":
			problem = temporal.NewNonRetryableApplicationError(r.base.Problem, api.ErrTypeBadInput, nil)
		case r.base.Format == "":
			// Nothing could be sized or rendered on it: refused here,
			// not found missing by the start later.
			problem = badRequest(fmt.Errorf("volume %s is in the pool, but libvirt names no format for it: remove it (`hpcvm destroy`, or virsh vol-delete if no VM stands on it) and start again", r.base.Name))
		}
		if err := r.check(CheckBaseImage, problem, fmt.Sprintf("volume %s is in the pool already (%s, %s virtual)", r.base.Name, r.base.Format, size(r.base.Capacity))); err != nil {
			return err
		}
	} else {
		img, err := r.host.InspectBaseImage(r.ctx, r.plan.BaseImage.Source)
		if err != nil && !isBadInput(err) {
			return err
		}
		r.img = img
		if err != nil && r.failedWith(CheckPaths, rootMessage(err)) {
			// The same refusal the paths check reported: said once.
			err = errors.New("refused by the paths check above")
		}
		if err := r.check(CheckBaseImage, err, fmt.Sprintf("%s: %s, %s virtual, %s on disk", r.img.Path, r.img.Format, size(r.img.VirtualSize), size(uint64(r.img.FileSize)))); err != nil {
			return err
		}
	}
	if r.img.Format == "" {
		return nil // the base image could not be read: nothing to size
	}
	if small := smallDisks(r.plan, r.img); len(small) > 0 {
		err := badRequest(errors.New(small[0]))
		if !r.failFast {
			err = errors.New(strings.Join(small, "; "))
		}
		if err := r.check(CheckDiskSizes, err, ""); err != nil {
			return err
		}
	} else {
		r.out.Checks = append(r.out.Checks, api.Check{Name: CheckDiskSizes, OK: true, Detail: "every VM's disk holds the base image"})
	}
	space, err := r.host.PoolSpace(r.ctx, r.plan.Pool.Path)
	if err != nil {
		return err
	}
	note, err := judgeSpace(r.plan, r.inv, r.img, r.baseExisted, space)
	if err != nil {
		err = badRequest(err)
	}
	if err := r.check(CheckPoolSpace, err, fmt.Sprintf("%s free at %s", size(space.Available), space.Measured)); err != nil {
		return err
	}
	if note != "" {
		r.plan.Machine.Notes = append(r.plan.Machine.Notes, note)
	}
	return nil
}

// pci checks the cluster's PCI functions on the host and assigns them.
func (r *run) pci() error {
	addrs := cluster.PCIAddresses(r.req.Spec)
	if len(addrs) == 0 {
		return nil
	}
	facts, err := r.host.ValidatePCI(r.ctx, api.PCIRequest{Host: r.plan.Host, Cluster: r.plan.Cluster, Addresses: addrs})
	if err != nil {
		return err
	}
	if problems := r.plan.AssignPCI(r.req.Spec, r.plan.Host, facts); len(problems) > 0 {
		r.negotiated = false
		return r.problems(CheckPCI, badRequest(&cluster.HostMismatchError{Host: r.plan.Host, Problems: problems}), problems)
	}
	r.out.Checks = append(r.out.Checks, api.Check{Name: CheckPCI, OK: true, Detail: fmt.Sprintf("%d function(s) present, in complete IOMMU groups, held by no other domain (%s)", len(addrs), facts.Source)})
	return nil
}

// hostChangeFiles refuses a registry file or resolver entry of the
// cluster's name that is not hpcvm's, before anything is created.
func (r *run) hostChangeFiles() error {
	hc := r.hostChanges
	if hc.Discovery {
		existed, err := r.host.DiscoveryRecordExists(r.ctx, DiscoveryRequest(r.req, r.plan, hc))
		if err != nil && !isBadInput(err) && !isNotOwned(err) {
			return err
		}
		r.discoveryExisted = existed
		if err := r.check(CheckDiscovery, err, existedDetail(existed, "the cluster's service discovery record")); err != nil {
			return err
		}
	}
	if hc.Resolver {
		existed, err := r.host.ResolverEntryExists(r.ctx, ResolverRequest(r.req, r.plan, hc))
		if err != nil && !isBadInput(err) && !isNotOwned(err) {
			return err
		}
		r.resolverExisted = existed
		if err := r.check(CheckResolver, err, existedDetail(existed, "the host resolver's entry of the cluster")); err != nil {
			return err
		}
	}
	return nil
}

func existedDetail(existed bool, what string) string {
	if existed {
		return what + " is hpcvm's already"
	}
	return what + " is not there yet: start writes it"
}

// documents renders every document of the plan and compares the domains
// that exist with the file's: a start refuses a difference before it
// creates anything (EnsureDomain refuses it again, should a domain change
// between the preflight and its define step).
func (r *run) documents() ([]api.Document, error) {
	docs, err := planDocuments(r.plan, r.img)
	if err := r.check(CheckXML, err, fmt.Sprintf("%d documents rendered", len(docs))); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, errStop
	}
	if !r.failFast {
		r.out.Documents = docs
	}
	var domainXML []string
	var domainObj []int
	for i, o := range r.out.Objects {
		if o.Kind == "domain" && (o.Action == "keep" || o.Action == "start") {
			for _, d := range docs {
				if d.Kind == "domain" && d.Name == o.Name {
					domainXML = append(domainXML, d.XML)
					domainObj = append(domainObj, i)
				}
			}
		}
	}
	if len(domainXML) == 0 {
		return docs, nil
	}
	diffs, err := r.host.DomainDifferences(r.ctx, domainXML)
	if err != nil {
		return nil, err
	}
	var changed []string
	for i, d := range diffs {
		if d == "" || i >= len(domainObj) {
			continue
		}
		o := &r.out.Objects[domainObj[i]]
		if drift, kept := strings.CutPrefix(d, api.KeptPrefix); kept {
			o.Detail = "kept as it is, though it differs from what this hpcvm defines in what no cluster.yaml key sets: " + drift
			continue
		}
		o.Action = "refused"
		o.Detail = "defined otherwise: " + d
		changed = append(changed, fmt.Sprintf("%s: %s", o.Name, d))
	}
	if len(changed) > 0 {
		err = badRequest(fmt.Errorf("%s; hpcvm does not change a domain that exists: undo the change in cluster.yaml, or remove the VM (`hpcvm destroy --vm NAME`) and start again; nothing was changed", strings.Join(changed, "; ")))
	}
	if err := r.shortCheck(CheckOldDomains, err, fmt.Sprintf("%d match the file", len(domainXML)), "an existing domain differs from the file"); err != nil {
		return nil, err
	}
	return docs, nil
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

// plannedForward is the forward mode the cluster's network has after the
// run; kept: the file names none, and the network keeps its own.
func plannedForward(n cluster.NetworkPlan, kept bool) string {
	if kept {
		return n.Forward + " (kept)"
	}
	return n.ForwardMode()
}

// refuseForwardChange stops a start whose cluster.yaml names a forward
// mode other than the one the cluster's existing network has: libvirt
// changes a network's forwarding only by tearing it down, which cuts every
// guest off. Without network.forward the network keeps what it has.
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

// rangeClash refuses a cluster network whose range overlaps a subnet in
// use on the host, naming its owner, and one whose bridge a libvirt
// network or a host interface with a route holds. It runs only while the
// cluster has no network of its own.
func rangeClash(p cluster.Plan, inUse []api.AddressInUse) error {
	want, err := netip.ParsePrefix(p.Network.Range)
	if err != nil {
		return nil // the file's check refuses a bad range
	}
	var clashes, bridge []string
	for _, u := range inUse {
		if u.Bridge != "" && u.Bridge == p.Network.Bridge {
			bridge = append(bridge, u.Owner)
			continue
		}
		have, err := netip.ParsePrefix(u.Subnet)
		if err != nil {
			continue
		}
		if want.Overlaps(have) {
			clashes = append(clashes, fmt.Sprintf("%s of %s", have.Masked(), u.Owner))
		}
	}
	var problems []string
	if len(clashes) > 0 {
		problems = append(problems, fmt.Sprintf("network.network_range %s of cluster %s overlaps %s on host %s: libvirt would refuse the network, and guests could not reach what is there; "+
			"give network.network_range a free range (and gateway_ip in it), or remove what holds it", want, p.Cluster, strings.Join(clashes, "; "), p.Host))
	}
	if len(bridge) > 0 {
		problems = append(problems, fmt.Sprintf("the cluster network's bridge %s is taken on host %s by %s: libvirt would refuse the network; "+
			"give network.bridge_name another name, or remove what holds it", p.Network.Bridge, p.Host, strings.Join(slices.Compact(slices.Sorted(slices.Values(bridge))), "; ")))
	}
	if len(problems) == 0 {
		return nil
	}
	return badRequest(fmt.Errorf("%s; nothing was changed", strings.Join(problems, "; and ")))
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

// smallDisks says, per VM whose disk cannot hold the base image, what to
// give it instead.
func smallDisks(p cluster.Plan, img api.ImageInfo) []string {
	var out []string
	for _, vm := range p.VMs {
		if uint64(vm.DiskGiB)*templates.GiB < img.VirtualSize {
			out = append(out, fmt.Sprintf("VM %s has disk_size_gb %d, smaller than the base image's virtual size (%.1f GiB): give it at least %d", vm.Name, vm.DiskGiB, gib(img.VirtualSize), (img.VirtualSize+templates.GiB-1)/templates.GiB))
		}
	}
	return out
}

// hostPaths are the host paths start would use that the worker must
// allow: the base image unless its volume exists, the pool's directory
// unless the pool is the cluster's already, and every shared directory.
func hostPaths(s cluster.Spec, p cluster.Plan, inv api.Inventory, baseExisted bool) api.PathsRequest {
	paths := api.PathsRequest{SharedDirs: sharedDirs(s)}
	if !baseExisted {
		paths.BaseImage = p.BaseImage.Source
	}
	if !inv.PoolOwned() {
		paths.PoolDir = p.Pool.Path
	}
	return paths
}

// sharedDirs lists the host directories the spec's VMs share.
func sharedDirs(s cluster.Spec) []api.SharedDir {
	var out []api.SharedDir
	add := func(path string, mounts []cluster.VirtioFSMountSpec) {
		for i, m := range mounts {
			out = append(out, api.SharedDir{Field: fmt.Sprintf("%s.virtio_fs_mounts[%d].host_path", path, i), Path: m.HostPath})
		}
	}
	add("controller", s.Controller.VirtioFSMounts)
	for i, n := range s.ComputeNodes {
		add(fmt.Sprintf("compute_nodes[%d]", i), n.VirtioFSMounts)
	}
	return out
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

func domainNames(p cluster.Plan) []string {
	out := make([]string, len(p.VMs))
	for i, vm := range p.VMs {
		out[i] = vm.Domain
	}
	return out
}
