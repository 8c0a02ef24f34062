package cluster

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// HostCapabilities is what the host's libvirt offers, as far as planning
// domains needs it. The worker reads it; the plan only consumes it.
type HostCapabilities struct {
	Hostname          string   `json:"hostname"`
	Arch              string   `json:"arch"`
	LibvirtVersion    string   `json:"libvirt_version"`
	HypervisorVersion string   `json:"hypervisor_version"`
	KVMUsable         bool     `json:"kvm_usable"`
	Emulator          string   `json:"emulator"`
	MachineTypes      []string `json:"machine_types"`

	// ProbeVersion is ProbeVersionHardware in the worker's probe, which
	// reads the host's CPU, NUMA and memory (the fields below). A
	// description built by hand with only the fields above (tests, the
	// benchmark) leaves it 0: Negotiate then takes the CPU settings as
	// written (unprobedCPU) instead of judging them against the host.
	ProbeVersion int     `json:"probe_version,omitempty"`
	CPUs         int     `json:"cpus,omitempty"`
	MemoryKiB    uint64  `json:"memory_kib,omitempty"`
	HostCPU      HostCPU `json:"host_cpu"`
	// GuestCPU is, per domain type (kvm, qemu), what a guest's CPU can be.
	GuestCPU             map[string]GuestCPU `json:"guest_cpu,omitempty"`
	NUMACells            []HostNUMACell      `json:"numa_cells,omitempty"`
	MemoryBackingSources []string            `json:"memory_backing_sources,omitempty"`
	HostdevSupported     bool                `json:"hostdev_supported,omitempty"`
	VirtioFSSupported    bool                `json:"virtiofs_supported,omitempty"`
	IOMMU                bool                `json:"iommu,omitempty"`
	// PinnedCPUs are, per domain on the host, the host CPUs its vCPUs are
	// pinned to, by vCPU.
	PinnedCPUs map[string][]int `json:"pinned_cpus,omitempty"`
	// KVMModules describes the host's KVM modules and their nested
	// setting, read from sysfs, to explain why nesting is not offered.
	KVMModules string `json:"kvm_modules,omitempty"`
}

// HostCPU is the host's physical CPU as libvirt names it.
type HostCPU struct {
	Vendor   string   `json:"vendor,omitempty"`
	Model    string   `json:"model,omitempty"`
	Features []string `json:"features,omitempty"`
}

// GuestCPU is what one domain type offers a guest's CPU on the host.
type GuestCPU struct {
	Modes []string `json:"modes"`
	// HostModelName and HostModelFeatures: host-model's named model and
	// every feature the hypervisor can give a guest.
	HostModelName     string     `json:"host_model_name,omitempty"`
	HostModelFeatures []string   `json:"host_model_features,omitempty"`
	DisabledFeatures  []string   `json:"disabled_features,omitempty"`
	Models            []CPUModel `json:"models,omitempty"`
}

// CPUModel is a named CPU model and whether the host can run it as is.
type CPUModel struct {
	Name   string `json:"name"`
	Usable bool   `json:"usable"`
}

// HostNUMACell is one host NUMA node.
type HostNUMACell struct {
	ID        int    `json:"id"`
	MemoryKiB uint64 `json:"memory_kib"`
	CPUs      []int  `json:"cpus"`
	// FreeHugepages counts free pages per size in KiB (2048, 1048576).
	FreeHugepages map[uint64]uint64 `json:"free_hugepages,omitempty"`
}

// Negotiate fills p.Machine from the spec's wishes and the host's reality.
// Where the host cannot do what the spec asks but a safe alternative exists,
// the alternative is chosen and a note says so; where none exists, it fails.
func (p *Plan) Negotiate(s Spec, host HostCapabilities) error {
	return p.NegotiateRunning(s, host, nil)
}

