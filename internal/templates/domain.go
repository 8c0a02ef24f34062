package templates

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hpcvm/hpcvm/cluster"
	"libvirt.org/go/libvirtxml"
)

// Domain is one VM of the cluster on the machine the host agreed to
// (p.Machine, filled by Plan.Negotiate). It boots from its copy-on-write disk,
// has one virtio NIC with its planned MAC on the cluster network, a serial
// console, and hpcvm's ownership element in <metadata>.
//
// Unlike the plan's template it has no VNC display listening on all
// addresses: a console on every host interface is not a safe default; the
// serial console (`virsh console`) serves instead.
//
// The VM's disk is given its whole backing chain: the copy-on-write
// overlay, on the base volume of baseFormat ("qcow2" or
// "raw", as the host read the image), which has none (an empty
// <backingStore/>). libvirt then probes no image header, so no file an
// image names is opened or labelled for QEMU.
func Domain(p cluster.Plan, vm cluster.VMPlan, baseFormat string) (string, error) {
	if baseFormat != "qcow2" && baseFormat != "raw" {
		return "", fmt.Errorf("domain %s: base image format %q is not qcow2 or raw", vm.Domain, baseFormat)
	}
	return domain(p, vm, baseFormat)
}

func domain(p cluster.Plan, vm cluster.VMPlan, baseFormat string) (string, error) {
	m := p.Machine
	if m.DomainType == "" || m.MachineType == "" {
		return "", fmt.Errorf("domain %s: the plan has no machine yet; negotiate it with the host first", vm.Domain)
	}
	port := uint(0)
	doc := libvirtxml.Domain{
		Type:        m.DomainType,
		Name:        vm.Domain,
		UUID:        vm.UUID,
		Description: fmt.Sprintf("hpcvm cluster %s, %s %s", p.Cluster, vm.Role, vm.Name),
		Metadata: &libvirtxml.DomainMetadata{XML: ownerXML(Owner{
			Cluster: p.Cluster, VM: vm.Name, Role: vm.Role, Host: p.Host,
		})},
		Memory:        &libvirtxml.DomainMemory{Value: uint(vm.MemoryMiB), Unit: "MiB"},
		CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: uint(vm.MemoryMiB), Unit: "MiB"},
		VCPU:          &libvirtxml.DomainVCPU{Placement: "static", Value: uint(vm.VCPUs)},
		CPU:           cpu(m, vm),
		MemoryBacking: memoryBacking(m, vm),
		SysInfo:       mountTable(vm),
		CPUTune:       cpuTune(vm),
		NUMATune:      numaTune(vm),
		OS: &libvirtxml.DomainOS{
			Type:        &libvirtxml.DomainOSType{Arch: "x86_64", Machine: m.MachineType, Type: "hvm"},
			BootDevices: []libvirtxml.DomainBootDevice{{Dev: "hd"}},
		},
		// ACPI is what makes `hpcvm stop` a clean shutdown: the guest sees
		// the power button.
		Features: &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		},
		Clock: &libvirtxml.DomainClock{Offset: "utc", Timer: []libvirtxml.DomainTimer{
			{Name: "rtc", TickPolicy: "catchup"},
			{Name: "pit", TickPolicy: "delay"},
			{Name: "hpet", Present: "no"},
		}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Emulator: m.Emulator,
			Disks: []libvirtxml.DomainDisk{{
				Device:       "disk",
				Driver:       &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Discard: "unmap"},
				Source:       &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: VolumePath(p, vm)}},
				BackingStore: baseChain(p, baseFormat),
				Target:       &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
			}},
			Interfaces: []libvirtxml.DomainInterface{{
				MAC:    &libvirtxml.DomainInterfaceMAC{Address: vm.MAC},
				Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: p.Network.Name}},
				Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
			}},
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainSerialTarget{Port: &port},
			}},
			Consoles: []libvirtxml.DomainConsole{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
			}},
			// The QEMU guest agent's channel: a guest running
			// qemu-guest-agent tells hpcvm status its addresses.
			Channels: []libvirtxml.DomainChannel{{
				Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{}},
				Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: GuestAgentChannel}},
			}},
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio"},
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
		},
	}
	doc.Devices.Filesystems = fileSystems(vm)
	if err := passThrough(doc.Devices, vm.HostDevices); err != nil {
		return "", fmt.Errorf("domain %s: %w", vm.Domain, err)
	}
	return doc.Marshal()
}

