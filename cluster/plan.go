package cluster

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
)

// Plan is every libvirt object a cluster owns, named and sized, derived only
// from the Spec (and, for Machine, from the host's capabilities). The same
// Spec always yields the same Plan, so a retried step finds what the first
// try made. Names are prefixed with the cluster name; two clusters can still
// produce one domain name (cluster "a" with VM "b-c", cluster "a-b" with VM
// "c"), and then the ownership metadata keeps either from touching the
// other's domain: the second start fails with a mismatch.
type Plan struct {
	Cluster   string        `json:"cluster"`
	Host      string        `json:"host"`
	Network   NetworkPlan   `json:"network"`
	Pool      PoolPlan      `json:"pool"`
	BaseImage BaseImagePlan `json:"base_image"`
	VMs       []VMPlan      `json:"vms"`
	// Machine is empty until Negotiate has seen the host's capabilities.
	Machine MachinePlan `json:"machine"`
}

// NetworkPlan is the cluster's private libvirt network.
type NetworkPlan struct {
	Name string `json:"name"`
	// UUID is derived from the cluster name alone: it is hpcvm's mark of
	// ownership on a network (libvirt 9.0 networks have no <metadata>). A
	// network made by hand with the same name has a random UUID.
	UUID       string      `json:"uuid"`
	Bridge     string      `json:"bridge"`
	DomainName string      `json:"domain_name"`
	Range      string      `json:"range"`
	Gateway    string      `json:"gateway"`
	PrefixLen  int         `json:"prefix_len"`
	DHCPStart  string      `json:"dhcp_start"`
	DHCPEnd    string      `json:"dhcp_end"`
	DNSServers []string    `json:"dns_servers,omitempty"`
	Leases     []HostLease `json:"leases"`
	// Forward is network.forward as written: "" is nat for a network the
	// run creates, and whatever an existing network has.
	Forward string `json:"forward,omitempty"`
	// HostResolver is the host dnsmasq's address when the host's resolver
	// knows the clusters' names (host DNS integration): the network sends
	// the queries for *.local there, and every other query too unless
	// dns_servers names forwarders. "" otherwise.
	HostResolver string `json:"host_resolver,omitempty"`
}

// resolverDomain is the parent domain of every cluster's domain
// (<cluster>.local): what a network with a host resolver sends there.
const resolverDomain = "local"

// DNSForwarder is one of the network's DNS forwarders: queries for Domain
// ("" for any) go to Addr.
type DNSForwarder struct {
	Domain string `json:"domain,omitempty"`
	Addr   string `json:"addr"`
}

// String is the forwarder as status and errors show it: addr, or
// domain/addr.
func (f DNSForwarder) String() string {
	if f.Domain == "" {
		return f.Addr
	}
	return f.Domain + "/" + f.Addr
}

// DNSForwarders are the forwarders the network gets, in order. libvirt
// stops reading the host's resolv.conf as soon as a network has any, so a
// network that sends *.local to the host's resolver sends it everything
// else too, unless dns_servers names forwarders.
func (n NetworkPlan) DNSForwarders() []DNSForwarder {
	var out []DNSForwarder
	if n.HostResolver != "" {
		out = append(out, DNSForwarder{Domain: resolverDomain, Addr: n.HostResolver})
	}
	for _, s := range n.DNSServers {
		out = append(out, DNSForwarder{Addr: s})
	}
	if n.HostResolver != "" && len(n.DNSServers) == 0 {
		out = append(out, DNSForwarder{Addr: n.HostResolver})
	}
	return out
}

// ForwardMode is the forward mode a network created from this plan gets.
func (n NetworkPlan) ForwardMode() string {
	if n.Forward == "" {
		return ForwardNAT
	}
	return n.Forward
}

// HostLease is one static DHCP entry.
type HostLease struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	IP   string `json:"ip"`
}

// PoolPlan is the cluster's storage pool: a directory of its own.
type PoolPlan struct {
	Name string `json:"name"`
	// UUID is derived from the cluster name alone: hpcvm's mark of
	// ownership on a pool, which has no metadata element at all.
	UUID string `json:"uuid"`
	Type string `json:"type"`
	Path string `json:"path"`
}

