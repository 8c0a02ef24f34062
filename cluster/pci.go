package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// HostPCIDevice is one host PCI function, as the host's worker read it.
type HostPCIDevice struct {
	Address      string   `json:"address"`
	Vendor       string   `json:"vendor"`
	Device       string   `json:"device"`
	Class        string   `json:"class"`
	Driver       string   `json:"driver,omitempty"`
	IOMMUGroup   *int     `json:"iommu_group,omitempty"`
	GroupMembers []string `json:"group_members,omitempty"`
	// HeldBy are domains of other clusters (or of nobody's) that have the
	// function passed through; HeldByRunning those of them that run.
	HeldBy        []string `json:"held_by,omitempty"`
	HeldByRunning []string `json:"held_by_running,omitempty"`
	// ClaimedBy describes another cluster's claim on it in the host's
	// device ledger ("cluster x (VM y) since ..."), "" if none.
	ClaimedBy string `json:"claimed_by,omitempty"`
}

// PCIFacts is what the host says about the functions a cluster asks for
// and the other functions of their IOMMU groups.
type PCIFacts struct {
	Source string `json:"source"` // "libvirt node devices" or "sysfs at ..."
	// IOMMU: the host has IOMMU groups (the IOMMU is on).
	IOMMU   bool                     `json:"iommu"`
	Devices map[string]HostPCIDevice `json:"devices"`
	// Unreadable are domains outside the cluster whose definitions could
	// not be read: they may hold any device.
	Unreadable []string `json:"unreadable,omitempty"`
}

// HostDevicePlan is one host PCI function passed through to a VM.
type HostDevicePlan struct {
	Address    string `json:"address"` // "0000:01:00.0"
	DeviceType string `json:"device_type"`
	// Exclusive: claimed in the host's device ledger (exclusive_mode).
	Exclusive bool `json:"exclusive,omitempty"`
}

// RequestedPCI is one device cluster.yaml passes through.
type RequestedPCI struct {
	Path string // where it is written, for messages
	VM   string
	// Exclusive: its section's exclusive_mode (unset is true): no other
	// cluster may hold it while this one exists.
	Exclusive bool
	PCIDeviceSpec
}

// RequestedPCIDevices lists the devices the spec passes through (enabled
// sections only), in file order.
func RequestedPCIDevices(s Spec) []RequestedPCI {
	var out []RequestedPCI
	if pt := s.Cluster.Hardware.PCIePassthrough; pt != nil && pt.Enabled {
		for i, d := range pt.Devices {
			out = append(out, RequestedPCI{Path: fmt.Sprintf("cluster.hardware.pcie_passthrough.devices[%d]", i), VM: d.AssignedTo, Exclusive: pt.exclusive(), PCIDeviceSpec: d})
		}
	}
	for n, node := range s.ComputeNodes {
		if pt := node.PCIePassthrough; pt != nil && pt.Enabled {
			for i, d := range pt.Devices {
				out = append(out, RequestedPCI{Path: fmt.Sprintf("compute_nodes[%d].pcie_passthrough.devices[%d]", n, i), VM: node.Name, Exclusive: pt.exclusive(), PCIDeviceSpec: d})
			}
		}
	}
	return out
}

func (pt *PCIePassthroughSpec) exclusive() bool { return pt.ExclusiveMode == nil || *pt.ExclusiveMode }

// ExclusiveDevices are the devices the cluster claims in the host's
// device ledger.
func ExclusiveDevices(s Spec) []RequestedPCI {
	var out []RequestedPCI
	for _, r := range RequestedPCIDevices(s) {
		if r.Exclusive {
			out = append(out, r)
		}
	}
	return out
}

// PCIAddresses are the addresses the spec passes through, for the host's
// worker to describe.
func PCIAddresses(s Spec) []string {
	var out []string
	for _, r := range RequestedPCIDevices(s) {
		out = append(out, r.PCIAddress)
	}
	return out
}

// pciBridgeClass: bridges share IOMMU groups with what is behind them and
// stay with the host; they are never passed through.
const pciBridgeClassPrefix = "0604"

