package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const minimalYAML = `
cluster:
  name: lab
  host: hv1
  storage:
    base_image: /var/lib/images/base.qcow2
compute_nodes:
  - name: compute-01
  - name: compute-02
`

func TestParseAppliesPlanDefaults(t *testing.T) {
	s, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/libvirt/images", s.Cluster.Storage.PoolPath)
	assert.Equal(t, "dir", s.Cluster.Storage.PoolType)
	assert.Equal(t, "192.168.100.0/24", s.Network.NetworkRange)
	assert.Equal(t, "192.168.100.1", s.Network.GatewayIP)
	assert.Equal(t, "192.168.100.10", s.Network.DHCPStart)
	assert.Equal(t, "192.168.100.254", s.Network.DHCPEnd)
	assert.Equal(t, "isolated", s.Network.DNSMode)
	assert.Equal(t, ControllerSpec{Count: 1, MemoryMB: 4096, CPUCores: 2, DiskSizeGB: 50}, s.Controller)
	assert.Equal(t, NodeSpec{Name: "compute-01", MemoryMB: 8192, CPUCores: 4, DiskSizeGB: 100}, s.ComputeNodes[0])
}

func TestParseJudgesThePlansExample(t *testing.T) {
	// The plan's "Enhanced Cluster Configuration", trimmed of comments.
	yaml := `
global: {}
cluster:
  name: "hpc-cluster"
  storage:
    pool_path: "/var/lib/libvirt/images"
    pool_type: "dir"
    base_image: "/var/lib/libvirt/images/hpc-base.qcow2"
  hardware:
    acceleration:
      enable_kvm: true
      enable_nested: false
      cpu_model: "host-passthrough"
      cpu_features: ["+vmx", "+svm", "+sse4.1"]
      numa_topology: null
      cpu_topology: {sockets: 1, cores: 4, threads: 1}
      performance: {enable_hugepages: false, hugepage_size: "2M", cpu_pinning: false, memory_backing: "default"}
network:
  network_range: "192.168.100.0/24"
  bridge_name: "br-hpc-cluster"
  gateway_ip: "192.168.100.1"
  dhcp_start: "192.168.100.10"
  dhcp_end: "192.168.100.254"
  dns_mode: "isolated"
  dns_servers: ["8.8.8.8", "1.1.1.1"]
  static_leases:
    controller-01: "192.168.100.10"
    compute-01: "192.168.100.11"
    compute-02: "192.168.100.12"
host_configuration:
  require_confirmation: true
  network: {enable_host_dns_integration: false}
controller: {count: 1, memory_mb: 4096, cpu_cores: 2, disk_size_gb: 50}
compute_nodes:
  - name: "compute-01"
    memory_mb: 8192
    cpu_cores: 4
    disk_size_gb: 100
    pcie_passthrough:
      enabled: true
      devices:
        - {pci_address: "0000:65:00.0", device_type: "gpu", vendor_id: "10de", device_id: "2684", iommu_group: 1}
  - name: "compute-02"
`
	// Every key of it is read; one thing in it cannot run as written: its
	// 1×4×1 topology on the 2-vCPU controller. (Whether the host has its
	// GPU and can give it the CPU features is for the host to say.)
	_, err := Parse([]byte(yaml))
	var verr ValidationError
	require.True(t, errors.As(err, &verr), "want a ValidationError, got %v", err)
	require.Len(t, verr, 1, "%v", err)
	assert.Equal(t, `cluster.hardware.acceleration.cpu_topology: "1×4×1" gives 4 vCPUs but the controllers have 2; make sockets × cores × threads equal controller.cpu_cores (2), or give controller.cpu_topology of its own`, verr[0].Error())

	// With the controller given its own topology, the file is accepted.
	yaml = strings.Replace(yaml, "controller: {count: 1,", "controller: {cpu_topology: {sockets: 1, cores: 2, threads: 1}, count: 1,", 1)
	s, err := Parse([]byte(yaml))
	require.NoError(t, err)
	assert.Equal(t, "hpc-cluster", s.Cluster.Name)
	assert.Equal(t, "192.168.100.12", s.Network.StaticLeases["compute-02"])
	require.NotNil(t, s.Cluster.Hardware.Acceleration.EnableKVM)
	assert.True(t, *s.Cluster.Hardware.Acceleration.EnableKVM)
}