// BaseImagePlan is the operator's image and the pool volume it is uploaded to.
type BaseImagePlan struct {
	Source string `json:"source"`
	Volume string `json:"volume"`
}

// VM roles.
const (
	RoleController = "controller"
	RoleCompute    = "compute"
)

// VMPlan is one virtual machine.
type VMPlan struct {
	Name      string `json:"name"`   // as in cluster.yaml, also the guest's hostname
	Role      string `json:"role"`   // controller or compute
	Domain    string `json:"domain"` // libvirt domain name: <cluster>-<name>
	UUID      string `json:"uuid"`
	Volume    string `json:"volume"` // volume name in the cluster's pool
	MAC       string `json:"mac"`
	IP        string `json:"ip"`
	MemoryMiB int    `json:"memory_mib"`
	VCPUs     int    `json:"vcpus"`
	DiskGiB   int    `json:"disk_gib"`
	// CPUTopology is the VM's own cpu_topology or the cluster's; nil for
	// the hypervisor's default (one socket per vCPU).
	CPUTopology *CPUTopologySpec `json:"cpu_topology,omitempty"`
	// NUMACells are the guest's NUMA cells; none for numa_topology: null.
	NUMACells []NUMACellPlan `json:"numa_cells,omitempty"`
	// VCPUPins holds, per vCPU, the host CPU it is pinned to (cpu_pinning),
	// set by Negotiate.
	VCPUPins []int `json:"vcpu_pins,omitempty"`
	// HostDevices are the host PCI functions passed through to the VM,
	// set by AssignPCI.
	HostDevices []HostDevicePlan `json:"host_devices,omitempty"`
	// Filesystems are host directories shared into the VM (virtiofs).
	Filesystems []VirtioFSMountSpec `json:"filesystems,omitempty"`
}

// MachinePlan is what the host and the spec agreed on for every domain.
type MachinePlan struct {
	DomainType  string   `json:"domain_type"` // kvm or qemu (TCG)
	MachineType string   `json:"machine_type"`
	Emulator    string   `json:"emulator"`
	CPUMode     string   `json:"cpu_mode,omitempty"`  // "", host-passthrough, host-model, custom
	CPUModel    string   `json:"cpu_model,omitempty"` // for custom
	CPUFeatures []string `json:"cpu_features,omitempty"`
	// CPUCheck is libvirt's <cpu check>: "none" for QEMU's default model
	// named only to carry features (QEMU drops what the host lacks, as it
	// does without <cpu>); "" leaves libvirt's default.
	CPUCheck string `json:"cpu_check,omitempty"`
	// HugepageKiB is the page size backing guest memory; 0 for none.
	HugepageKiB uint64 `json:"hugepage_kib,omitempty"`
	// MemfdBacking backs guest memory with shared memfd.
	MemfdBacking bool `json:"memfd_backing,omitempty"`
	// Notes say where the host's reality overrode the spec, for the operator.
	Notes []string `json:"notes,omitempty"`
}

// Object names, all derived from the cluster name.
func NetworkName(cluster string) string { return cluster + "-network" }
func PoolName(cluster string) string    { return cluster + "-pool" }
func DomainName(cluster, vm string) string {
	return cluster + "-" + vm
}

// NetworkUUID and PoolUUID are the ownership marks of a cluster's network
// and pool. They depend on the cluster name only, so destroy finds and
// proves them whatever cluster.yaml says today.
func NetworkUUID(cluster string) string { return stableUUID("hpcvm-network/" + cluster) }
func PoolUUID(cluster string) string    { return stableUUID("hpcvm-pool/" + cluster) }

// BaseVolumeNames are the names a cluster's base volume can have (one per
// image format); destroy recognises either, whatever base_image says today.
func BaseVolumeNames(cluster string) []string {
	return []string{cluster + "-base.qcow2", cluster + "-base.img"}
}

// BridgeName is the bridge the operator asked for or, by default, one derived
// from the cluster name that fits the kernel's 15-character limit.
func BridgeName(cluster, asked string) string {
	if asked != "" {
		return asked
	}
	if b := "br-" + cluster; len(b) <= maxBridgeLen {
		return b
	}
	sum := sha256.Sum256([]byte("hpcvm-bridge/" + cluster))
	return fmt.Sprintf("hpcvm-%x", sum[:4])
}

