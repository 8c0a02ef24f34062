package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// FieldError is one bad value: where it is, what is wrong, what is accepted.
type FieldError struct {
	Path    string
	Value   any
	Problem string
	Want    string
}

func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Value != nil {
		fmt.Fprintf(&b, ": %q", shortened(fmt.Sprint(e.Value)))
	}
	b.WriteString(" " + e.Problem)
	if e.Want != "" {
		b.WriteString("; " + e.Want)
	}
	return b.String()
}

// ValidationError lists every bad value found, so the operator fixes the file
// in one pass instead of one error per run.
type ValidationError []FieldError

func (v ValidationError) Error() string {
	lines := make([]string, len(v))
	for i, e := range v {
		lines[i] = "  " + e.Error()
	}
	return fmt.Sprintf("cluster configuration has %d problem(s):\n%s", len(v), strings.Join(lines, "\n"))
}

// maxShownValueLen bounds how much of a bad value a message repeats: enough
// to recognise it, not a pasted file's worth.
const maxShownValueLen = 80

func shortened(s string) string {
	if len(s) <= maxShownValueLen {
		return s
	}
	cut := maxShownValueLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ApplyDefaults fills every setting left at its zero value with the plan's
// default. It is for a Spec built in Go, where zero means "not set". Parse
// does not use it: there a 0 or "" the operator wrote must reach Validate
// and be refused, not be replaced by a default.
func ApplyDefaults(s *Spec) { applyDefaults(s, func(string) bool { return false }) }

// applyDefaults fills the settings that are still zero and that given does
// not report as written by the operator. given takes the setting's path as
// error messages spell it: "controller.memory_mb", "compute_nodes[2].cpu_cores".
func applyDefaults(s *Spec, given func(path string) bool) {
	text := func(path string, field *string, def string) {
		if *field == "" && !given(path) {
			*field = def
		}
	}
	number := func(path string, field *int, def int) {
		if *field == 0 && !given(path) {
			*field = def
		}
	}
	if s.Cluster.Host == "" && !given("cluster.host") {
		if h, err := os.Hostname(); err == nil {
			s.Cluster.Host = strings.ToLower(h)
		}
	}
	text("cluster.storage.pool_path", &s.Cluster.Storage.PoolPath, DefaultPoolPath)
	text("cluster.storage.pool_type", &s.Cluster.Storage.PoolType, DefaultPoolType)
	perf := &s.Cluster.Hardware.Acceleration.Performance
	text("cluster.hardware.acceleration.performance.hugepage_size", &perf.HugepageSize, DefaultHugepageSize)
	text("cluster.hardware.acceleration.performance.memory_backing", &perf.MemoryBacking, DefaultMemoryBacking)
	n := &s.Network
	text("network.network_range", &n.NetworkRange, DefaultNetworkRange)
	text("network.dns_mode", &n.DNSMode, DefaultDNSMode)
	if prefix, err := netip.ParsePrefix(n.NetworkRange); err == nil && prefix.Addr().Is4() {
		base := prefix.Masked().Addr()
		first := base.Next()
		start := nthAddr(base, defaultDHCPStartHostPart)
		if !prefix.Contains(start) || start == broadcast(prefix) {
			// A network too small for the usual start (a /29) starts its
			// range after the gateway instead of getting a default that
			// Validate refuses although the operator never wrote it.
			start = first.Next()
		}
		text("network.gateway_ip", &n.GatewayIP, first.String())
		text("network.dhcp_start", &n.DHCPStart, start.String())
		text("network.dhcp_end", &n.DHCPEnd, lastHost(prefix).String())
	}
	c := &s.Controller
	number("controller.count", &c.Count, DefaultControllerCount)
	number("controller.memory_mb", &c.MemoryMB, DefaultControllerMemory)
	number("controller.cpu_cores", &c.CPUCores, DefaultControllerCPU)
	number("controller.disk_size_gb", &c.DiskSizeGB, DefaultControllerDiskGB)
	for i := range s.ComputeNodes {
		node := &s.ComputeNodes[i]
		path := fmt.Sprintf("compute_nodes[%d]", i)
		number(path+".memory_mb", &node.MemoryMB, DefaultComputeMemory)
		number(path+".cpu_cores", &node.CPUCores, DefaultComputeCPU)
		number(path+".disk_size_gb", &node.DiskSizeGB, DefaultComputeDiskGB)
	}
}

var (
	// Names end up in libvirt object names, hostnames, DHCP entries and file
	// names, so they are kept to what is safe in all of them (and lowercase,
	// because hostnames are case-insensitive and YAML map keys are folded).
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$`)
	hostRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	bridgeRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	cpuFeatRE   = regexp.MustCompile(`^[+-][a-z0-9][a-z0-9_.-]*$`)
	unsafePathR = regexp.MustCompile(`[<>&"'\x00-\x1f\x7f]`)
)

const (
	maxClusterNameLen = 32
	maxVMNameLen      = 32
	maxBridgeLen      = 15 // IFNAMSIZ-1: the kernel refuses longer interface names
	minMemoryMB       = 64
	maxMemoryMB       = 16 << 20 // 16 TiB, beyond any host hpcvm runs on; keeps KiB arithmetic far from overflow
	maxCPUCores       = 512
	maxDiskGB         = 65536
	maxControllers    = 9
)

// checkHostPath refuses a path that reaches the host unless it is absolute
// and clean (filepath.Clean leaves it as it is: no '.', '..', '//' or
// trailing '/'). The worker judges a path against its roots as written and
// the kernel resolves it component by component: '..' after a symbolic
// link leads wherever the link does, so a lexical '..' is never trusted.
// whyNotRoot says what to choose instead of '/'.
func checkHostPath(path, v, whyNotRoot string, add func(path string, value any, problem, want string)) {
	switch {
	case !filepath.IsAbs(v):
		add(path, v, "is not an absolute path", "give a path starting with '/'")
	case unsafePathR.MatchString(v):
		add(path, v, "contains characters hpcvm does not put into libvirt XML", `remove < > & " ' and control characters`)
	case filepath.Clean(v) != v:
		add(path, v, "is not a clean path ('.', '..', '//' or a trailing '/')",
			fmt.Sprintf("write it as %q, and if a symbolic link is on the way, as the path it leads to", filepath.Clean(v)))
	case v == "/":
		add(path, v, "is the root directory", whyNotRoot)
	}
}

// Validate checks everything that can be checked without the host.
func Validate(s Spec) error {
	var errs ValidationError
	add := func(path string, value any, problem, want string) {
		errs = append(errs, FieldError{Path: path, Value: value, Problem: problem, Want: want})
	}
	checkName := func(path, v string, max int) {
		rule := fmt.Sprintf("use 1-%d lowercase letters, digits and '-', starting with a letter and not ending with '-'", max)
		switch {
		case v == "":
			add(path, nil, "is required", rule)
		case len(v) > max || !nameRE.MatchString(v):
			add(path, v, "is not a valid name", rule)
		}
	}
	checkPath := func(path, v string, required bool) {
		if v == "" {
			if required {
				add(path, nil, "is required", "give the absolute path of a file on the cluster's host")
			}
			return
		}
		checkHostPath(path, v, "choose a directory for the cluster's disks", add)
	}

	checkName("cluster.name", s.Cluster.Name, maxClusterNameLen)
	if s.Cluster.Host == "" {
		add("cluster.host", nil, "is required (the hostname could not be read)", "name the hypervisor host whose hpcvm-worker runs this cluster")
	} else if len(s.Cluster.Host) > 63 || !hostRE.MatchString(s.Cluster.Host) {
		add("cluster.host", s.Cluster.Host, "is not a valid host name", "use lowercase letters, digits, '.' and '-'")
	}

	st := s.Cluster.Storage
	checkPath("cluster.storage.pool_path", st.PoolPath, true)
	checkPath("cluster.storage.base_image", st.BaseImage, true)
	switch st.PoolType {
	case "dir":
	case "lvm", "zfs", "nfs", "iscsi":
		add("cluster.storage.pool_type", st.PoolType, "is in the schema but not supported by hpcvm yet", `use "dir"`)
	default:
		add("cluster.storage.pool_type", st.PoolType, "is not a pool type", `use "dir"`)
	}

	for i, f := range s.Cluster.Hardware.Acceleration.CPUFeatures {
		if !cpuFeatRE.MatchString(f) {
			add(fmt.Sprintf("cluster.hardware.acceleration.cpu_features[%d]", i), f, "is not a CPU feature", `write "+name" to require or "-name" to disable a feature`)
		}
	}
	validateHardware(s, add)

	validateNetwork(s, add)
	validateInventory(s, add)

	c := s.Controller
	if c.Count < 1 || c.Count > maxControllers {
		add("controller.count", c.Count, "is out of range", fmt.Sprintf("use 1 to %d", maxControllers))
	}
	checkSizes := func(path string, mem, cpu, disk int) {
		switch {
		case mem < minMemoryMB:
			add(path+".memory_mb", mem, "is too small", fmt.Sprintf("use at least %d (MiB)", minMemoryMB))
		case mem > maxMemoryMB:
			add(path+".memory_mb", mem, "is too large", fmt.Sprintf("use at most %d (MiB, i.e. 16 TiB)", maxMemoryMB))
		}
		if cpu < 1 || cpu > maxCPUCores {
			add(path+".cpu_cores", cpu, "is out of range", fmt.Sprintf("use 1 to %d", maxCPUCores))
		}
		if disk < 1 || disk > maxDiskGB {
			add(path+".disk_size_gb", disk, "is out of range", fmt.Sprintf("use 1 to %d (GiB)", maxDiskGB))
		}
	}
	checkSizes("controller", c.MemoryMB, c.CPUCores, c.DiskSizeGB)

	seen := map[string]string{}
	for _, name := range ControllerNames(boundedControllerCount(c.Count)) {
		seen[name] = "controller"
	}
	for i, node := range s.ComputeNodes {
		path := fmt.Sprintf("compute_nodes[%d]", i)
		checkName(path+".name", node.Name, maxVMNameLen)
		if prev, dup := seen[node.Name]; dup && node.Name != "" {
			add(path+".name", node.Name, "is used twice", "already used by "+prev+"; give every VM its own name")
		}
		if node.Name != "" && node.Name+".qcow2" == baseVolumeName(s.Cluster.Name, st.BaseImage) {
			add(path+".name", node.Name, "would share its disk's name with the base image volume", "choose another name")
		}
		seen[node.Name] = path
		checkSizes(path, node.MemoryMB, node.CPUCores, node.DiskSizeGB)
	}

	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ansibleVarRE is what Ansible takes as a variable name.
var ansibleVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateInventory checks the inventory section, which only the CLI acts on.
func validateInventory(s Spec, add func(path string, value any, problem, want string)) {
	inv := s.Inventory
	if inv == nil {
		return
	}
	if inv.Format != "" && inv.Format != InventoryINI && inv.Format != InventoryYAML {
		add("inventory.format", inv.Format, "is not an inventory format", `give "ini" or "yaml"`)
	}
	if inv.SSHPort != 0 && (inv.SSHPort < 1 || inv.SSHPort > 65535) {
		add("inventory.ssh_port", inv.SSHPort, "is not a TCP port", "give a port from 1 to 65535")
	}
	if inv.Path != "" && strings.HasSuffix(inv.Path, "/") {
		add("inventory.path", inv.Path, "names a directory", "give a file, such as inventory/"+s.Cluster.Name+".ini")
	}
	for _, text := range []struct{ path, value string }{
		{"inventory.ssh_user", inv.SSHUser}, {"inventory.ssh_private_key_file", inv.SSHPrivateKeyFile},
		{"inventory.ssh_common_args", inv.SSHCommonArgs}, {"inventory.python_interpreter", inv.PythonInterpreter},
		{"inventory.path", inv.Path},
	} {
		if strings.ContainsAny(text.value, "\n\r\x00") {
			add(text.path, text.value, "holds a line break", "give it on one line")
		}
	}
	keys := make([]string, 0, len(inv.Vars))
	for k := range inv.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !ansibleVarRE.MatchString(k) {
			add("inventory.vars."+k, k, "is not a name Ansible takes for a variable", "use letters, digits and _, starting with a letter or _")
		}
	}
}

func validateNetwork(s Spec, add func(path string, value any, problem, want string)) {
	n := s.Network
	switch {
	case n.BridgeName == "":
	case len(n.BridgeName) > maxBridgeLen:
		add("network.bridge_name", n.BridgeName, fmt.Sprintf("is %d characters long", len(n.BridgeName)), fmt.Sprintf("Linux interface names have at most %d; leave it out to have one derived from the cluster name", maxBridgeLen))
	case !bridgeRE.MatchString(n.BridgeName):
		add("network.bridge_name", n.BridgeName, "is not a valid interface name", "use letters, digits, '-', '_' and '.'")
	}
	switch n.DNSMode {
	case "isolated":
	case "shared_dns", "routed", "service_discovery":
		// Need host changes: made where host_configuration allows them,
		// else the cluster runs isolated and Warnings prints the steps to
		// make them by hand.
	default:
		add("network.dns_mode", n.DNSMode, "is not a DNS mode", `use "isolated" (the default), "shared_dns", "routed" or "service_discovery"`)
	}
	validateHostConfiguration(s.HostConfiguration, add)
	validateHostChanges(s, add)
	switch n.Forward {
	case "", ForwardNAT, ForwardNone:
	case "route":
		add("network.forward", n.Forward, "needs routes to the cluster's network on the host's upstream routers, a host change hpcvm does not make yet", `use "nat" or "none"`)
	default:
		add("network.forward", n.Forward, "is not a forward mode", `use "nat" (outbound access through the host) or "none" (air-gapped)`)
	}
	for i, d := range n.DNSServers {
		if a, err := netip.ParseAddr(d); err != nil || !a.Is4() {
			add(fmt.Sprintf("network.dns_servers[%d]", i), d, "is not an IPv4 address", "write an address such as 1.1.1.1")
		}
	}

	prefix, err := netip.ParsePrefix(n.NetworkRange)
	if err != nil || !prefix.Addr().Is4() {
		add("network.network_range", n.NetworkRange, "is not an IPv4 network", `write it in CIDR form, e.g. "192.168.100.0/24"`)
		return
	}
	if prefix.Masked() != prefix {
		add("network.network_range", n.NetworkRange, "has host bits set", fmt.Sprintf("write it as %q", prefix.Masked().String()))
		return
	}
	if prefix.Bits() < 8 || prefix.Bits() > 29 {
		add("network.network_range", n.NetworkRange, "has an unusable prefix length", "use a prefix from /8 to /29")
		return
	}
	inside := func(path, v string) (netip.Addr, bool) {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil || !a.Is4():
			add(path, v, "is not an IPv4 address", fmt.Sprintf("use an address from %s to %s", prefix.Addr().Next(), lastHost(prefix)))
		case !prefix.Contains(a) || a == prefix.Addr() || a == broadcast(prefix):
			add(path, v, "is not a host address of network.network_range "+n.NetworkRange, fmt.Sprintf("use an address from %s to %s", prefix.Addr().Next(), lastHost(prefix)))
		default:
			return a, true
		}
		return netip.Addr{}, false
	}
	gw, gwOK := inside("network.gateway_ip", n.GatewayIP)
	start, startOK := inside("network.dhcp_start", n.DHCPStart)
	end, endOK := inside("network.dhcp_end", n.DHCPEnd)
	if startOK && endOK && end.Less(start) {
		add("network.dhcp_end", n.DHCPEnd, "is below network.dhcp_start "+n.DHCPStart, "give an address from network.dhcp_start up, or swap the two")
	}
	if gwOK && startOK && endOK && !gw.Less(start) && !end.Less(gw) {
		add("network.gateway_ip", n.GatewayIP, fmt.Sprintf("is inside the DHCP range %s-%s", n.DHCPStart, n.DHCPEnd), "move the gateway or the range")
	}

	vms := map[string]bool{}
	var vmNames []string
	for _, name := range ControllerNames(boundedControllerCount(s.Controller.Count)) {
		vms[name] = true
		vmNames = append(vmNames, name)
	}
	for _, node := range s.ComputeNodes {
		if nameRE.MatchString(node.Name) && !vms[node.Name] { // a bad name is reported at its node, not repeated here
			vmNames = append(vmNames, node.Name)
		}
		vms[node.Name] = true
	}
	names := make([]string, 0, len(n.StaticLeases))
	for name := range n.StaticLeases {
		names = append(names, name)
	}
	sort.Strings(names)
	usedBy := map[netip.Addr]string{}
	for _, name := range names {
		path := settingPath("network.static_leases", name)
		if !vms[name] || name == "" {
			add(path, nil, "names no VM of this cluster", "use the name of one of its VMs: "+listForMessage(vmNames))
			continue
		}
		a, ok := inside(path, n.StaticLeases[name])
		if !ok {
			continue
		}
		if gwOK && a == gw {
			add(path, n.StaticLeases[name], "is the gateway address", "choose another address")
		}
		if other, dup := usedBy[a]; dup {
			add(path, n.StaticLeases[name], "is also leased to "+other, "give every VM its own address")
		}
		usedBy[a] = name
	}
	if startOK && endOK {
		if size := addrDistance(start, end) + 1; size < len(vms) {
			add("network.dhcp_end", n.DHCPEnd, fmt.Sprintf("leaves %d addresses for %d VMs", size, len(vms)), "widen the DHCP range")
		}
	}
}

// ControllerNames lists the controller VM names for a count: controller-01, ...
// A count below one yields none; Validate refuses such a count, and callers
// that have not validated yet (Validate itself) must not crash on it.
func ControllerNames(count int) []string {
	if count < 1 {
		return nil
	}
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("controller-%02d", i+1)
	}
	return out
}

// boundedControllerCount is the count Validate uses to name controllers
// while it checks the rest: an out-of-range count is reported once, at
// controller.count, and must not make Validate allocate a name per unit of
// a count such as 1<<40 from a hostile request.
func boundedControllerCount(count int) int { return min(max(count, 0), maxControllers) }

// listForMessage shows a few names in a message, not a thousand.
func listForMessage(names []string) string {
	const shown = 8
	if len(names) == 0 {
		return "(the cluster has no VMs)"
	}
	if len(names) > shown {
		return strings.Join(names[:shown], ", ") + fmt.Sprintf(", ... (%d in all)", len(names))
	}
	return strings.Join(names, ", ")
}

func nthAddr(a netip.Addr, n int) netip.Addr {
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	return a
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << hostBits) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func lastHost(p netip.Prefix) netip.Addr { return broadcast(p).Prev() }

func addrDistance(a, b netip.Addr) int {
	x, y := a.As4(), b.As4()
	av := int(x[0])<<24 | int(x[1])<<16 | int(x[2])<<8 | int(x[3])
	bv := int(y[0])<<24 | int(y[1])<<16 | int(y[2])<<8 | int(y[3])
	return bv - av
}
