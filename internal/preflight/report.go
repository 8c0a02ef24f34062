package preflight

import (
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/templates"
)

func gib(b uint64) float64 { return float64(b) / float64(templates.GiB) }

// size shows a byte count in MiB below a GiB, in GiB above.
func size(b uint64) string {
	if b < templates.GiB {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", gib(b))
}

// HostSummary says in one line what the host is.
func HostSummary(h cluster.HostCapabilities) string {
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

func plannedObjects(p cluster.Plan, inv api.Inventory, baseExisted, forwardKept bool) []api.PlannedObject {
	var out []api.PlannedObject
	state := func(exists, owned bool) string {
		switch {
		case !exists:
			return "create"
		case !owned:
			return "refused"
		}
		return "keep"
	}
	net := api.PlannedObject{Kind: "network", Name: p.Network.Name, Action: state(inv.Network != nil, inv.NetworkOwned()),
		Detail: fmt.Sprintf("bridge %s, %s, gateway %s, DHCP %s-%s, forward %s", p.Network.Bridge, p.Network.Range, p.Network.Gateway, p.Network.DHCPStart, p.Network.DHCPEnd, plannedForward(p.Network, forwardKept))}
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
	out = append(out, api.PlannedObject{Kind: "pool", Name: p.Pool.Name, Action: state(inv.Pool != nil, inv.PoolOwned()), Detail: p.Pool.Path})
	baseAction := "create"
	if baseExisted {
		baseAction = "keep"
	}
	out = append(out, api.PlannedObject{Kind: "volume", Name: p.BaseImage.Volume, Action: baseAction, Detail: "uploaded from " + p.BaseImage.Source})
	for _, vm := range p.VMs {
		_, volExists := inv.Volume(vm.Volume)
		volAction := "create"
		if volExists {
			volAction = "keep"
		}
		out = append(out, api.PlannedObject{Kind: "volume", Name: vm.Volume, Action: volAction, Detail: fmt.Sprintf("%d GiB, copy-on-write on %s", vm.DiskGiB, p.BaseImage.Volume)})
		d, exists := inv.Domain(vm.Domain)
		action := state(exists, d.Owned)
		if exists && d.Owned && d.State != "running" {
			action = "start"
		}
		out = append(out, api.PlannedObject{Kind: "domain", Name: vm.Domain, Action: action, Detail: vmSummary(vm)})
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
