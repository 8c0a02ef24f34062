package libvirt

import (
	"fmt"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// HostFacts is what the hypervisor host offers, as libvirtd sees it.
type HostFacts struct {
	Hostname          string
	Arch              string // host CPU architecture, e.g. "x86_64"
	LibvirtVersion    string // of the daemon, e.g. "9.0.0"
	HypervisorVersion string // QEMU's, e.g. "7.2.22"
	// KVMUsable: libvirt offers the "kvm" domain type for x86_64, which it
	// does only when its QEMU can open /dev/kvm, and it can describe a kvm
	// guest (domain capabilities). Otherwise guests run under TCG.
	KVMUsable    bool
	Emulator     string   // the x86_64 emulator binary
	MachineTypes []string // every x86_64 machine name, aliases included

	CPUs      int    // logical CPUs of the host
	MemoryKiB uint64 // the host's memory
	// HostCPU is the physical CPU as libvirt names it (capabilities).
	HostCPU HostCPU
	// GuestCPU is, per domain type ("kvm", "qemu"), what the hypervisor can
	// give a guest (domain capabilities); absent for a type libvirt refuses.
	GuestCPU  map[string]GuestCPU
	NUMACells []NUMACell
	// MemoryBackingSources are the memoryBacking source types QEMU offers
	// (file, anonymous, memfd).
	MemoryBackingSources []string
	HostdevSupported     bool
	VirtioFSSupported    bool
	// IOMMU: the host has an IOMMU enabled (capabilities <iommu support>),
	// which PCI passthrough needs.
	IOMMU bool
}

// HostCPU is the host's physical CPU.
type HostCPU struct {
	Vendor   string
	Model    string
	Features []string // libvirt's names, beyond those of Model
}

// GuestCPU is what one domain type can offer a guest's CPU.
type GuestCPU struct {
	Modes []string // supported modes: host-passthrough, host-model, custom, maximum
	// HostModelName is the named model host-model expands to, and
	// HostModelFeatures every feature it gives (the model's own ones
	// expanded): the features a guest can be required to have.
	HostModelName     string
	HostModelFeatures []string
	// DisabledFeatures are features host-model turns off because the
	// hypervisor cannot provide them although the named model has them.
	DisabledFeatures []string
	Models           []CPUModel // the custom models, in libvirt's order
}

// CPUModel is one named CPU model and whether this host can run it as is.
type CPUModel struct {
	Name   string
	Usable bool
}

// NUMACell is one host NUMA node.
type NUMACell struct {
	ID        int
	MemoryKiB uint64
	CPUs      []int
	// PageSizesKiB are the hugepage sizes the cell offers (2048, 1048576).
	PageSizesKiB []uint64
	// FreePages counts free pages per page size in KiB, read with
	// virNodeGetFreePages by FillFreePages.
	FreePages map[uint64]uint64
}

// Hugepage sizes hpcvm plans with, in KiB.
var hugepageSizesKiB = []uint64{2048, 1048576}

const guestArch = "x86_64"

// HostFacts reads the host's capabilities from libvirtd.
func (c *Client) HostFacts() (HostFacts, error) {
	var f HostFacts
	err := c.do("read capabilities of", c.uri, true, func(conn *lv.Connect) error {
		f = HostFacts{}
		var err error
		if f.Hostname, err = conn.GetHostname(); err != nil {
			return err
		}
		libVer, err := conn.GetLibVersion()
		if err != nil {
			return err
		}
		f.LibvirtVersion = versionString(libVer)
		hvVer, err := conn.GetVersion()
		if err != nil {
			return err
		}
		f.HypervisorVersion = versionString(hvVer)
		capsXML, err := conn.GetCapabilities()
		if err != nil {
			return err
		}
		var caps libvirtxml.Caps
		if err := caps.Unmarshal(capsXML); err != nil {
			return &Error{Kind: ErrInvalidXML, Op: "parse capabilities of", Object: c.uri, Detail: err.Error(), Cause: err}
		}
		if caps.Host.CPU != nil {
			f.Arch = caps.Host.CPU.Arch
			f.HostCPU = HostCPU{Vendor: caps.Host.CPU.Vendor, Model: caps.Host.CPU.Model}
			for _, ff := range caps.Host.CPU.FeatureFlags {
				f.HostCPU.Features = append(f.HostCPU.Features, ff.Name)
			}
		}
		f.IOMMU = caps.Host.IOMMU != nil && caps.Host.IOMMU.Support == "yes"
		info, err := conn.GetNodeInfo()
		if err != nil {
			return err
		}
		f.CPUs, f.MemoryKiB = int(info.Cpus), info.Memory
		f.NUMACells = numaCells(caps)
		seen := map[string]bool{}
		addMachines := func(ms []libvirtxml.CapsGuestMachine) {
			for _, m := range ms {
				for _, n := range []string{m.Name, m.Canonical} {
					if n != "" && !seen[n] {
						seen[n] = true
						f.MachineTypes = append(f.MachineTypes, n)
					}
				}
			}
		}
		kvmOffered := false
		for _, g := range caps.Guests {
			if g.Arch.Name != guestArch || g.OSType != "hvm" {
				continue
			}
			f.Emulator = g.Arch.Emulator
			addMachines(g.Arch.Machines)
			for _, d := range g.Arch.Domains {
				addMachines(d.Machines)
				if d.Type == "kvm" {
					kvmOffered = true
				}
			}
		}
		if f.Emulator == "" {
			return &Error{Op: "read capabilities of", Object: c.uri,
				Detail: "libvirtd offers no x86_64 hvm guests; install qemu-system-x86 on the host and restart libvirtd"}
		}
		f.GuestCPU = map[string]GuestCPU{}
		for _, virtType := range []string{"kvm", "qemu"} {
			if virtType == "kvm" && !kvmOffered {
				continue
			}
			// For kvm this also confirms the daemon can actually build a
			// kvm guest, not just that it saw /dev/kvm when it probed QEMU.
			dcXML, derr := conn.GetDomainCapabilities(f.Emulator, guestArch, "", virtType, 0)
			if derr != nil {
				if isConnLoss(derr, conn) {
					return derr
				}
				continue
			}
			var dc libvirtxml.DomainCaps
			if err := dc.Unmarshal(dcXML); err != nil {
				return &Error{Kind: ErrInvalidXML, Op: "parse domain capabilities of", Object: c.uri, Detail: err.Error(), Cause: err}
			}
			g, err := guestCPU(conn, f.Emulator, virtType, dc)
			if err != nil {
				return err
			}
			f.GuestCPU[virtType] = g
			if virtType == "kvm" {
				f.KVMUsable = true
			}
			if virtType == "kvm" || !kvmOffered {
				f.MemoryBackingSources, f.HostdevSupported, f.VirtioFSSupported = deviceSupport(dc)
			}
		}
		return nil
	})
	return f, err
}

// numaCells reads the host's NUMA cells and the hugepage sizes each offers
// from the capabilities.
func numaCells(caps libvirtxml.Caps) []NUMACell {
	if caps.Host.NUMA == nil || caps.Host.NUMA.Cells == nil {
		return nil
	}
	var cells []NUMACell
	for _, c := range caps.Host.NUMA.Cells.Cells {
		cell := NUMACell{ID: c.ID}
		if c.Memory != nil {
			cell.MemoryKiB = kibOf(c.Memory.Size, c.Memory.Unit)
		}
		if c.CPUS != nil {
			for _, cpu := range c.CPUS.CPUs {
				cell.CPUs = append(cell.CPUs, cpu.ID)
			}
		}
		for _, size := range hugepageSizesKiB {
			for _, pi := range c.PageInfo {
				if kibOf(uint64(pi.Size), pi.Unit) == size {
					cell.PageSizesKiB = append(cell.PageSizesKiB, size)
				}
			}
		}
		cells = append(cells, cell)
	}
	return cells
}

// FillFreePages reads how many hugepages of each size each cell has free
// now (the capabilities count pages reserved, not free). Only the sizes a
// cell offers are asked for: asking for one the kernel does not offer (1
// GiB pages without pdpe1gb, no hugetlbfs) fails the call; a size that
// cannot be read counts as none free.
func (c *Client) FillFreePages(cells []NUMACell) error {
	return c.do("read free hugepages of", c.uri, true, func(conn *lv.Connect) error {
		for i := range cells {
			cells[i].FreePages = map[uint64]uint64{}
			for _, size := range cells[i].PageSizesKiB {
				free, err := conn.GetFreePages([]uint64{size}, cells[i].ID, 1, 0)
				if err != nil {
					if isConnLoss(err, conn) {
						return err
					}
					continue
				}
				if len(free) > 0 {
					cells[i].FreePages[size] = free[0]
				}
			}
		}
		return nil
	})
}

func kibOf(v uint64, unit string) uint64 {
	switch unit {
	case "B", "bytes":
		return v / 1024
	case "MiB", "M":
		return v << 10
	case "GiB", "G":
		return v << 20
	}
	return v // KiB, libvirt's unit here
}

// guestCPU reads the CPU modes and models a domain type offers, and expands
// host-model into every feature it gives a guest.
func guestCPU(conn *lv.Connect, emulator, virtType string, dc libvirtxml.DomainCaps) (GuestCPU, error) {
	var g GuestCPU
	if dc.CPU == nil {
		return g, nil
	}
	for _, m := range dc.CPU.Modes {
		if m.Supported != "yes" {
			continue
		}
		g.Modes = append(g.Modes, m.Name)
		switch m.Name {
		case "custom":
			for _, model := range m.Models {
				g.Models = append(g.Models, CPUModel{Name: model.Name, Usable: model.Usable == "yes"})
			}
		case "host-model":
			if len(m.Models) == 0 {
				continue
			}
			g.HostModelName = m.Models[0].Name
			cpu := libvirtxml.DomainCPU{Mode: "custom", Match: "exact",
				Model: &libvirtxml.DomainCPUModel{Value: g.HostModelName, Fallback: "forbid"}, Vendor: m.Vendor}
			for _, f := range m.Features {
				cpu.Features = append(cpu.Features, libvirtxml.DomainCPUFeature{Policy: f.Policy, Name: f.Name})
			}
			cpuXML, err := cpu.Marshal()
			if err != nil {
				return g, err
			}
			expanded, err := conn.BaselineHypervisorCPU(emulator, guestArch, "", virtType, []string{cpuXML}, lv.CONNECT_BASELINE_CPU_EXPAND_FEATURES)
			if err != nil {
				return g, err
			}
			var full libvirtxml.DomainCPU
			if err := full.Unmarshal(expanded); err != nil {
				return g, err
			}
			for _, f := range full.Features {
				if f.Policy == "disable" {
					g.DisabledFeatures = append(g.DisabledFeatures, f.Name)
				} else {
					g.HostModelFeatures = append(g.HostModelFeatures, f.Name)
				}
			}
		}
	}
	return g, nil
}

// deviceSupport reads memory backing sources and device support from the
// domain capabilities.
func deviceSupport(dc libvirtxml.DomainCaps) (backing []string, hostdev, virtiofs bool) {
	if mb := dc.MemoryBacking; mb != nil && mb.Supported == "yes" {
		for _, e := range mb.Enums {
			if e.Name == "sourceType" {
				backing = append(backing, e.Values...)
			}
		}
	}
	if dc.Devices != nil {
		if h := dc.Devices.HostDev; h != nil && h.Supported == "yes" {
			hostdev = true
		}
		if fs := dc.Devices.FileSystem; fs != nil && fs.Supported == "yes" {
			for _, e := range fs.Enums {
				if e.Name == "driverType" {
					for _, v := range e.Values {
						virtiofs = virtiofs || v == "virtiofs"
					}
				}
			}
		}
	}
	return backing, hostdev, virtiofs
}

// versionString renders libvirt's major*1e6+minor*1e3+micro encoding.
func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}
