package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/templates"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// PlanCluster runs every check start runs before it creates anything, and
// says what start would create or change, without changing anything: the
// inspection does not even start an inactive pool. It takes no lock, so it
// runs beside any operation. A check that fails is reported, not raised;
// the workflow fails only when the host cannot be asked at all.
func PlanCluster(ctx workflow.Context, req Request) (r PlanReport, err error) {
	o := req.Options.WithDefaults()
	check := func(name string, err error, detail string) bool {
		c := Check{Name: name, OK: err == nil, Detail: detail}
		if err != nil {
			c.Detail = rootMessage(err)
		}
		r.Checks = append(r.Checks, c)
		return err == nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.StepTimeout,
		// Interactive: fail fast when the host's worker is not there.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	// The checks start runs, by the same function (one preflight): each is
	// reported, and the next run where it does not depend on one that
	// failed.
	pf := &preflight{ctx: ctx, actx: actx, req: req}
	defer func() { r.Checks = append(pf.checks, r.Checks...) }()
	if err := pf.file(); err != nil {
		return r, nil
	}
	r.Plan = pf.fresh
	if err := refuseOtherHost(ctx, pf.fresh.Host); err != nil {
		return r, err
	}
	if err := pf.inspect(false); err != nil {
		return r, err
	}
	if pf.failed(CheckAddresses) {
		return r, nil
	}
	r.Plan, r.NotInFile = pf.plan, notInFile(pf.plan, pf.inv)
	if err := pf.host(); err != nil {
		return r, err
	}
	r.Host, r.Plan = pf.caps, pf.plan
	plan, inv, img, baseExisted, negotiated := pf.plan, pf.inv, pf.img, pf.baseExisted, pf.negotiated
	ctx = actx

	r.Objects = plannedObjects(plan, inv, baseExisted)
	if negotiated && img.Format != "" && !pf.failed(CheckBaseImage) {
		docs, err := planDocuments(plan, img)
		if !check("xml", err, fmt.Sprintf("%d documents rendered", len(docs))) {
			return r, nil
		}
		r.Documents = docs
		// Existing domains whose definition differs from the file's are
		// what start would refuse.
		var domainXML []string
		var domainObj []int
		for i, o := range r.Objects {
			if o.Kind == "domain" && (o.Action == "keep" || o.Action == "start") {
				for _, d := range docs {
					if d.Kind == "domain" && d.Name == o.Name {
						domainXML = append(domainXML, d.XML)
						domainObj = append(domainObj, i)
					}
				}
			}
		}
		if len(domainXML) > 0 {
			var diffs []string
			if err := workflow.ExecuteActivity(ctx, api.ActDomainDifferences, domainXML).Get(ctx, &diffs); err != nil {
				return r, err
			}
			var changed []string
			for i, d := range diffs {
				if d == "" || i >= len(domainObj) {
					continue
				}
				o := &r.Objects[domainObj[i]]
				if drift, kept := strings.CutPrefix(d, api.KeptPrefix); kept {
					o.Detail = "kept as it is, though it differs from what this hpcvm defines in what no cluster.yaml key sets: " + drift
					continue
				}
				o.Action = "refused"
				o.Detail = "defined otherwise: " + d
				changed = append(changed, fmt.Sprintf("%s: %s", o.Name, d))
			}
			if len(changed) > 0 {
				check("existing domains", fmt.Errorf("%s; hpcvm does not change a domain that exists: undo the change in cluster.yaml, or remove the VM (`hpcvm destroy --vm NAME`) and start again", strings.Join(changed, "; ")), "")
			} else {
				check("existing domains", nil, fmt.Sprintf("%d match the file", len(domainXML)))
			}
		}
	}
	return r, nil
}

func isBadInput(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == api.ErrTypeBadInput
}

func gib(b uint64) float64 { return float64(b) / float64(templates.GiB) }

// size shows a byte count in MiB below a GiB, in GiB above.
func size(b uint64) string {
	if b < templates.GiB {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", gib(b))
}

func hostSummary(h cluster.HostCapabilities) string {
	kvm := "no usable KVM (TCG only)"
	if h.KVMUsable {
		kvm = "KVM"
	}
	s := fmt.Sprintf("%s: libvirt %s, QEMU %s, %s", h.Hostname, h.LibvirtVersion, h.HypervisorVersion, kvm)
	if h.CPUs > 0 {
		s += fmt.Sprintf(", %d CPUs (%s %s), %.1f GiB, %d NUMA cell(s)", h.CPUs, h.HostCPU.Vendor, h.HostCPU.Model, float64(h.MemoryKiB)/(1<<20), len(h.NUMACells))
	}
	return s
}

func machineSummary(m cluster.MachinePlan) string {
	parts := []string{m.MachineType, m.DomainType, "CPU " + CPUSummary(m)}
	if m.HugepageKiB > 0 {
		parts = append(parts, fmt.Sprintf("hugepages of %d KiB", m.HugepageKiB))
	}
	if m.MemfdBacking {
		parts = append(parts, "memfd memory")
	}
	return strings.Join(parts, ", ")
}

// CPUSummary says in a few words what CPU the VMs get.
func CPUSummary(m cluster.MachinePlan) string {
	var s string
	switch m.CPUMode {
	case "":
		s = "QEMU's default (" + cluster.DefaultCPUModel + ")"
	case "custom":
		s = m.CPUModel
	default:
		s = m.CPUMode
	}
	if len(m.CPUFeatures) > 0 {
		s += " " + strings.Join(m.CPUFeatures, " ")
	}
	return s
}

func plannedObjects(p cluster.Plan, inv api.Inventory, baseExisted bool) []PlannedObject {
	var out []PlannedObject
	state := func(exists, owned bool) string {
		switch {
		case !exists:
			return "create"
		case !owned:
			return "refused"
		}
		return "keep"
	}
	net := PlannedObject{Kind: "network", Name: p.Network.Name, Action: state(inv.Network != nil, inv.NetworkOwned()),
		Detail: fmt.Sprintf("bridge %s, %s, gateway %s, DHCP %s-%s, forward %s", p.Network.Bridge, p.Network.Range, p.Network.Gateway, p.Network.DHCPStart, p.Network.DHCPEnd, plannedForward(p.Network, inv))}
	if fw := p.Network.DNSForwarders(); len(fw) > 0 {
		shown := make([]string, len(fw))
		for i, f := range fw {
			shown[i] = f.String()
		}
		net.Detail += ", DNS forwarders " + strings.Join(shown, " ")
	}
	if inv.NetworkOwned() {
		for _, l := range p.Network.Leases {
			if !hasLease(inv.Network.Leases, l) {
				net.Action = "change"
				net.Detail += "; adds lease(s) for new VMs"
				break
			}
		}
	}
	out = append(out, net)
	out = append(out, PlannedObject{Kind: "pool", Name: p.Pool.Name, Action: state(inv.Pool != nil, inv.PoolOwned()), Detail: p.Pool.Path})
	baseAction := "create"
	if baseExisted {
		baseAction = "keep"
	}
	out = append(out, PlannedObject{Kind: "volume", Name: p.BaseImage.Volume, Action: baseAction, Detail: "uploaded from " + p.BaseImage.Source})
	for _, vm := range p.VMs {
		_, volExists := inv.Volume(vm.Volume)
		volAction := "create"
		if volExists {
			volAction = "keep"
		}
		out = append(out, PlannedObject{Kind: "volume", Name: vm.Volume, Action: volAction, Detail: fmt.Sprintf("%d GiB, copy-on-write on %s", vm.DiskGiB, p.BaseImage.Volume)})
		d, exists := inv.Domain(vm.Domain)
		action := state(exists, d.Owned)
		if exists && d.Owned && d.State != "running" {
			action = "start"
		}
		out = append(out, PlannedObject{Kind: "domain", Name: vm.Domain, Action: action, Detail: vmSummary(vm)})
	}
	return out
}

func vmSummary(vm cluster.VMPlan) string {
	s := fmt.Sprintf("%s, %s, %s, %d vCPU, %d MiB", vm.Role, vm.MAC, vm.IP, vm.VCPUs, vm.MemoryMiB)
	if t := vm.CPUTopology; t != nil {
		s += fmt.Sprintf(", topology %d×%d×%d", t.Sockets, t.Cores, t.Threads)
	}
	if len(vm.NUMACells) > 0 {
		s += fmt.Sprintf(", %d NUMA cells", len(vm.NUMACells))
	}
	if len(vm.VCPUPins) > 0 {
		s += fmt.Sprintf(", pinned to host CPUs %v", vm.VCPUPins)
	}
	for _, d := range vm.HostDevices {
		s += fmt.Sprintf(", %s %s", d.DeviceType, d.Address)
	}
	return s
}

func planDocuments(p cluster.Plan, img api.ImageInfo) ([]Document, error) {
	var docs []Document
	add := func(kind, name string, render func() (string, error)) error {
		x, err := render()
		if err != nil {
			return err
		}
		docs = append(docs, Document{Kind: kind, Name: name, XML: x})
		return nil
	}
	if err := add("network", p.Network.Name, func() (string, error) { return templates.Network(p) }); err != nil {
		return nil, err
	}
	if err := add("pool", p.Pool.Name, func() (string, error) { return templates.Pool(p) }); err != nil {
		return nil, err
	}
	if err := add("volume", p.BaseImage.Volume, func() (string, error) { return templates.BaseImage(p, img.Format, img.VirtualSize) }); err != nil {
		return nil, err
	}
	baseFormat := img.Format
	for _, vm := range p.VMs {
		if err := add("volume", vm.Volume, func() (string, error) { return templates.VMVolume(p, vm, baseFormat) }); err != nil {
			return nil, err
		}
		if err := add("domain", vm.Domain, func() (string, error) { return templates.Domain(p, vm, baseFormat) }); err != nil {
			return nil, err
		}
	}
	return docs, nil
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
