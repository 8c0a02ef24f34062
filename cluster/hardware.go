package cluster

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The hardware half of cluster.yaml: CPU topology, guest NUMA cells,
// hugepages and memory backing, CPU pinning, PCI passthrough and shared
// host directories. What can be judged from the file alone is judged here;
// what needs the host is judged by Negotiate.

// Memory backings of `performance.memory_backing`.
const (
	MemoryBackingDefault   = "default"
	MemoryBackingHugepages = "hugepages"
	MemoryBackingMemfd     = "memfd"
)

// hugepageSizesMiB are the page sizes the plan's schema allows.
var hugepageSizesMiB = map[string]int{"2M": 2, "1G": 1024}

// HugepageMiB is the guest's page size in MiB when it is backed by
// hugepages, else 0.
func (p PerformanceSpec) HugepageMiB() int {
	if !p.Hugepages() {
		return 0
	}
	return hugepageSizesMiB[p.hugepageSize()]
}

// hugepageSize is hugepage_size with the default for a Spec built in Go
// without it (Parse fills it in): "" is "2M".
func (p PerformanceSpec) hugepageSize() string {
	if p.HugepageSize == "" {
		return DefaultHugepageSize
	}
	return p.HugepageSize
}

// NUMACellPlan is one guest NUMA cell of a VM.
type NUMACellPlan struct {
	ID        int    `json:"id"`
	CPUs      string `json:"cpus"` // libvirt's cpuset syntax, e.g. "0-1"
	FirstCPU  int    `json:"first_cpu"`
	LastCPU   int    `json:"last_cpu"`
	MemoryMiB int    `json:"memory_mib"`
	// HostCell is the host NUMA node the cell's memory is bound to, set by
	// Negotiate when the VM is pinned; -1 when it is not bound.
	HostCell int `json:"host_cell"`
}

// vmGroup is a set of VMs that share one shape in cluster.yaml: all
// controllers, or one compute node.
type vmGroup struct {
	path     string // "controller" or "compute_nodes[2]"
	names    []string
	memory   int
	vcpus    int
	topology *CPUTopologySpec
	topoPath string // where the topology in force is written
}

func vmGroups(s Spec) []vmGroup {
	clusterTopo := s.Cluster.Hardware.Acceleration.CPUTopology
	const clusterTopoPath = "cluster.hardware.acceleration.cpu_topology"
	pick := func(own *CPUTopologySpec, ownPath string) (*CPUTopologySpec, string) {
		if own != nil {
			return own, ownPath
		}
		if clusterTopo != nil {
			return clusterTopo, clusterTopoPath
		}
		return nil, ""
	}
	c := s.Controller
	topo, topoPath := pick(c.CPUTopology, "controller.cpu_topology")
	groups := []vmGroup{{path: "controller", names: ControllerNames(boundedControllerCount(c.Count)),
		memory: c.MemoryMB, vcpus: c.CPUCores, topology: topo, topoPath: topoPath}}
	for i, n := range s.ComputeNodes {
		path := fmt.Sprintf("compute_nodes[%d]", i)
		topo, topoPath := pick(n.CPUTopology, path+".cpu_topology")
		groups = append(groups, vmGroup{path: path, names: []string{n.Name},
			memory: n.MemoryMB, vcpus: n.CPUCores, topology: topo, topoPath: topoPath})
	}
	return groups
}

func (g vmGroup) label() string {
	if g.path == "controller" {
		return "the controllers"
	}
	return g.names[0]
}

var (
	memorySizeRE = regexp.MustCompile(`^([0-9]+)\s*(M|MB|MiB|G|GB|GiB)?$`)
	pciAddressRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	pciIDRE      = regexp.MustCompile(`^[0-9a-f]{4}$`)
	cpuModelRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	fsTagRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	fileModeRE   = regexp.MustCompile(`^0?[0-7]{3,4}$`)
)

// parseMemoryMiB reads a size such as "4096", "4096M" or "4G" (binary
// units: M is MiB, G is GiB) into MiB.
func parseMemoryMiB(v string) (int, bool) {
	m := memorySizeRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 || n > maxMemoryMB {
		return 0, false
	}
	if strings.HasPrefix(m[2], "G") {
		if n > maxMemoryMB>>10 {
			return 0, false
		}
		n <<= 10
	}
	return n, true
}