// NegotiateRunning is Negotiate for a cluster some of whose VMs run
// already (running holds their names): their memory is in use already, so
// their hugepages are not counted against the host's free ones again.
func (p *Plan) NegotiateRunning(s Spec, host HostCapabilities, running []string) error {
	if host.Arch != "" && host.Arch != "x86_64" {
		return fmt.Errorf("host %s is %s; hpcvm plans x86_64 guests only", host.Hostname, host.Arch)
	}
	m := MachinePlan{Emulator: host.Emulator}
	machine, ok := newestQ35(host.MachineTypes)
	if !ok {
		return fmt.Errorf("host %s offers no Q35 machine type (it offers %s); hpcvm needs Q35 for PCIe devices: install a QEMU with Q35 support", host.Hostname, strings.Join(host.MachineTypes, ", "))
	}
	m.MachineType = machine
	acc := s.Cluster.Hardware.Acceleration
	wantKVM := acc.EnableKVM == nil || *acc.EnableKVM
	switch {
	case wantKVM && host.KVMUsable:
		m.DomainType = "kvm"
	case wantKVM:
		m.DomainType = "qemu"
		note := "KVM is not usable on this host (no usable /dev/kvm): the VMs run under QEMU's TCG emulation, which is much slower"
		if acc.EnableKVM != nil {
			note = "cluster.hardware.acceleration.enable_kvm is true, but " + note
		}
		m.Notes = append(m.Notes, note)
	default:
		m.DomainType = "qemu"
	}
	if host.ProbeVersion < ProbeVersionHardware {
		// Nothing known of the host's CPU, NUMA or memory to judge
		// against.
		unprobedCPU(&m, acc)
		p.Machine = m
		return nil
	}
	if v, ok := q35Version(machine); ok && (v[0] < minQ35[0] || v[0] == minQ35[0] && v[1] < minQ35[1]) {
		return fmt.Errorf("host %s offers Q35 machine types up to %s; hpcvm needs pc-q35-%d.%d or newer (QEMU %d.%d+): upgrade QEMU on the host", host.Hostname, machine, minQ35[0], minQ35[1], minQ35[0], minQ35[1])
	}
	var errs []string
	if m.DomainType == "kvm" && slices.Contains(host.HostCPU.Features, "hypervisor") {
		m.Notes = append(m.Notes, "host "+host.Hostname+" is itself a virtual machine (its CPU has the hypervisor flag), so KVM here is nested: "+
			"a guest may stop in early boot with QEMU's \"KVM internal error … emulation failure\" (its domain pauses); if guests do, set cluster.hardware.acceleration.enable_kvm: false to run them under software emulation")
	}
	errs = append(errs, negotiateCPU(&m, acc, host)...)
	errs = append(errs, p.negotiateMemory(&m, s, host, running)...)
	if len(errs) > 0 {
		return &HostMismatchError{Host: host.Hostname, Problems: errs}
	}
	p.Machine = m
	return nil
}

// HostMismatchError lists every setting the host cannot honour.
type HostMismatchError struct {
	Host     string
	Problems []string
}