// NewPlan derives the plan of a cluster that does not exist yet.
func NewPlan(s Spec) (Plan, error) { return NewPlanKeeping(s, nil) }

// NewPlanKeeping derives the plan from a validated spec and the DHCP leases
// the cluster's network already holds. A VM's MAC depends on the cluster and
// VM names only; its address is its static lease if it has one, else the
// address the network already gives it, else the lowest free one, so adding,
// removing or reordering nodes never renumbers the others.
func NewPlanKeeping(s Spec, existing []HostLease) (Plan, error) {
	name := s.Cluster.Name
	prefix, err := netip.ParsePrefix(s.Network.NetworkRange)
	if err != nil {
		return Plan{}, fmt.Errorf("network.network_range: %w", err)
	}
	p := Plan{
		Cluster: name,
		Host:    s.Cluster.Host,
		Network: NetworkPlan{
			Name:       NetworkName(name),
			UUID:       NetworkUUID(name),
			Bridge:     BridgeName(name, s.Network.BridgeName),
			DomainName: name + ".local",
			Range:      prefix.String(),
			Gateway:    s.Network.GatewayIP,
			PrefixLen:  prefix.Bits(),
			DHCPStart:  s.Network.DHCPStart,
			DHCPEnd:    s.Network.DHCPEnd,
			DNSServers: s.Network.DNSServers,
			Forward:    s.Network.Forward,
		},
		Pool: PoolPlan{
			Name: PoolName(name),
			UUID: PoolUUID(name),
			Type: s.Cluster.Storage.PoolType,
			Path: filepath.Join(s.Cluster.Storage.PoolPath, name),
		},
		BaseImage: BaseImagePlan{
			Source: s.Cluster.Storage.BaseImage,
			Volume: baseVolumeName(name, s.Cluster.Storage.BaseImage),
		},
	}
	acc := s.Cluster.Hardware.Acceleration
	shape := func(vm VMPlan, own *CPUTopologySpec, mounts []VirtioFSMountSpec) VMPlan {
		vm.Filesystems = mounts
		vm.CPUTopology = acc.CPUTopology
		if own != nil {
			vm.CPUTopology = own
		}
		if acc.NUMATopology != nil {
			vm.NUMACells = numaCells(acc.NUMATopology.Nodes, vm.VCPUs, vm.MemoryMiB, acc.Performance.HugepageMiB())
		}
		return vm
	}
	for _, vm := range ControllerNames(s.Controller.Count) {
		p.VMs = append(p.VMs, shape(newVM(name, vm, RoleController, s.Controller.MemoryMB, s.Controller.CPUCores, s.Controller.DiskSizeGB), s.Controller.CPUTopology, s.Controller.VirtioFSMounts))
	}
	for _, n := range s.ComputeNodes {
		p.VMs = append(p.VMs, shape(newVM(name, n.Name, RoleCompute, n.MemoryMB, n.CPUCores, n.DiskSizeGB), n.CPUTopology, n.VirtioFSMounts))
	}
	if err := assignMACs(p.VMs, name); err != nil {
		return Plan{}, err
	}
	if err := assignIPs(p.VMs, s.Network, existing); err != nil {
		return Plan{}, err
	}
	for _, vm := range p.VMs {
		p.Network.Leases = append(p.Network.Leases, HostLease{Name: vm.Name, MAC: vm.MAC, IP: vm.IP})
	}
	return p, nil
}

func newVM(cluster, name, role string, mem, cpu, disk int) VMPlan {
	return VMPlan{
		Name:      name,
		Role:      role,
		Domain:    DomainName(cluster, name),
		UUID:      stableUUID("hpcvm-domain/" + cluster + "/" + name),
		Volume:    name + ".qcow2",
		MemoryMiB: mem,
		VCPUs:     cpu,
		DiskGiB:   disk,
	}
}

func baseVolumeName(cluster, source string) string {
	if strings.HasSuffix(strings.ToLower(source), ".qcow2") {
		return cluster + "-base.qcow2"
	}
	return cluster + "-base.img"
}