func TestValidationNamesFieldValueAndRemedy(t *testing.T) {
	cases := []struct {
		name, yaml, path, want string
	}{
		{"xml-breaking name", `cluster: {name: "a<b>", storage: {base_image: /x.qcow2}}`, "cluster.name", "lowercase letters"},
		{"uppercase name", `cluster: {name: "Lab", storage: {base_image: /x.qcow2}}`, "cluster.name", "lowercase"},
		{"bridge too long", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {bridge_name: br-this-is-too-long}", "network.bridge_name", "at most 15"},
		{"relative base image", `cluster: {name: lab, storage: {base_image: images/x.qcow2}}`, "cluster.storage.base_image", "absolute"},
		{"path with quote", `cluster: {name: lab, storage: {base_image: "/x'.qcow2"}}`, "cluster.storage.base_image", "remove"},
		{"unclean path", `cluster: {name: lab, storage: {base_image: "/a/../x.qcow2"}}`, "cluster.storage.base_image", `"/x.qcow2"`},
		{"missing base image", `cluster: {name: lab}`, "cluster.storage.base_image", "is required"},
		{"unsupported pool type", `cluster: {name: lab, storage: {base_image: /x.qcow2, pool_type: lvm}}`, "cluster.storage.pool_type", "not supported"},
		{"host bits", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {network_range: 10.1.2.3/24}", "network.network_range", `"10.1.2.0/24"`},
		{"gateway outside", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {gateway_ip: 10.0.0.1}", "network.gateway_ip", "192.168.100.1 to"},
		{"lease for unknown vm", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {static_leases: {ghost: 192.168.100.20}}", "network.static_leases.ghost", "names no VM"},
		{"duplicate lease", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\ncompute_nodes: [{name: c1}]\nnetwork: {static_leases: {c1: 192.168.100.20, controller-01: 192.168.100.20}}", "network.static_leases", "also leased"},
		{"vm named like the base volume", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\ncompute_nodes: [{name: lab-base}]", "compute_nodes[0].name", "base image volume"},
		{"duplicate vm", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\ncompute_nodes: [{name: c1}, {name: c1}]", "compute_nodes[1].name", "used twice"},
		{"tiny memory", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\ncompute_nodes: [{name: c1, memory_mb: 8}]", "compute_nodes[0].memory_mb", "at least 64"},
		{"typo key", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\ncontroller: {memroy_mb: 10}", "controller.memroy_mb", "not a known setting"},
		{"dns mode", "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {dns_mode: mesh}", "network.dns_mode", "is not a DNS mode"},
		{"cpu model", "cluster: {name: lab, storage: {base_image: /x.qcow2, }, hardware: {acceleration: {cpu_model: \"pen tium\"}}}", "cluster.hardware.acceleration.cpu_model", "host-passthrough"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			var verr ValidationError
			require.True(t, errors.As(err, &verr), "want a ValidationError, got %T: %v", err, err)
			msg := err.Error()
			assert.Contains(t, msg, tc.path)
			assert.Contains(t, msg, tc.want)
		})
	}
}

func TestParseRejectsBrokenYAMLAndWrongTypes(t *testing.T) {
	_, err := Parse([]byte("cluster: [\n"))
	var in *InputError
	require.ErrorAs(t, err, &in)
	assert.Contains(t, err.Error(), "not valid YAML")

	_, err = Parse([]byte("- cluster\n"))
	require.ErrorAs(t, err, &in)
	assert.Contains(t, err.Error(), "not a cluster file")

	// A wrong type is a problem of one setting, reported with the others.
	_, err = Parse([]byte("cluster: {name: lab, storage: {base_image: /x.qcow2}}\ncontroller: {memory_mb: lots}"))
	var problems ValidationError
	require.ErrorAs(t, err, &problems)
	assert.Contains(t, err.Error(), `controller.memory_mb: "lots" is not a whole number; give a number of MiB such as 4096`)
}

func TestPlanIsDeterministicAndNamesEverything(t *testing.T) {
	s, err := Parse([]byte(minimalYAML + "network:\n  static_leases:\n    compute-02: 192.168.100.10\n"))
	require.NoError(t, err)
	p1, err := NewPlan(s)
	require.NoError(t, err)
	p2, err := NewPlan(s)
	require.NoError(t, err)
	assert.Equal(t, p1, p2)

	assert.Equal(t, "lab-network", p1.Network.Name)
	assert.Equal(t, "br-lab", p1.Network.Bridge)
	assert.Equal(t, "lab-pool", p1.Pool.Name)
	assert.Equal(t, "/var/lib/libvirt/images/lab", p1.Pool.Path)
	assert.Equal(t, "lab-base.qcow2", p1.BaseImage.Volume)
	require.Len(t, p1.VMs, 3)
	assert.Equal(t, []string{"lab-controller-01", "lab-compute-01", "lab-compute-02"}, []string{p1.VMs[0].Domain, p1.VMs[1].Domain, p1.VMs[2].Domain})
	// compute-02 holds .10 by a static lease; the others take the lowest free addresses.
	assert.Equal(t, []string{"192.168.100.11", "192.168.100.12", "192.168.100.10"}, []string{p1.VMs[0].IP, p1.VMs[1].IP, p1.VMs[2].IP})
	macs := map[string]bool{}
	for _, vm := range p1.VMs {
		assert.Regexp(t, `^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`, vm.MAC)
		assert.Equal(t, byte(0x02), hexByte(t, vm.MAC[:2])&0x03, "locally administered unicast")
		macs[vm.MAC] = true
	}
	assert.Len(t, macs, 3)
	assert.Len(t, p1.Network.Leases, 3)

	other := s
	other.Cluster.Name = "lab2"
	p3, err := NewPlan(other)
	require.NoError(t, err)
	assert.NotEqual(t, p1.VMs[0].MAC, p3.VMs[0].MAC, "two clusters never share a MAC")
	assert.NotEqual(t, p1.VMs[0].UUID, p3.VMs[0].UUID)
}

func TestBridgeNameFitsKernelLimit(t *testing.T) {
	b := BridgeName("a-rather-long-cluster-name", "")
	assert.LessOrEqual(t, len(b), 15)
	assert.Equal(t, b, BridgeName("a-rather-long-cluster-name", ""))
	assert.NotEqual(t, b, BridgeName("a-rather-long-cluster-namf", ""))
}

func TestNegotiatePicksNewestQ35AndFallsBackToTCG(t *testing.T) {
	s, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	host := HostCapabilities{Arch: "x86_64", KVMUsable: true, Emulator: "/usr/bin/qemu-system-x86_64",
		MachineTypes: []string{"pc-i440fx-7.2", "pc-q35-6.2", "pc-q35-7.2", "pc-q35-7.10", "q35", "pc"}}
	require.NoError(t, p.Negotiate(s, host))
	assert.Equal(t, "pc-q35-7.10", p.Machine.MachineType)
	assert.Equal(t, "kvm", p.Machine.DomainType)
	assert.Empty(t, p.Machine.Notes)

	host.KVMUsable = false
	yes := true
	s.Cluster.Hardware.Acceleration.EnableKVM = &yes
	s.Cluster.Hardware.Acceleration.CPUModel = "host-passthrough"
	require.NoError(t, p.Negotiate(s, host))
	assert.Equal(t, "qemu", p.Machine.DomainType)
	assert.Empty(t, p.Machine.CPUMode)
	assert.Len(t, p.Machine.Notes, 2)
	assert.Contains(t, strings.Join(p.Machine.Notes, "\n"), "enable_kvm is true")

	host.MachineTypes = []string{"pc-i440fx-7.2"}
	err = p.Negotiate(s, host)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no Q35 machine type")
}

func hexByte(t *testing.T, s string) byte {
	t.Helper()
	var b byte
	for _, c := range s {
		b <<= 4
		switch {
		case c >= '0' && c <= '9':
			b |= byte(c - '0')
		case c >= 'a' && c <= 'f':
			b |= byte(c-'a') + 10
		}
	}
	return b
}

func TestNetworkForwardIsCheckedAndPlanned(t *testing.T) {
	base := "cluster: {name: lab, storage: {base_image: /x.qcow2}}\n"
	for mode, problem := range map[string]string{
		"route":  "host change hpcvm does not make yet",
		"bridge": "is not a forward mode",
	} {
		_, err := Parse([]byte(base + "network: {forward: " + mode + "}"))
		require.Error(t, err, mode)
		assert.Contains(t, err.Error(), "network.forward")
		assert.Contains(t, err.Error(), problem)
	}
	_, err := Parse([]byte(base + `network: {forward: ""}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "network.forward")
	for mode, want := range map[string]string{"": "nat", "forward: nat": "nat", "forward: none": "none"} {
		s, err := Parse([]byte(base + "network: {" + mode + "}"))
		require.NoError(t, err, mode)
		p, err := NewPlan(s)
		require.NoError(t, err)
		assert.Equal(t, want, p.Network.ForwardMode(), mode)
	}
}

// host_configuration: changes kept off are accepted (hpcvm's default), a
// change switched on is refused (hpcvm makes none yet), unknown keys and
// wrong kinds are refused by path.
func TestHostConfigurationKeepsTheHostUnchanged(t *testing.T) {
	base := "cluster: {name: lab, storage: {base_image: /x.qcow2}}\n"
	_, err := Parse([]byte(base + `host_configuration:
  require_confirmation: true
  enable_audit_logging: true
  network:
    enable_host_dns_integration: false
    enable_cross_cluster_routing: false
    dnsmasq_config_path: /etc/dnsmasq.d
    cross_cluster_routing: {enable_ip_forwarding: true, permanent_changes: false}
  system: {enable_hugepage_config: false, performance: {cpu_governor: performance}}
  security: {max_rollback_attempts: 3}
  development_mode: false
`))
	require.NoError(t, err)
	s, err := Parse([]byte(base + "host_configuration: {require_confirmation: true, network: {enable_host_dns_integration: false, dnsmasq_config_path: /etc/dnsmasq.d}}"))
	require.NoError(t, err)
	assert.Contains(t, Warnings(s), "host_configuration: every host change is off, so network.dnsmasq_config_path, require_confirmation change nothing")
	for in, want := range map[string]string{
		"host_configuration: {system: {enable_hugepage_config: true}}":   "host_configuration.system.enable_hugepage_config: \"true\" would let hpcvm change the host (hugepages reserved on the host), which hpcvm does not do yet",
		"host_configuration: {development_mode: true}":                   "host_configuration.development_mode: \"true\" would let hpcvm change the host (every host change at once)",
		"host_configuration: {network: {colour: red}}":                   "host_configuration.network.colour: \"red\" is not a host_configuration setting",
		"host_configuration: {security: {max_rollback_attempts: many}}":  "host_configuration.security.max_rollback_attempts: \"many\" is not a whole number",
		"host_configuration: {system: {enable_numa_config: yes-please}}": "host_configuration.system.enable_numa_config: \"yes-please\" is not true or false",
	} {
		_, err := Parse([]byte(base + in))
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}

// Routing between clusters is the host change hpcvm makes: allowed, it is
// planned with how it is to be made; what hpcvm cannot honour is refused.
func TestCrossClusterRoutingWhenAllowed(t *testing.T) {
	base := "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {network_range: 10.9.0.0/24, dns_mode: routed%s}\nhost_configuration: {network: {enable_cross_cluster_routing: true%s}%s}\n"
	s, err := Parse([]byte(fmt.Sprintf(base, "", "", "")))
	require.NoError(t, err)
	h := HostChangesOf(s)
	assert.Equal(t, HostChangesPlan{Routing: true, EnableIPForwarding: true, Confirm: true, RequireRoot: true}, h, "the plan's defaults: forwarding allowed, confirmation asked, rolled back on failure")
	for _, w := range Warnings(s) {
		assert.NotContains(t, w, "Cross-cluster routing requested", "no manual steps for what hpcvm makes")
	}
	p, err := NewPlan(s)
	require.NoError(t, err)
	assert.Contains(t, strings.Join(HostChangeSummary(p, h), "\n"), "bridge br-lab (10.9.0.0/24)")

	s, err = Parse([]byte(fmt.Sprintf(base, "", ", require_confirmation: false, cross_cluster_routing: {enable_ip_forwarding: false}", ", rollback_on_failure: false, security: {require_root_access: false, backup_configs: true}")))
	require.NoError(t, err)
	assert.Equal(t, HostChangesPlan{Routing: true, KeepOnFailure: true}, HostChangesOf(s))
	assert.Contains(t, Warnings(s), "host_configuration: hpcvm makes only the host change this cluster's dns_mode asks for, so security.backup_configs change nothing")
	s, err = Parse([]byte(fmt.Sprintf(base, "", "", ", require_confirmation: true, skip_confirmation: true")))
	require.NoError(t, err)
	assert.False(t, HostChangesOf(s).Confirm, "skip_confirmation answers it")

	for _, c := range []struct{ network, routing, top, want string }{
		{", forward: none", "", "", "network.forward: \"none\" gives the guests no route off their bridge"},
		{"", ", cross_cluster_routing: {add_iptables_rules: false}", "", "add_iptables_rules: \"false\" forbids the firewall rules"},
		{"", ", cross_cluster_routing: {permanent_changes: true}", "", "permanent_changes: \"true\" would make hpcvm write the host's boot configuration"},
		{"", "", ", enable_audit_logging: false", "enable_audit_logging: \"false\" cannot be turned off"},
		{"", "", ", security: {validate_changes: false}", "validate_changes: \"false\" cannot be turned off"},
	} {
		_, err := Parse([]byte(fmt.Sprintf(base, c.network, c.routing, c.top)))
		require.Error(t, err, c)
		assert.Contains(t, err.Error(), c.want)
	}

	// Allowed but not asked for: nothing changes, and it says so.
	s, err = Parse([]byte("cluster: {name: lab, storage: {base_image: /x.qcow2}}\nhost_configuration: {network: {enable_cross_cluster_routing: true}}\n"))
	require.NoError(t, err)
	assert.False(t, HostChangesOf(s).Any())
	assert.Contains(t, strings.Join(Warnings(s), "\n"), "enable_cross_cluster_routing is true but network.dns_mode is \"isolated\": hpcvm makes no routing on the host")
}

// dns_mode service_discovery with the host change allowed: the registry
// file is planned where config_dir says (Consul's directory by default).
func TestServiceDiscoveryWhenAllowed(t *testing.T) {
	base := "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {network_range: 10.9.0.0/24, dns_mode: service_discovery}\nhost_configuration: {network: {enable_service_discovery: true%s}}\n"
	s, err := Parse([]byte(fmt.Sprintf(base, "")))
	require.NoError(t, err)
	h := HostChangesOf(s)
	assert.Equal(t, HostChangesPlan{Discovery: true, DiscoveryDir: "/etc/consul.d", Confirm: true, RequireRoot: true}, h)
	assert.Empty(t, Warnings(s), "no manual steps for what hpcvm makes")
	p, err := NewPlan(s)
	require.NoError(t, err)
	assert.Contains(t, strings.Join(HostChangeSummary(p, h), "\n"), "write the names and addresses of its 1 VM(s) to /etc/consul.d/hpcvm-lab.json")
	s, err = Parse([]byte(fmt.Sprintf(base, ", service_discovery: {config_dir: /var/lib/consul/conf, consul_path: /usr/bin/consul}")))
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/consul/conf", HostChangesOf(s).DiscoveryDir)
	assert.Contains(t, strings.Join(Warnings(s), "\n"), "network.service_discovery.consul_path change nothing")
	_, err = Parse([]byte(fmt.Sprintf(base, ", service_discovery: {config_dir: consul.d}")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config_dir: \"consul.d\" is not an absolute directory")
	// Clean, as every path hpcvm uses on the host: the worker checks it
	// as written, the kernel follows a link before '..'.
	for dir, want := range map[string]string{
		"/var/lib/consul/conf/":           `write it as "/var/lib/consul/conf"`,
		"/etc/consul.d/link/../../shadow": "is not a clean path",
		"/":                               "is the root directory",
	} {
		_, err = Parse([]byte(fmt.Sprintf(base, ", service_discovery: {config_dir: \""+dir+"\"}")))
		require.Error(t, err, dir)
		assert.Contains(t, err.Error(), "config_dir: \""+dir+"\"")
		assert.Contains(t, err.Error(), want, dir)
	}
}

// A dns_mode that needs host changes runs isolated, and says how to make
// the changes by hand with the cluster's own names.
func TestDNSModesNeedingHostChangesFallBackWithManualSteps(t *testing.T) {
	base := "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {network_range: 10.9.0.0/24, dns_mode: %s}\n"
	for mode, want := range map[string][]string{
		"shared_dns":        {"Shared DNS requested for lab but host changes are disabled; the cluster runs isolated", "resolvectl dns br-lab 10.9.0.1", "server=/lab.local/10.9.0.1", "enable_host_dns_integration: true", "sudo systemctl restart dnsmasq"},
		"routed":            {"Cross-cluster routing requested for lab", "sysctl -w net.ipv4.ip_forward=1", "iptables -I FORWARD -i br-lab -o BR -j ACCEPT", "enable_cross_cluster_routing: true"},
		"service_discovery": {"Service discovery requested for lab", "Consul/etcd", "enable_service_discovery: true"},
	} {
		s, err := Parse([]byte(fmt.Sprintf(base, mode)))
		require.NoError(t, err, mode)
		w := strings.Join(Warnings(s), "\n")
		for _, piece := range want {
			assert.Contains(t, w, piece, mode)
		}
	}
	s, err := Parse([]byte(fmt.Sprintf(base, "isolated")))
	require.NoError(t, err)
	assert.Empty(t, Warnings(s))
}

// Host DNS integration, allowed: shared_dns and routed clusters teach the
// host's dnsmasq their domain and send *.local there; the keys that say
// how are checked.
func TestHostDNSIntegrationIsPlannedWhenAllowed(t *testing.T) {
	base := "cluster: {name: lab, storage: {base_image: /x.qcow2}}\nnetwork: {network_range: 10.9.0.0/24, dns_mode: %s%s}\nhost_configuration: {network: {enable_host_dns_integration: true%s}}\n"
	s, err := Parse([]byte(fmt.Sprintf(base, "shared_dns", "", "")))
	require.NoError(t, err)
	assert.Empty(t, Warnings(s), "no fallback warning: the change is made")
	h := HostChangesOf(s)
	assert.True(t, h.Resolver)
	assert.Equal(t, DefaultResolverDir, h.ResolverDir)
	assert.Equal(t, DefaultResolverAddress, h.ResolverAddress)
	assert.True(t, h.Confirm, "asks first by default")
	p, err := NewPlan(s)
	require.NoError(t, err)
	assert.Empty(t, p.Network.DNSForwarders(), "the plan alone changes nothing: the workflow applies the host changes")
	h.ApplyTo(&p)
	assert.Equal(t, []DNSForwarder{{Domain: "local", Addr: "127.0.0.1"}, {Addr: "127.0.0.1"}}, p.Network.DNSForwarders(),
		"libvirt drops resolv.conf once a network has a forwarder: everything goes to the host's resolver")
	summary := strings.Join(HostChangeSummary(p, h), "\n")
	assert.Contains(t, summary, "write /etc/dnsmasq.d/hpcvm-lab.conf (dnsmasq: the queries for lab.local go to the cluster's network at 10.9.0.1)")

	s, err = Parse([]byte(fmt.Sprintf(base, "routed", ", dns_servers: [192.0.2.53]", ", dnsmasq_config_path: /srv/dnsmasq.d, dnsmasq_address: 127.0.53.1")))
	require.NoError(t, err)
	h = HostChangesOf(s)
	require.True(t, h.Resolver, "routed clusters may resolve each other's names too")
	assert.False(t, h.Routing)
	assert.Equal(t, "/srv/dnsmasq.d", h.ResolverDir)
	p, err = NewPlan(s)
	require.NoError(t, err)
	h.ApplyTo(&p)
	assert.Equal(t, []DNSForwarder{{Domain: "local", Addr: "127.0.53.1"}, {Addr: "192.0.2.53"}}, p.Network.DNSForwarders())

	s, err = Parse([]byte(fmt.Sprintf(base, "isolated", "", "")))
	require.NoError(t, err)
	assert.False(t, HostChangesOf(s).Resolver)
	assert.Contains(t, strings.Join(Warnings(s), "\n"), "enable_host_dns_integration is true but network.dns_mode is \"isolated\"")

	// A Spec built in Go (as a composing workflow sends it) is judged as
	// a parsed one.
	raw, err := Parse([]byte("cluster: {name: lab, storage: {base_image: /x.qcow2}}\n"))
	require.NoError(t, err)
	raw.HostConfiguration = map[string]any{"network": map[string]any{"dnsmasq_address": "127.0.0.1"}}
	assert.NoError(t, Validate(raw))
	raw.HostConfiguration = map[string]any{"network": map[string]any{"dnsmasq_config_path": "dnsmasq.d"}}
	assert.ErrorContains(t, Validate(raw), "dnsmasq_config_path: \"dnsmasq.d\" is not an absolute directory")

	for in, want := range map[string]string{
		", dnsmasq_config_path: dnsmasq.d": "dnsmasq_config_path: \"dnsmasq.d\" is not an absolute directory",
		// The worker checks the path as written against its root and the
		// kernel follows a link before '..': only a clean path is taken.
		", dnsmasq_config_path: /etc/dnsmasq.d/hpcvm/../../shadow": "is not a clean path",
		", dnsmasq_config_path: \"/etc/dnsmasq.d/\"":               "write it as \"/etc/dnsmasq.d\"",
		", dnsmasq_config_path: /":                                 "is the root directory",
		", dnsmasq_address: localhost":                             "dnsmasq_address: \"localhost\" is not an IPv4 address",
	} {
		_, err := Parse([]byte(fmt.Sprintf(base, "shared_dns", "", in)))
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want)
	}
}

// The spec reaches the worker through JSON: numbers arrive as float64.
func TestHostConfigurationNumbersSurviveJSON(t *testing.T) {
	s, err := Parse([]byte("cluster: {name: lab, storage: {base_image: /x.qcow2}}\nhost_configuration: {security: {max_rollback_attempts: 3}}\n"))
	require.NoError(t, err)
	raw, err := json.Marshal(s)
	require.NoError(t, err)
	var again Spec
	require.NoError(t, json.Unmarshal(raw, &again))
	require.NoError(t, Validate(again))
}