// baseChain is the backing chain of a VM's disk: the base volume, then
// nothing (nil when the base format is not known: Domain).
func baseChain(p cluster.Plan, baseFormat string) *libvirtxml.DomainDiskBackingStore {
	if baseFormat == "" {
		return nil
	}
	return &libvirtxml.DomainDiskBackingStore{
		Format:       &libvirtxml.DomainDiskFormat{Type: baseFormat},
		Source:       &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: BaseImagePath(p)}},
		BackingStore: &libvirtxml.DomainDiskBackingStore{},
	}
}

// GuestAgentChannel is the name of the QEMU guest agent's virtio channel.
const GuestAgentChannel = "org.qemu.guest_agent.0"

// passThrough gives every host PCI function its own PCIe root port, as a
// physical slot would, and turns the emulated display off when a GPU is
// passed through (the guest's display is the GPU).
func passThrough(devs *libvirtxml.DomainDeviceList, hostDevices []cluster.HostDevicePlan) error {
	gpu := false
	for i, hd := range hostDevices {
		var domain, bus, slot, function uint
		if _, err := fmt.Sscanf(hd.Address, "%04x:%02x:%02x.%x", &domain, &bus, &slot, &function); err != nil {
			return fmt.Errorf("host device %q is not a PCI address", hd.Address)
		}
		// Root ports 1..n hold the passed-through functions; libvirt adds
		// further ports after them for the virtio devices.
		port, zero := uint(i+1), uint(0)
		devs.Controllers = append(devs.Controllers, libvirtxml.DomainController{Type: "pci", Index: &port, Model: "pcie-root-port"})
		devs.Hostdevs = append(devs.Hostdevs, libvirtxml.DomainHostdev{
			Managed: "yes",
			SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{Source: &libvirtxml.DomainHostdevSubsysPCISource{
				Address: &libvirtxml.DomainAddressPCI{Domain: &domain, Bus: &bus, Slot: &slot, Function: &function},
			}},
			Address: &libvirtxml.DomainAddress{PCI: &libvirtxml.DomainAddressPCI{Domain: &zero, Bus: &port, Slot: &zero, Function: &zero}},
		})
		gpu = gpu || hd.DeviceType == "gpu"
	}
	if gpu {
		devs.Videos = []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: "none"}}}
	}
	return nil
}

// cpu is the <cpu> element: the negotiated mode, model and features, the
// VM's topology and its guest NUMA cells. Nil when all are the
// hypervisor's defaults.
func cpu(m cluster.MachinePlan, vm cluster.VMPlan) *libvirtxml.DomainCPU {
	c := &libvirtxml.DomainCPU{Mode: m.CPUMode, Check: m.CPUCheck}
	if m.CPUMode == "custom" {
		c.Match = "exact"
		c.Model = &libvirtxml.DomainCPUModel{Value: m.CPUModel, Fallback: "forbid"}
	}
	for _, f := range m.CPUFeatures {
		policy := "require"
		if f[0] == '-' {
			policy = "disable"
		}
		c.Features = append(c.Features, libvirtxml.DomainCPUFeature{Policy: policy, Name: f[1:]})
	}
	if t := vm.CPUTopology; t != nil {
		c.Topology = &libvirtxml.DomainCPUTopology{Sockets: t.Sockets, Dies: 1, Cores: t.Cores, Threads: t.Threads}
	}
	if len(vm.NUMACells) > 0 {
		c.Numa = &libvirtxml.DomainNuma{}
		for _, cell := range vm.NUMACells {
			id := uint(cell.ID)
			dc := libvirtxml.DomainCell{ID: &id, CPUs: cell.CPUs, Memory: uint(cell.MemoryMiB), Unit: "MiB"}
			if sharedMemory(m, vm) {
				dc.MemAccess = "shared"
			}
			c.Numa.Cell = append(c.Numa.Cell, dc)
		}
	}
	if c.Mode == "" && c.Topology == nil && c.Numa == nil {
		return nil
	}
	return c
}