// MACAddress is a VM's locally administered unicast MAC, derived from the
// cluster and VM names only, so a redefined domain keeps its DHCP lease and
// a node's MAC never depends on the other nodes.
func MACAddress(cluster, vm string) string {
	sum := sha256.Sum256([]byte("hpcvm-mac/" + cluster + "/" + vm))
	sum[0] = (sum[0] & 0xfe) | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4], sum[5])
}

// assignMACs refuses the (one in 2^46) case of two names sharing a MAC
// rather than resolving it by position, which would make a MAC depend on
// the order of the file.
func assignMACs(vms []VMPlan, cluster string) error {
	owner := map[string]string{}
	for i := range vms {
		mac := MACAddress(cluster, vms[i].Name)
		if other, dup := owner[mac]; dup {
			return fmt.Errorf("VMs %q and %q would share the MAC address %s; rename one of them", other, vms[i].Name, mac)
		}
		owner[mac] = vms[i].Name
		vms[i].MAC = mac
	}
	return nil
}

// assignIPs gives each VM, in this order of precedence: its static lease;
// the address the cluster network already leases to it; the lowest free
// address of the DHCP range, handed out in name order (controllers first).
// Addresses of leases the network holds for VMs no longer in the file stay
// taken: start never removes a node, so its address is not reused.
func assignIPs(vms []VMPlan, n NetworkSpec, existing []HostLease) error {
	taken := map[netip.Addr]bool{}
	if gw, err := netip.ParseAddr(n.GatewayIP); err == nil {
		taken[gw] = true
	}
	for _, ip := range n.StaticLeases {
		if a, err := netip.ParseAddr(ip); err == nil {
			taken[a] = true
		}
	}
	had := map[string]netip.Addr{}
	for _, l := range existing {
		if a, err := netip.ParseAddr(l.IP); err == nil {
			had[l.Name] = a
			taken[a] = true
		}
	}
	next, err := netip.ParseAddr(n.DHCPStart)
	if err != nil {
		return fmt.Errorf("network.dhcp_start: %w", err)
	}
	end, err := netip.ParseAddr(n.DHCPEnd)
	if err != nil {
		return fmt.Errorf("network.dhcp_end: %w", err)
	}
	var fresh []int
	for i := range vms {
		if ip, ok := n.StaticLeases[vms[i].Name]; ok {
			vms[i].IP = ip
			continue
		}
		// Keep the address the network gives the VM, unless a static lease
		// now claims it for another VM.
		if a, ok := had[vms[i].Name]; ok && !claimedByStatic(n.StaticLeases, a, vms[i].Name) {
			vms[i].IP = a.String()
			continue
		}
		fresh = append(fresh, i)
	}
	sort.SliceStable(fresh, func(x, y int) bool {
		a, b := vms[fresh[x]], vms[fresh[y]]
		if a.Role != b.Role {
			return a.Role == RoleController
		}
		return a.Name < b.Name
	})
	for _, i := range fresh {
		for taken[next] && !end.Less(next) {
			next = next.Next()
		}
		if end.Less(next) {
			return fmt.Errorf("network.dhcp_start..dhcp_end (%s-%s) has no free address left for VM %q; widen the range", n.DHCPStart, n.DHCPEnd, vms[i].Name)
		}
		vms[i].IP = next.String()
		taken[next] = true
	}
	return nil
}

func claimedByStatic(static map[string]string, a netip.Addr, except string) bool {
	for vm, ip := range static {
		if vm != except && ip == a.String() {
			return true
		}
	}
	return false
}

// stableUUID is a name-based UUID (version 5 layout over SHA-256), so a
// domain defined twice from the same spec has the same UUID.
func stableUUID(seed string) string {
	s := sha256.Sum256([]byte(seed))
	s[6] = (s[6] & 0x0f) | 0x50
	s[8] = (s[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// VM returns the plan of the VM with the given short name.
func (p Plan) VM(name string) (VMPlan, bool) {
	for _, vm := range p.VMs {
		if vm.Name == name {
			return vm, true
		}
	}
	return VMPlan{}, false
}