// AssignPCI checks every requested device against what the host says and
// gives each VM its host devices; it returns every problem found.
func (p *Plan) AssignPCI(s Spec, host string, facts PCIFacts) []string {
	req := RequestedPCIDevices(s)
	if len(req) == 0 {
		return nil
	}
	var errs []string
	if !facts.IOMMU {
		errs = append(errs, fmt.Sprintf("PCI passthrough needs the IOMMU, and host %s has no IOMMU groups (%s): enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on (or amd_iommu=on), or set pcie_passthrough.enabled to false", host, facts.Source))
	}
	if len(facts.Unreadable) > 0 {
		errs = append(errs, fmt.Sprintf("the definitions of domain(s) %s on host %s cannot be read, so hpcvm cannot tell which PCI devices they hold: fix or remove them (virsh dumpxml), then run again", strings.Join(facts.Unreadable, ", "), host))
	}
	wanted := map[string]RequestedPCI{}
	for _, r := range req {
		wanted[r.PCIAddress] = r
	}
	byVM := map[string][]HostDevicePlan{}
	for _, r := range req {
		d, ok := facts.Devices[r.PCIAddress]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s.pci_address %s: host %s has no PCI device at that address (%s; `lspci -D` lists them)", r.Path, r.PCIAddress, host, facts.Source))
			continue
		}
		id := d.Vendor + ":" + d.Device
		if (r.VendorID != "" && r.VendorID != d.Vendor) || (r.DeviceID != "" && r.DeviceID != d.Device) {
			want := orAny(r.VendorID) + ":" + orAny(r.DeviceID)
			errs = append(errs, fmt.Sprintf("%s: %s on host %s is %s, not %s: check the address, or correct vendor_id/device_id", r.Path, r.PCIAddress, host, id, want))
		}
		switch {
		case d.ClaimedBy != "":
			errs = append(errs, fmt.Sprintf("%s: %s on host %s is claimed by %s in the host's device ledger: destroy that cluster first (which frees its devices)", r.Path, r.PCIAddress, host, d.ClaimedBy))
		case r.Exclusive && len(d.HeldBy) > 0:
			errs = append(errs, fmt.Sprintf("%s: %s (%s) on host %s is passed through to domain(s) %s, which are not this cluster's: free it there first, or set exclusive_mode: false to share it one running domain at a time", r.Path, r.PCIAddress, id, host, strings.Join(d.HeldBy, ", ")))
		case len(d.HeldByRunning) > 0:
			errs = append(errs, fmt.Sprintf("%s: %s (%s) on host %s is in use by running domain(s) %s, which are not this cluster's: stop them first", r.Path, r.PCIAddress, id, host, strings.Join(d.HeldByRunning, ", ")))
		}
		if facts.IOMMU {
			switch {
			case d.IOMMUGroup == nil:
				errs = append(errs, fmt.Sprintf("%s: %s on host %s is in no IOMMU group, so it cannot be passed through", r.Path, r.PCIAddress, host))
			case r.IOMMUGroup != nil && *r.IOMMUGroup != *d.IOMMUGroup:
				errs = append(errs, fmt.Sprintf("%s.iommu_group %d: %s on host %s is in IOMMU group %d: correct iommu_group or leave it out", r.Path, *r.IOMMUGroup, r.PCIAddress, host, *d.IOMMUGroup))
			}
		}
		byVM[r.VM] = append(byVM[r.VM], HostDevicePlan{Address: r.PCIAddress, DeviceType: r.DeviceType, Exclusive: r.Exclusive})
		if d.IOMMUGroup == nil {
			continue
		}
		// Every other function of the group goes to the same VM: VFIO
		// hands a guest whole groups.
		var missing, elsewhere []string
		for _, m := range d.GroupMembers {
			if m == r.PCIAddress {
				continue
			}
			md := facts.Devices[m]
			if strings.HasPrefix(md.Class, pciBridgeClassPrefix) {
				continue
			}
			other, listed := wanted[m]
			switch {
			case !listed:
				missing = append(missing, fmt.Sprintf("%s (%s:%s)", m, md.Vendor, md.Device))
			case other.VM != r.VM:
				elsewhere = append(elsewhere, fmt.Sprintf("%s (to %s)", m, other.VM))
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Sprintf("%s: %s is in IOMMU group %d on host %s with %s, which must be passed through with it: add them to the same VM's devices", r.Path, r.PCIAddress, *d.IOMMUGroup, host, strings.Join(missing, ", ")))
		}
		if len(elsewhere) > 0 {
			errs = append(errs, fmt.Sprintf("%s: %s (to %s) shares IOMMU group %d with %s: a group goes to one VM", r.Path, r.PCIAddress, r.VM, *d.IOMMUGroup, strings.Join(elsewhere, ", ")))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	for i := range p.VMs {
		devs := byVM[p.VMs[i].Name]
		sort.Slice(devs, func(a, b int) bool { return devs[a].Address < devs[b].Address })
		p.VMs[i].HostDevices = devs
	}
	return nil
}

func orAny(id string) string {
	if id == "" {
		return "*"
	}
	return id
}