func (e *HostMismatchError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("host %s cannot run this cluster as written: %s", e.Host, e.Problems[0])
	}
	return fmt.Sprintf("host %s cannot run this cluster as written (%d problems):\n  %s", e.Host, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// unprobedCPU is the CPU decision for a host description without the
// hardware probe: cpu_model and cpu_features as written, host modes only
// under KVM.
func unprobedCPU(m *MachinePlan, acc AccelerationSpec) {
	switch acc.CPUModel {
	case "host", "host-passthrough", "host-model":
		mode := acc.CPUModel
		if mode == "host" {
			mode = "host-passthrough"
		}
		if m.DomainType != "kvm" {
			m.Notes = append(m.Notes, fmt.Sprintf("cpu_model %q needs KVM; under TCG the hypervisor's default CPU model is used", acc.CPUModel))
			return
		}
		m.CPUMode = mode
		m.CPUFeatures = acc.CPUFeatures
	case "qemu64":
		m.CPUMode = "custom"
		m.CPUModel = "qemu64"
		m.CPUFeatures = acc.CPUFeatures
	}
}

// DefaultCPUModel is QEMU's own default for x86_64 guests, which hpcvm
// names when it must write a model (features without cpu_model).
const DefaultCPUModel = "qemu64"

const (
	pathCPUModel    = "cluster.hardware.acceleration.cpu_model"
	pathCPUFeatures = "cluster.hardware.acceleration.cpu_features"
	pathNested      = "cluster.hardware.acceleration.enable_nested"
	pathPerformance = "cluster.hardware.acceleration.performance"
)

// negotiateCPU settles cpu_model, cpu_features and enable_nested against
// what the domain type offers on the host.
func negotiateCPU(m *MachinePlan, acc AccelerationSpec, host HostCapabilities) []string {
	var errs []string
	kind := "KVM"
	if m.DomainType != "kvm" {
		kind = "TCG"
	}
	g, ok := host.GuestCPU[m.DomainType]
	if !ok {
		return []string{fmt.Sprintf("libvirt describes no CPU for %s guests on this host", kind)}
	}
	offered := setOf(g.HostModelFeatures)
	known := setOf(g.HostModelFeatures, g.DisabledFeatures, host.HostCPU.Features)
	for _, other := range host.GuestCPU {
		for _, f := range append(append([]string{}, other.HostModelFeatures...), other.DisabledFeatures...) {
			known[f] = true
		}
	}
	features := append([]string{}, acc.CPUFeatures...)
	if acc.EnableNested {
		ext := ""
		for _, f := range []string{"vmx", "svm"} {
			if offered[f] {
				ext = f
			}
		}
		switch {
		case m.DomainType != "kvm":
			errs = append(errs, fmt.Sprintf("%s is true, but nested virtualisation needs KVM and these VMs run under TCG: set it to false", pathNested))
		case ext == "":
			why := "its KVM does not offer vmx or svm to guests"
			if host.KVMModules != "" {
				why += " (" + host.KVMModules + ")"
			}
			errs = append(errs, fmt.Sprintf("%s is true, but %s: enable nesting on the host (for Intel: modprobe kvm_intel nested=1) or set enable_nested to false", pathNested, why))
		case !containsString(features, "+"+ext):
			features = append(features, "+"+ext)
			m.Notes = append(m.Notes, fmt.Sprintf("enable_nested: the VMs' CPUs get %s, so they can run KVM guests of their own", ext))
		}
	}
	var unsupported, absent []string
	for _, f := range features {
		name := f[1:]
		switch {
		case f[0] == '+' && !offered[name]:
			unsupported = append(unsupported, name)
		case f[0] == '-' && !known[name]:
			absent = append(absent, name)
		}
	}
	if len(unsupported) > 0 {
		errs = append(errs, fmt.Sprintf("%s requires %s, which %s on this host cannot give a guest; it offers: %s", pathCPUFeatures, strings.Join(unsupported, ", "), kind, strings.Join(slices.Sorted(maps.Keys(offered)), " ")))
	}
	if len(absent) > 0 {
		errs = append(errs, fmt.Sprintf("%s disables %s, which neither the host's CPU nor any guest CPU libvirt offers here has: check the spelling (`virsh domcapabilities` lists the features), or remove it", pathCPUFeatures, strings.Join(absent, ", ")))
	}
	modeOffered := func(mode string) bool { return containsString(g.Modes, mode) }
	switch model := acc.CPUModel; model {
	case "host", "host-passthrough", "host-model":
		mode := model
		if mode == "host" {
			mode = "host-passthrough"
		}
		if !modeOffered(mode) {
			errs = append(errs, fmt.Sprintf("%s %q is not offered by %s on this host (it offers %s): choose one of those, or leave cpu_model out for QEMU's default", pathCPUModel, model, kind, strings.Join(g.Modes, ", ")))
			break
		}
		m.CPUMode = mode
		m.CPUFeatures = features
	case "":
		if len(features) == 0 {
			note := "cpu_model is not set: the VMs get QEMU's default CPU model, " + DefaultCPUModel + ", the one choice measured to start on every host here"
			if mdl, ok := findModel(g.Models, DefaultCPUModel); ok && !mdl.Usable {
				note += fmt.Sprintf("; %s on this host cannot give it every feature of %s (libvirt marks it not usable as is), so QEMU turns the missing ones off, as the running domain's XML shows", kind, DefaultCPUModel)
			}
			m.Notes = append(m.Notes, note)
			break
		}
		// Features need a named model; QEMU's default is named, and not
		// checked against the host by libvirt (check none), exactly as
		// when no <cpu> is given. The features themselves were checked
		// above.
		m.CPUMode = "custom"
		m.CPUModel = DefaultCPUModel
		m.CPUCheck = "none"
		m.CPUFeatures = features
		m.Notes = append(m.Notes, fmt.Sprintf("cpu_features without cpu_model apply to QEMU's default model %s", DefaultCPUModel))
	default:
		mdl, found := findModel(g.Models, model)
		var usable []string
		for _, x := range g.Models {
			if x.Usable {
				usable = append(usable, x.Name)
			}
		}
		hint := fmt.Sprintf("models %s can run here as they are: %s; or use host-model", kind, strings.Join(usable, ", "))
		if modeOffered("host-passthrough") {
			hint += " or host-passthrough"
		}
		switch {
		case !found:
			errs = append(errs, fmt.Sprintf("%s %q is not a CPU model libvirt knows on this host; %s", pathCPUModel, model, hint))
		case !mdl.Usable:
			errs = append(errs, fmt.Sprintf("%s %q needs CPU features %s on this host cannot give a guest (libvirt marks it not usable); %s", pathCPUModel, model, kind, hint))
		default:
			m.CPUMode = "custom"
			m.CPUModel = mdl.Name
			m.CPUFeatures = features
		}
	}
	return errs
}

// negotiateMemory settles memory backing, hugepages, CPU pinning and guest
// NUMA cells against the host, and weighs the cluster's size against it.
func (p *Plan) negotiateMemory(m *MachinePlan, s Spec, host HostCapabilities, running []string) []string {
	var errs []string
	perf := s.Cluster.Hardware.Acceleration.Performance
	isRunning := setOf(running)
	if perf.MemoryBacking == MemoryBackingMemfd {
		if !containsString(host.MemoryBackingSources, "memfd") {
			errs = append(errs, fmt.Sprintf("%s.memory_backing is memfd, but QEMU on this host offers only %s: use default", pathPerformance, strings.Join(host.MemoryBackingSources, ", ")))
		} else {
			m.MemfdBacking = true
		}
	}

	if len(RequestedPCIDevices(s)) > 0 && !host.HostdevSupported {
		errs = append(errs, "pcie_passthrough: libvirt on this host offers no host device passthrough (its domain capabilities say hostdev is unsupported): use a host with VFIO support, or set enabled to false")
	}

	// Shared directories: virtiofsd maps guest memory, so a VM with one
	// needs shared memory: memfd unless hugepages back it already.
	var sharing []string
	for _, vm := range p.VMs {
		if len(vm.Filesystems) > 0 {
			sharing = append(sharing, vm.Name)
		}
	}
	if len(sharing) > 0 {
		switch {
		case !host.VirtioFSSupported:
			errs = append(errs, fmt.Sprintf("virtio_fs_mounts of %s: QEMU on this host offers no virtiofs file systems (libvirt finds no virtiofsd): install virtiofsd, or remove the mounts", strings.Join(sharing, ", ")))
		case perf.HugepageMiB() == 0 && !containsString(host.MemoryBackingSources, "memfd"):
			errs = append(errs, fmt.Sprintf("virtio_fs_mounts of %s need shared guest memory, and QEMU on this host offers no memfd memory (only %s): use hugepages, or remove the mounts", strings.Join(sharing, ", "), strings.Join(host.MemoryBackingSources, ", ")))
		case perf.HugepageMiB() == 0 && !m.MemfdBacking:
			m.Notes = append(m.Notes, fmt.Sprintf("virtio_fs_mounts: %s get shared memfd memory, which virtiofs needs", strings.Join(sharing, ", ")))
		}
	}

	// Pinning: every vCPU of the cluster gets a host CPU of its own, taken
	// in host-cell order so that a guest cell's vCPUs share a host cell
	// wherever they fit.
	var hostCPUs []int
	cellOf := map[int]int{}
	for _, c := range host.NUMACells {
		for _, cpu := range c.CPUs {
			hostCPUs = append(hostCPUs, cpu)
			cellOf[cpu] = c.ID
		}
	}
	if len(hostCPUs) == 0 {
		for i := 0; i < host.CPUs; i++ {
			hostCPUs = append(hostCPUs, i)
			cellOf[i] = -1
		}
	}
	totalVCPUs := 0
	for _, vm := range p.VMs {
		totalVCPUs += vm.VCPUs
	}
	if perf.CPUPinning {
		errs = append(errs, p.pinVCPUs(host, hostCPUs, cellOf, totalVCPUs)...)
		if len(errs) == 0 {
			m.Notes = append(m.Notes, fmt.Sprintf("cpu_pinning: %d vCPUs pinned to host CPUs of their own (VMs that exist keep their pins; CPUs other domains pin are left to them)", totalVCPUs))
		}
	}

	// Hugepages: enough free pages of the size for every VM not running
	// yet, per host cell when the cells are bound.
	if pageMiB := perf.HugepageMiB(); pageMiB > 0 {
		pageKiB := uint64(pageMiB) << 10
		m.HugepageKiB = pageKiB
		need := map[int]uint64{} // host cell (-1: any) → pages
		var needAll uint64
		for _, vm := range p.VMs {
			if isRunning[vm.Name] {
				continue
			}
			if len(vm.NUMACells) > 0 && vm.NUMACells[0].HostCell >= 0 {
				for _, c := range vm.NUMACells {
					need[c.HostCell] += uint64(c.MemoryMiB / pageMiB)
				}
			} else {
				need[-1] += uint64(vm.MemoryMiB / pageMiB)
			}
			needAll += uint64(vm.MemoryMiB / pageMiB)
		}
		if len(host.NUMACells) == 0 {
			errs = append(errs, fmt.Sprintf("%s: hugepages are asked for, and libvirt on this host reports no NUMA cells, so their free pages cannot be counted: check `virsh capabilities` on the host, or turn hugepages off", pathPerformance))
		}
		var freeAll uint64
		var perCell []string
		for _, c := range host.NUMACells {
			free := c.FreeHugepages[pageKiB]
			freeAll += free
			perCell = append(perCell, fmt.Sprintf("cell %d: %d", c.ID, free))
			if n := need[c.ID]; n > free {
				errs = append(errs, fmt.Sprintf("%s: the pinned VMs need %d free %s hugepages on host NUMA cell %d, which has %d: reserve more there (/sys/devices/system/node/node%d/hugepages/hugepages-%dkB/nr_hugepages) or turn hugepages off", pathPerformance, n, perf.hugepageSize(), c.ID, free, c.ID, pageKiB))
			}
		}
		if needAll > freeAll {
			errs = append(errs, fmt.Sprintf("%s: the VMs to start need %d free %s hugepages (%d MiB), but the host has %d free (%s): reserve at least %d (e.g. sysctl vm.nr_hugepages for 2M pages) or turn hugepages off",
				pathPerformance, needAll, perf.hugepageSize(), needAll*uint64(pageMiB), freeAll, strings.Join(perCell, ", "), needAll))
		}
	}

	// Size against the host: a VM larger than the host cannot run; a
	// cluster larger than the host runs only while its guests leave
	// memory untouched.
	hostMiB := int(host.MemoryKiB >> 10)
	totalMiB := 0
	for _, vm := range p.VMs {
		totalMiB += vm.MemoryMiB
		if hostMiB > 0 && vm.MemoryMiB > hostMiB {
			errs = append(errs, fmt.Sprintf("VM %s has %d MiB of memory, more than the host's %d MiB: lower its memory_mb", vm.Name, vm.MemoryMiB, hostMiB))
		}
		for _, c := range vm.NUMACells {
			if c.HostCell < 0 {
				continue
			}
			for _, hc := range host.NUMACells {
				if hc.ID == c.HostCell && uint64(c.MemoryMiB)<<10 > hc.MemoryKiB {
					errs = append(errs, fmt.Sprintf("VM %s's NUMA cell %d (%d MiB) is bound to host cell %d, which has %d MiB: give the VM less memory or more numa_topology.nodes", vm.Name, c.ID, c.MemoryMiB, hc.ID, hc.MemoryKiB>>10))
				}
			}
		}
	}
	if hostMiB > 0 && totalMiB > hostMiB {
		m.Notes = append(m.Notes, fmt.Sprintf("overcommit: the VMs have %d MiB of memory in all, the host %d MiB; they run only while the guests leave part of theirs untouched", totalMiB, hostMiB))
	}
	if host.CPUs > 0 && totalVCPUs > host.CPUs && !perf.CPUPinning {
		m.Notes = append(m.Notes, fmt.Sprintf("overcommit: the VMs have %d vCPUs in all, the host %d CPUs; they share them", totalVCPUs, host.CPUs))
	}
	return errs
}

// pinVCPUs gives every vCPU of the cluster a host CPU no other vCPU is
// pinned to: a VM that exists keeps its pins; the others take, in VM
// order and host-cell order, CPUs that no domain on the host pins.
func (p *Plan) pinVCPUs(host HostCapabilities, hostCPUs []int, cellOf map[int]int, totalVCPUs int) []string {
	ours := map[string]bool{}
	for _, vm := range p.VMs {
		ours[vm.Domain] = true
	}
	taken := map[int]string{}
	var others []string
	for dom, cpus := range host.PinnedCPUs {
		if ours[dom] {
			continue
		}
		for _, c := range cpus {
			taken[c] = dom
		}
		others = append(others, dom)
	}
	sort.Strings(others)
	kept := map[string]bool{}
	for _, vm := range p.VMs {
		if pins := host.PinnedCPUs[vm.Domain]; len(pins) == vm.VCPUs {
			kept[vm.Name] = true
			for _, c := range pins {
				taken[c] = vm.Domain
			}
		}
	}
	var free []int
	for _, c := range hostCPUs {
		if _, t := taken[c]; !t {
			free = append(free, c)
		}
	}
	need := 0
	for _, vm := range p.VMs {
		if !kept[vm.Name] {
			need += vm.VCPUs
		}
	}
	if need > len(free) {
		why := fmt.Sprintf("the cluster has %d vCPUs and the host %d CPUs", totalVCPUs, len(hostCPUs))
		if len(others) > 0 {
			why += fmt.Sprintf(", of which domain(s) %s pin some", strings.Join(others, ", "))
		}
		return []string{fmt.Sprintf("%s.cpu_pinning gives every vCPU a host CPU of its own, but %s: %d vCPUs to pin, %d CPUs free; lower cpu_cores or turn pinning off", pathPerformance, why, need, len(free))}
	}
	next := 0
	for i := range p.VMs {
		vm := &p.VMs[i]
		if kept[vm.Name] {
			vm.VCPUPins = append([]int(nil), host.PinnedCPUs[vm.Domain]...)
		} else {
			vm.VCPUPins = append([]int(nil), free[next:next+vm.VCPUs]...)
			next += vm.VCPUs
		}
		for c := range vm.NUMACells {
			cell := &vm.NUMACells[c]
			cell.HostCell = cellOf[vm.VCPUPins[cell.FirstCPU]]
		}
	}
	return nil
}

func setOf(lists ...[]string) map[string]bool {
	out := map[string]bool{}
	for _, l := range lists {
		for _, x := range l {
			out[x] = true
		}
	}
	return out
}

func findModel(models []CPUModel, name string) (CPUModel, bool) {
	for _, m := range models {
		if m.Name == name {
			return m, true
		}
	}
	return CPUModel{}, false
}

// ProbeVersionHardware marks a probe that read the host's CPU, NUMA cells
// and memory.
const ProbeVersionHardware = 1

// minQ35 is the oldest Q35 machine type hpcvm plans with, as the plan's
// "QEMU Platform Requirements" say.
var minQ35 = [2]int{7, 2}

// newestQ35 picks the highest versioned pc-q35-X.Y machine type.
func newestQ35(types []string) (string, bool) {
	var versioned []string
	for _, t := range types {
		if strings.HasPrefix(t, "pc-q35-") {
			if _, ok := q35Version(t); ok {
				versioned = append(versioned, t)
			}
		}
	}
	if len(versioned) == 0 {
		for _, t := range types {
			if t == "q35" {
				return t, true
			}
		}
		return "", false
	}
	sort.Slice(versioned, func(i, j int) bool {
		a, _ := q35Version(versioned[i])
		b, _ := q35Version(versioned[j])
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] < b[1]
	})
	return versioned[len(versioned)-1], true
}

func q35Version(t string) ([2]int, bool) {
	parts := strings.SplitN(strings.TrimPrefix(t, "pc-q35-"), ".", 2)
	if len(parts) != 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return [2]int{}, false
	}
	return [2]int{major, minor}, true
}