// PCIDeviceTypes are the device_type values of the plan and the Python tool.
var PCIDeviceTypes = []string{"gpu", "audio", "network", "storage", "other"}

// validateHardware checks the hardware settings against the file itself.
func validateHardware(s Spec, add func(path string, value any, problem, want string)) {
	acc := s.Cluster.Hardware.Acceleration
	const accPath = "cluster.hardware.acceleration"
	if acc.CPUModel != "" && !cpuModelRE.MatchString(acc.CPUModel) {
		add(accPath+".cpu_model", acc.CPUModel, "is not a CPU model name", "use host-passthrough, host-model, a model name the host's libvirt lists (`virsh domcapabilities`), or leave it out for QEMU's default")
	}
	checkTopologyRanges := func(path string, t *CPUTopologySpec) {
		if t == nil {
			return
		}
		for _, kv := range []struct {
			k string
			v int
		}{{"sockets", t.Sockets}, {"cores", t.Cores}, {"threads", t.Threads}} {
			if kv.v < 1 || kv.v > maxCPUCores {
				add(path+"."+kv.k, kv.v, "is out of range", fmt.Sprintf("use 1 to %d", maxCPUCores))
			}
		}
	}
	checkTopologyRanges(accPath+".cpu_topology", acc.CPUTopology)
	checkTopologyRanges("controller.cpu_topology", s.Controller.CPUTopology)
	for i, n := range s.ComputeNodes {
		checkTopologyRanges(fmt.Sprintf("compute_nodes[%d].cpu_topology", i), n.CPUTopology)
	}

	perf := acc.Performance
	pagesOK := true
	if _, ok := hugepageSizesMiB[perf.hugepageSize()]; !ok {
		add(accPath+".performance.hugepage_size", perf.HugepageSize, "is not a hugepage size", `use "2M" or "1G"`)
		pagesOK = false
	}
	switch perf.MemoryBacking {
	case "", MemoryBackingDefault, MemoryBackingHugepages, MemoryBackingMemfd:
	default:
		add(accPath+".performance.memory_backing", perf.MemoryBacking, "is not a memory backing", `use "default", "hugepages" or "memfd"`)
	}

	numa := acc.NUMATopology
	perNodeMiB := 0
	if numa != nil {
		if numa.Nodes < 1 || numa.Nodes > maxCPUCores {
			add(accPath+".numa_topology.nodes", numa.Nodes, "is out of range", "give the number of guest NUMA cells of every VM, at least 1")
		}
		if numa.MemoryPerNode != "" {
			var ok bool
			if perNodeMiB, ok = parseMemoryMiB(numa.MemoryPerNode); !ok {
				add(accPath+".numa_topology.memory_per_node", numa.MemoryPerNode, "is not a memory size", `write it like "4G" or "4096M" (binary units), or leave it out to split each VM's memory evenly`)
			}
		}
	}

	for _, g := range vmGroups(s) {
		if g.vcpus < 1 || g.memory < minMemoryMB || g.memory > maxMemoryMB {
			continue // reported at the size itself
		}
		if t := g.topology; t != nil && t.Sockets >= 1 && t.Cores >= 1 && t.Threads >= 1 {
			if product := t.Sockets * t.Cores * t.Threads; product != g.vcpus {
				want := fmt.Sprintf("make sockets × cores × threads equal %s.cpu_cores (%d)", g.path, g.vcpus)
				if g.topoPath == "cluster.hardware.acceleration.cpu_topology" {
					want += fmt.Sprintf(", or give %s.cpu_topology of its own", g.path)
				}
				add(g.topoPath, fmt.Sprintf("%d×%d×%d", t.Sockets, t.Cores, t.Threads),
					fmt.Sprintf("gives %d vCPUs but %s %s %d", product, g.label(), haveOrHas(g), g.vcpus), want)
			}
		}
		pageMiB := 0
		if pagesOK {
			pageMiB = perf.HugepageMiB()
		}
		if pageMiB > 0 && g.memory%pageMiB != 0 {
			add(g.path+".memory_mb", g.memory, fmt.Sprintf("is not a whole number of %s hugepages", perf.hugepageSize()),
				fmt.Sprintf("use a multiple of %d MiB, or turn hugepages off", pageMiB))
			continue
		}
		if numa == nil || numa.Nodes < 1 || numa.Nodes > maxCPUCores {
			continue
		}
		if numa.Nodes > g.vcpus {
			add(accPath+".numa_topology.nodes", numa.Nodes, fmt.Sprintf("is more than the %d vCPUs of %s", g.vcpus, g.label()),
				"every guest NUMA cell needs at least one vCPU: lower nodes or raise cpu_cores")
			continue
		}
		unit := max(pageMiB, 1)
		switch {
		case perNodeMiB > 0 && perNodeMiB*numa.Nodes != g.memory:
			add(accPath+".numa_topology.memory_per_node", numa.MemoryPerNode,
				fmt.Sprintf("× %d nodes = %d MiB, but %s %s memory_mb %d", numa.Nodes, perNodeMiB*numa.Nodes, g.label(), haveOrHas(g), g.memory),
				"leave memory_per_node out to split each VM's memory evenly, or make it match")
		case perNodeMiB > 0 && perNodeMiB%unit != 0:
			add(accPath+".numa_topology.memory_per_node", numa.MemoryPerNode, fmt.Sprintf("is not a whole number of %s hugepages", perf.hugepageSize()),
				fmt.Sprintf("use a multiple of %d MiB", unit))
		case g.memory/unit < numa.Nodes:
			add(g.path+".memory_mb", g.memory, fmt.Sprintf("cannot be split into %d NUMA cells", numa.Nodes),
				"give more memory or fewer numa_topology.nodes")
		}
	}

	validatePCI(s, add)
	checkFS := func(path string, mounts []VirtioFSMountSpec) {
		tags := map[string]bool{}
		for i, m := range mounts {
			p := fmt.Sprintf("%s.virtio_fs_mounts[%d]", path, i)
			if !fsTagRE.MatchString(m.Tag) || len(m.Tag) > 36 {
				add(p+".tag", m.Tag, "is not a virtiofs tag", "use 1-36 letters, digits, '-', '_' and '.'")
			} else if tags[m.Tag] {
				add(p+".tag", m.Tag, "is used twice in this VM", "give every mount its own tag")
			}
			tags[m.Tag] = true
			for _, kv := range [][2]string{{"owner", m.Owner}, {"group", m.Group}, {"options", m.Options}} {
				if strings.ContainsAny(kv[1], " \t\n\r") || unsafePathR.MatchString(kv[1]) {
					add(p+"."+kv[0], kv[1], "contains blanks or characters hpcvm does not hand to the guest", "write it without spaces, quotes, < > & or control characters (options: comma-separated, e.g. ro,noatime)")
				}
			}
			for _, kv := range [][2]string{{"host_path", m.HostPath}, {"mount_point", m.MountPoint}} {
				switch {
				case kv[1] == "":
					add(p+"."+kv[0], nil, "is required", "give an absolute path")
				case !strings.HasPrefix(kv[1], "/") || unsafePathR.MatchString(kv[1]) || strings.ContainsAny(kv[1], " \t"):
					add(p+"."+kv[0], kv[1], "is not a usable absolute path", `give a path starting with '/' without blanks, < > & " ' or control characters`)
				case kv[0] == "host_path":
					// The host directory virtiofsd (as root) shares.
					checkHostPath(p+".host_path", kv[1], "share a directory of its own, under the worker's --share-root", add)
				}
			}
			if m.Mode != "" && !fileModeRE.MatchString(m.Mode) {
				add(p+".mode", m.Mode, "is not an octal file mode", `write it like "0755"`)
			}
		}
	}
	checkFS("controller", s.Controller.VirtioFSMounts)
	for i, n := range s.ComputeNodes {
		checkFS(fmt.Sprintf("compute_nodes[%d]", i), n.VirtioFSMounts)
	}
}