// sharedMemory: the VM's memory is shared with other processes, as
// memory_backing memfd asks and as virtiofsd needs.
func sharedMemory(m cluster.MachinePlan, vm cluster.VMPlan) bool {
	return m.MemfdBacking || len(vm.Filesystems) > 0
}

// memoryBacking backs guest memory with hugepages of the negotiated size,
// or with memfd memory, shared where virtiofs or memory_backing asks.
func memoryBacking(m cluster.MachinePlan, vm cluster.VMPlan) *libvirtxml.DomainMemoryBacking {
	shared := sharedMemory(m, vm)
	if m.HugepageKiB == 0 && !shared {
		return nil
	}
	b := &libvirtxml.DomainMemoryBacking{}
	if m.HugepageKiB > 0 {
		b.MemoryHugePages = &libvirtxml.DomainMemoryHugepages{Hugepages: []libvirtxml.DomainMemoryHugepage{{Size: uint(m.HugepageKiB), Unit: "KiB"}}}
	}
	// memfd as asked (with hugepages: memfd backed by them), or for
	// virtiofs when no hugepages back the memory.
	if m.MemfdBacking || shared && m.HugepageKiB == 0 {
		b.MemorySource = &libvirtxml.DomainMemorySource{Type: "memfd"}
	}
	if shared {
		b.MemoryAccess = &libvirtxml.DomainMemoryAccess{Mode: "shared"}
	}
	return b
}

// MountTableName is the fw_cfg entry that tells the guest where to mount
// its virtiofs shares: one line per share, space-separated tag, mount
// point, owner, group, mode and options ("-" for unset; none of them holds
// blanks). A guest reads it at
// /sys/firmware/qemu_fw_cfg/by_name/opt/hpcvm/virtiofs/raw (module
// qemu_fw_cfg) and mounts each with `mount -t virtiofs TAG MOUNT_POINT`.
const MountTableName = "opt/hpcvm/virtiofs"

func mountTable(vm cluster.VMPlan) []libvirtxml.DomainSysInfo {
	if len(vm.Filesystems) == 0 {
		return nil
	}
	var b strings.Builder
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, f := range vm.Filesystems {
		fmt.Fprintf(&b, "%s %s %s %s %s %s\n", f.Tag, f.MountPoint, dash(f.Owner), dash(f.Group), dash(f.Mode), dash(f.Options))
	}
	return []libvirtxml.DomainSysInfo{{FWCfg: &libvirtxml.DomainSysInfoFWCfg{Entry: []libvirtxml.DomainSysInfoEntry{{Name: MountTableName, Value: b.String()}}}}}
}

// fileSystems shares each host directory with virtiofs under its tag.
func fileSystems(vm cluster.VMPlan) []libvirtxml.DomainFilesystem {
	var out []libvirtxml.DomainFilesystem
	for _, f := range vm.Filesystems {
		out = append(out, libvirtxml.DomainFilesystem{
			AccessMode: "passthrough",
			Driver:     &libvirtxml.DomainFilesystemDriver{Type: "virtiofs"},
			Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: f.HostPath}},
			Target:     &libvirtxml.DomainFilesystemTarget{Dir: f.Tag},
		})
	}
	return out
}

// cpuTune pins each vCPU to its host CPU (cpu_pinning).
func cpuTune(vm cluster.VMPlan) *libvirtxml.DomainCPUTune {
	if len(vm.VCPUPins) == 0 {
		return nil
	}
	t := &libvirtxml.DomainCPUTune{}
	for i, hostCPU := range vm.VCPUPins {
		t.VCPUPin = append(t.VCPUPin, libvirtxml.DomainCPUTuneVCPUPin{VCPU: uint(i), CPUSet: strconv.Itoa(hostCPU)})
	}
	return t
}

// numaTune binds each guest cell's memory to the host cell its vCPUs are
// pinned on.
func numaTune(vm cluster.VMPlan) *libvirtxml.DomainNUMATune {
	var t libvirtxml.DomainNUMATune
	for _, c := range vm.NUMACells {
		if c.HostCell >= 0 {
			t.MemNodes = append(t.MemNodes, libvirtxml.DomainNUMATuneMemNode{CellID: uint(c.ID), Mode: "strict", Nodeset: strconv.Itoa(c.HostCell)})
		}
	}
	if len(t.MemNodes) == 0 {
		return nil
	}
	return &t
}
