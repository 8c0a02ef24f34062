package cluster

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
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
	Name       string      `json:"name"`
	Bridge     string      `json:"bridge"`
	DomainName string      `json:"domain_name"`
	Range      string      `json:"range"`
	Gateway    string      `json:"gateway"`
	PrefixLen  int         `json:"prefix_len"`
	DHCPStart  string      `json:"dhcp_start"`
	DHCPEnd    string      `json:"dhcp_end"`
	DNSServers []string    `json:"dns_servers,omitempty"`
	Leases     []HostLease `json:"leases"`
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
}

// MachinePlan is what the host and the spec agreed on for every domain.
type MachinePlan struct {
	DomainType  string   `json:"domain_type"` // kvm or qemu (TCG)
	MachineType string   `json:"machine_type"`
	Emulator    string   `json:"emulator"`
	CPUMode     string   `json:"cpu_mode,omitempty"`  // "", host-passthrough, host-model, custom
	CPUModel    string   `json:"cpu_model,omitempty"` // for custom
	CPUFeatures []string `json:"cpu_features,omitempty"`
	// Notes say where the host's reality overrode the spec, for the operator.
	Notes []string `json:"notes,omitempty"`
}

// Object names, all derived from the cluster name.
func NetworkName(cluster string) string { return cluster + "-network" }
func PoolName(cluster string) string    { return cluster + "-pool" }
func DomainName(cluster, vm string) string {
	return cluster + "-" + vm
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

// NewPlan derives the plan from a validated spec.
func NewPlan(s Spec) (Plan, error) {
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
			Bridge:     BridgeName(name, s.Network.BridgeName),
			DomainName: name + ".local",
			Range:      prefix.String(),
			Gateway:    s.Network.GatewayIP,
			PrefixLen:  prefix.Bits(),
			DHCPStart:  s.Network.DHCPStart,
			DHCPEnd:    s.Network.DHCPEnd,
			DNSServers: s.Network.DNSServers,
		},
		Pool: PoolPlan{
			Name: PoolName(name),
			Type: s.Cluster.Storage.PoolType,
			Path: filepath.Join(s.Cluster.Storage.PoolPath, name),
		},
		BaseImage: BaseImagePlan{
			Source: s.Cluster.Storage.BaseImage,
			Volume: baseVolumeName(name, s.Cluster.Storage.BaseImage),
		},
	}
	for _, vm := range ControllerNames(s.Controller.Count) {
		p.VMs = append(p.VMs, newVM(name, vm, RoleController, s.Controller.MemoryMB, s.Controller.CPUCores, s.Controller.DiskSizeGB))
	}
	for _, n := range s.ComputeNodes {
		p.VMs = append(p.VMs, newVM(name, n.Name, RoleCompute, n.MemoryMB, n.CPUCores, n.DiskSizeGB))
	}
	if err := assignMACs(p.VMs, name); err != nil {
		return Plan{}, err
	}
	if err := assignIPs(p.VMs, s.Network); err != nil {
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

// assignMACs gives every VM a locally administered unicast MAC derived from
// the cluster and VM names, so a redefined domain keeps its DHCP lease.
func assignMACs(vms []VMPlan, cluster string) error {
	used := map[string]bool{}
	for i := range vms {
		for attempt := 0; ; attempt++ {
			if attempt > 16 {
				return fmt.Errorf("cannot derive a unique MAC address for VM %q", vms[i].Name)
			}
			seed := "hpcvm-mac/" + cluster + "/" + vms[i].Name
			if attempt > 0 {
				seed += "/" + strconv.Itoa(attempt)
			}
			sum := sha256.Sum256([]byte(seed))
			sum[0] = (sum[0] & 0xfe) | 0x02
			mac := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4], sum[5])
			if !used[mac] {
				used[mac] = true
				vms[i].MAC = mac
				break
			}
		}
	}
	return nil
}

// assignIPs gives each VM its static lease, or else the lowest free address
// of the DHCP range, in VM order, so every VM has a fixed address.
func assignIPs(vms []VMPlan, n NetworkSpec) error {
	taken := map[netip.Addr]bool{}
	if gw, err := netip.ParseAddr(n.GatewayIP); err == nil {
		taken[gw] = true
	}
	leased := make([]string, 0, len(n.StaticLeases))
	for vm := range n.StaticLeases {
		leased = append(leased, vm)
	}
	sort.Strings(leased)
	for _, vm := range leased {
		if a, err := netip.ParseAddr(n.StaticLeases[vm]); err == nil {
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
	for i := range vms {
		if ip, ok := n.StaticLeases[vms[i].Name]; ok {
			vms[i].IP = ip
			continue
		}
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