func haveOrHas(g vmGroup) string {
	if g.path == "controller" {
		return "have"
	}
	return "has"
}

// validatePCI checks the PCI passthrough sections' syntax and references.
func validatePCI(s Spec, add func(path string, value any, problem, want string)) {
	vms := map[string]bool{}
	var names []string
	for _, g := range vmGroups(s) {
		for _, n := range g.names {
			vms[n] = true
			names = append(names, n)
		}
	}
	seen := map[string]string{}
	check := func(path string, pt *PCIePassthroughSpec, clusterLevel bool) {
		if pt == nil {
			return
		}
		for i, d := range pt.Devices {
			p := fmt.Sprintf("%s.devices[%d]", path, i)
			if !pciAddressRE.MatchString(d.PCIAddress) {
				add(p+".pci_address", d.PCIAddress, "is not a PCI address", `write domain:bus:slot.function in lowercase hex, e.g. "0000:01:00.0" (see lspci -D)`)
			} else if prev, dup := seen[d.PCIAddress]; dup && pt.Enabled {
				add(p+".pci_address", d.PCIAddress, "is listed twice", "already at "+prev+"; a device can go to one VM only")
			} else if pt.Enabled {
				seen[d.PCIAddress] = p
			}
			if !containsString(PCIDeviceTypes, d.DeviceType) {
				add(p+".device_type", d.DeviceType, "is not a device type", "use one of "+strings.Join(PCIDeviceTypes, ", "))
			}
			for _, kv := range [][2]string{{"vendor_id", d.VendorID}, {"device_id", d.DeviceID}} {
				if kv[1] != "" && !pciIDRE.MatchString(kv[1]) {
					add(p+"."+kv[0], kv[1], "is not a PCI ID", `write 4 lowercase hex digits, e.g. "10de" (see lspci -nn)`)
				}
			}
			if d.IOMMUGroup != nil && *d.IOMMUGroup < 0 {
				add(p+".iommu_group", *d.IOMMUGroup, "is negative", "give the group number from /sys/kernel/iommu_groups, or leave it out")
			}
			switch {
			case clusterLevel && d.AssignedTo == "":
				add(p+".assigned_to", nil, "is required here", "name the VM the device goes to: "+listForMessage(names))
			case clusterLevel && !vms[d.AssignedTo]:
				add(p+".assigned_to", d.AssignedTo, "names no VM of this cluster", "use one of "+listForMessage(names))
			case !clusterLevel && d.AssignedTo != "":
				add(p+".assigned_to", d.AssignedTo, "is for cluster.hardware.pcie_passthrough", "leave it out: a VM's own devices go to that VM")
			}
		}
	}
	check("cluster.hardware.pcie_passthrough", s.Cluster.Hardware.PCIePassthrough, true)
	for i, n := range s.ComputeNodes {
		check(fmt.Sprintf("compute_nodes[%d].pcie_passthrough", i), n.PCIePassthrough, false)
	}
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Warnings are settings that are accepted but change nothing, for the
// operator to read before a run.
func Warnings(s Spec) []string {
	var out []string
	if w := dnsModeFallback(s); w != "" {
		out = append(out, w)
	}
	if w := hostSettingsNote(s); w != "" {
		out = append(out, w)
	}
	if w := routingAllowedUnused(s); w != "" {
		out = append(out, w)
	}
	if len(s.Global) > 0 {
		out = append(out, "global has no effect: hpcvm reads no settings from it")
	}
	disabled := func(path string, pt *PCIePassthroughSpec) {
		if pt != nil && !pt.Enabled && len(pt.Devices) > 0 {
			out = append(out, fmt.Sprintf("%s lists %d device(s) but enabled is false: they are not passed through", path, len(pt.Devices)))
		}
	}
	disabled("cluster.hardware.pcie_passthrough", s.Cluster.Hardware.PCIePassthrough)
	for i, n := range s.ComputeNodes {
		disabled(fmt.Sprintf("compute_nodes[%d].pcie_passthrough", i), n.PCIePassthrough)
	}
	return out
}

// numaCells splits a VM's vCPUs and memory into guest NUMA cells: vCPUs in
// contiguous ranges, as evenly as possible; memory evenly in units of unitMiB
// (the hugepage size, or 1), the remainder to the first cells.
func numaCells(nodes, vcpus, memoryMiB, unitMiB int) []NUMACellPlan {
	if nodes < 1 || nodes > vcpus {
		return nil
	}
	unitMiB = max(unitMiB, 1)
	units := memoryMiB / unitMiB
	cells := make([]NUMACellPlan, nodes)
	cpu := 0
	for i := range cells {
		n := vcpus / nodes
		if i < vcpus%nodes {
			n++
		}
		u := units / nodes
		if i < units%nodes {
			u++
		}
		c := NUMACellPlan{ID: i, FirstCPU: cpu, LastCPU: cpu + n - 1, MemoryMiB: u * unitMiB, HostCell: -1}
		if n == 1 {
			c.CPUs = strconv.Itoa(cpu)
		} else {
			c.CPUs = fmt.Sprintf("%d-%d", cpu, cpu+n-1)
		}
		cells[i] = c
		cpu += n
	}
	return cells
}
