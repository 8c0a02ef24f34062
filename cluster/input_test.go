package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// labYAML is the smallest file Parse accepts, with the host given so the
// tests do not depend on the machine's hostname.
const labYAML = "cluster: {name: lab, host: hv1, storage: {base_image: /var/lib/images/base.qcow2}}\n"

// problemAt returns the one problem err reports at path, failing the test
// when err is not a ValidationError or has none or several there.
func problemAt(t *testing.T, err error, path string) FieldError {
	t.Helper()
	var problems ValidationError
	require.True(t, errors.As(err, &problems), "want a ValidationError, got %T: %v", err, err)
	var found []FieldError
	for _, p := range problems {
		if p.Path == path {
			found = append(found, p)
		}
	}
	require.Len(t, found, 1, "problems at %s in:\n%v", path, err)
	return found[0]
}

func TestParseRefusesZeroAndNegativeSizes(t *testing.T) {
	type sizeCase struct {
		key   string
		value int
		want  string // the whole message line
	}
	var cases []sizeCase
	for _, v := range []int{0, -1, -4096} {
		cases = append(cases,
			sizeCase{"cpu_cores", v, fmt.Sprintf(`: "%d" is out of range; use 1 to 512`, v)},
			sizeCase{"memory_mb", v, fmt.Sprintf(`: "%d" is too small; use at least 64 (MiB)`, v)},
			sizeCase{"disk_size_gb", v, fmt.Sprintf(`: "%d" is out of range; use 1 to 65536 (GiB)`, v)},
		)
	}
	for _, section := range []struct {
		path string
		yaml func(key string, value int) string
	}{
		{"controller", func(k string, v int) string { return fmt.Sprintf("controller: {%s: %d}\n", k, v) }},
		{"compute_nodes[0]", func(k string, v int) string {
			return fmt.Sprintf("compute_nodes:\n  - name: compute-01\n    %s: %d\n", k, v)
		}},
		{"compute_nodes[1]", func(k string, v int) string {
			return fmt.Sprintf("compute_nodes:\n  - name: compute-01\n  - name: compute-02\n    %s: %d\n", k, v)
		}},
	} {
		for _, tc := range cases {
			path := section.path + "." + tc.key
			t.Run(fmt.Sprintf("%s=%d", path, tc.value), func(t *testing.T) {
				_, err := Parse([]byte(labYAML + section.yaml(tc.key, tc.value)))
				p := problemAt(t, err, path)
				assert.Equal(t, tc.value, p.Value)
				assert.Equal(t, path+tc.want, p.Error())
				var problems ValidationError
				require.ErrorAs(t, err, &problems)
				assert.Len(t, problems, 1, "only the bad setting is reported: %v", err)
			})
		}
	}
}

func TestParseControllerCount(t *testing.T) {
	cases := []struct {
		yaml    string
		want    int
		problem string
	}{
		{"controller: {count: 0}", 0, `controller.count: "0" is out of range; use 1 to 9`},
		{"controller: {count: -1}", 0, `controller.count: "-1" is out of range; use 1 to 9`},
		{"controller: {count: 10}", 0, `controller.count: "10" is out of range; use 1 to 9`},
		{"controller: {count: -9223372036854775808}", 0, `controller.count: "-9223372036854775808" is out of range; use 1 to 9`},
		{"controller: {count: 1}", 1, ""},
		{"controller: {count: 9}", 9, ""},
		{`controller: {count: "3"}`, 3, ""},
		{"controller: {count: 2.0}", 2, ""},
		{"controller: {}", DefaultControllerCount, ""},
		{"controller:", DefaultControllerCount, ""},
		{"", DefaultControllerCount, ""},
	}
	for _, tc := range cases {
		t.Run(tc.yaml, func(t *testing.T) {
			assert.NotPanics(t, func() {
				s, err := Parse([]byte(labYAML + tc.yaml + "\n"))
				if tc.problem == "" {
					require.NoError(t, err)
					assert.Equal(t, tc.want, s.Controller.Count)
					p, err := NewPlan(s)
					require.NoError(t, err)
					assert.Len(t, p.VMs, tc.want)
					return
				}
				assert.Equal(t, tc.problem, problemAt(t, err, "controller.count").Error())
			})
		})
	}
}

func TestParseDefaultsOnlyAbsentKeys(t *testing.T) {
	s, err := Parse([]byte(labYAML + `
network: {network_range: 10.20.0.0/16, dhcp_end: 10.20.0.99}
controller: {memory_mb: 1024}
compute_nodes:
  - {name: a, cpu_cores: 8}
  - {name: b, disk_size_gb: 7}
`))
	require.NoError(t, err)
	assert.Equal(t, "10.20.0.1", s.Network.GatewayIP, "absent: first host of the given range")
	assert.Equal(t, "10.20.0.10", s.Network.DHCPStart)
	assert.Equal(t, "10.20.0.99", s.Network.DHCPEnd, "given: kept")
	assert.Equal(t, DefaultDNSMode, s.Network.DNSMode)
	assert.Equal(t, DefaultPoolPath, s.Cluster.Storage.PoolPath)
	assert.Equal(t, DefaultPoolType, s.Cluster.Storage.PoolType)
	assert.Equal(t, ControllerSpec{Count: DefaultControllerCount, MemoryMB: 1024, CPUCores: DefaultControllerCPU, DiskSizeGB: DefaultControllerDiskGB}, s.Controller)
	assert.Equal(t, NodeSpec{Name: "a", MemoryMB: DefaultComputeMemory, CPUCores: 8, DiskSizeGB: DefaultComputeDiskGB}, s.ComputeNodes[0])
	assert.Equal(t, NodeSpec{Name: "b", MemoryMB: DefaultComputeMemory, CPUCores: DefaultComputeCPU, DiskSizeGB: 7}, s.ComputeNodes[1])
	assert.Nil(t, s.Cluster.Hardware.Acceleration.EnableKVM, "absent enable_kvm stays 'not said'")
}

func TestParseDefaultsFitASmallNetwork(t *testing.T) {
	s, err := Parse([]byte(labYAML + "network: {network_range: 10.0.0.0/29}\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2", "10.0.0.6"}, []string{s.Network.GatewayIP, s.Network.DHCPStart, s.Network.DHCPEnd})
}

func TestParseRefusesEmptyAndMissingValues(t *testing.T) {
	cases := []struct{ yaml, path, want string }{
		{`network: {gateway_ip: ""}`, "network.gateway_ip", `network.gateway_ip: "" is empty; give an IPv4 address inside network.network_range, or leave the key out to use its first host address`},
		{`network: {network_range: ""}`, "network.network_range", `network.network_range: "" is empty; give an IPv4 network in CIDR form such as 192.168.100.0/24, or leave the key out for that default`},
		{`network: {dhcp_start: ""}`, "network.dhcp_start", `network.dhcp_start: "" is empty;`},
		{`network: {dhcp_end: ""}`, "network.dhcp_end", `network.dhcp_end: "" is empty;`},
		{`network: {dns_mode: ""}`, "network.dns_mode", `network.dns_mode: "" is empty; give "isolated" (the default), "shared_dns", "routed" or "service_discovery"`},
		{`network: {bridge_name: ""}`, "network.bridge_name", `network.bridge_name: "" is empty;`},
		{"network: {dhcp_end: }", "network.dhcp_end", "network.dhcp_end has no value; give an IPv4 address"},
		{`network: {static_leases: {controller-01: ""}}`, "network.static_leases.controller-01", `network.static_leases.controller-01: "" is empty; give an IPv4 address`},
		{"controller: {memory_mb: null}", "controller.memory_mb", "controller.memory_mb has no value; give a number of MiB such as 4096, or leave the key out for 4096"},
		{"compute_nodes: [{name: c1, cpu_cores: ~}]", "compute_nodes[0].cpu_cores", "compute_nodes[0].cpu_cores has no value;"},
		{`cluster: {name: lab, host: "", storage: {base_image: /x.qcow2}}`, "cluster.host", `cluster.host: "" is empty; give the host name`},
		{`cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2, pool_path: ""}}`, "cluster.storage.pool_path", `cluster.storage.pool_path: "" is empty;`},
		{`cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2, pool_type: ""}}`, "cluster.storage.pool_type", `cluster.storage.pool_type: "" is empty;`},
		{`cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {cpu_model: ""}}}`, "cluster.hardware.acceleration.cpu_model", `cluster.hardware.acceleration.cpu_model: "" is empty;`},
		{`compute_nodes: [{name: ""}]`, "compute_nodes[0].name", `compute_nodes[0].name: "" is empty; give 1-32 lowercase letters`},
	}
	for _, tc := range cases {
		t.Run(tc.yaml, func(t *testing.T) {
			yaml := tc.yaml + "\n"
			if !strings.HasPrefix(yaml, "cluster:") {
				yaml = labYAML + yaml
			}
			_, err := Parse([]byte(yaml))
			assert.Contains(t, problemAt(t, err, tc.path).Error(), tc.want)
		})
	}
}

func TestParseRefusesZeroCPUTopology(t *testing.T) {
	topo := func(body string) string {
		return "cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {cpu_topology: " + body + "}}}\n"
	}
	cases := []struct{ yaml, path, want string }{
		{topo("{sockets: 0, cores: 4, threads: 1}"), "cluster.hardware.acceleration.cpu_topology.sockets", `cluster.hardware.acceleration.cpu_topology.sockets: "0" is out of range; use 1 to 512`},
		{topo("{sockets: 1, cores: -2, threads: 1}"), "cluster.hardware.acceleration.cpu_topology.cores", `cluster.hardware.acceleration.cpu_topology.cores: "-2" is out of range; use 1 to 512`},
		{topo("{sockets: 1, cores: 4}"), "cluster.hardware.acceleration.cpu_topology.threads", "cluster.hardware.acceleration.cpu_topology.threads is missing; give the number of threads per core, 1 to 512, such as 1"},
		{topo("4"), "cluster.hardware.acceleration.cpu_topology", `cluster.hardware.acceleration.cpu_topology: "4" is not a mapping; write it as {sockets: 1, cores: 4, threads: 1}, or leave it out`},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			assert.Equal(t, tc.want, problemAt(t, err, tc.path).Error())
		})
	}
	s, err := Parse([]byte(topo("{sockets: 1, cores: 1, threads: 2}")))
	require.NoError(t, err, "the controller's default 2 vCPUs as 1 socket, 1 core, 2 threads")
	assert.Equal(t, &CPUTopologySpec{Sockets: 1, Cores: 1, Threads: 2}, s.Cluster.Hardware.Acceleration.CPUTopology)
	s, err = Parse([]byte(topo("null")))
	require.NoError(t, err)
	assert.Nil(t, s.Cluster.Hardware.Acceleration.CPUTopology)
}

func TestParseNamesTypeErrors(t *testing.T) {
	cases := []struct{ yaml, path, want string }{
		{"controller: {memory_mb: lots}", "controller.memory_mb",
			`controller.memory_mb: "lots" is not a whole number; give a number of MiB such as 4096, or leave the key out for 4096`},
		{"controller: {memory_mb: 4096.5}", "controller.memory_mb", `controller.memory_mb: "4096.5" is not a whole number;`},
		{"controller: {memory_mb: true}", "controller.memory_mb", `controller.memory_mb: "true" is not a whole number;`},
		{"controller: {memory_mb: 0x1000.8}", "controller.memory_mb", `controller.memory_mb: "0x1000.8" is not a whole number;`},
		{"controller: {memory_mb: .inf}", "controller.memory_mb", `controller.memory_mb: "+Inf" is not a whole number;`},
		{`controller: {memory_mb: "4096 "}`, "controller.memory_mb", `controller.memory_mb: "4096 " is not a whole number;`},
		{"controller: {memory_mb: 99999999999999999999}", "controller.memory_mb", `controller.memory_mb: "1e+20" is too large a number;`},
		{"controller: {cpu_cores: {n: 2}}", "controller.cpu_cores", `controller.cpu_cores: "{n: 2}" is not a whole number; give a number of cores such as 2, or leave the key out for 2`},
		{"controller: 4", "controller", `controller: "4" is not a mapping; write it as a mapping such as {count: 1, memory_mb: 4096, cpu_cores: 2, disk_size_gb: 50}`},
		{"compute_nodes: abc", "compute_nodes", `compute_nodes: "abc" is not a list; write it as a list of nodes, each a mapping such as {name: compute-01, memory_mb: 8192}`},
		{"compute_nodes: {name: c1}", "compute_nodes", `compute_nodes: "{name: c1}" is not a list;`},
		{"compute_nodes: [{name: c1}, {name: c2, cpu_cores: [1, 2]}]", "compute_nodes[1].cpu_cores",
			`compute_nodes[1].cpu_cores: "[1, 2]" is not a whole number; give a number of cores such as 4, or leave the key out for 4`},
		{"compute_nodes: [{name: c1}, c2]", "compute_nodes[1]", `compute_nodes[1]: "c2" is not a mapping; write each node as a mapping such as {name: compute-01, memory_mb: 8192}`},
		{"compute_nodes: [{name: 7}]", "compute_nodes[0].name", `compute_nodes[0].name: "7" is a number, not text; give 1-32 lowercase letters`},
		{"compute_nodes: [{name: {first: c}}]", "compute_nodes[0].name", `compute_nodes[0].name: "{first: c}" is a mapping, not text;`},
		{"network: {gateway_ip: [192.168.100.1]}", "network.gateway_ip", `network.gateway_ip: "[192.168.100.1]" is a list, not text;`},
		{"network: {dns_servers: 1.1.1.1}", "network.dns_servers", `network.dns_servers: "1.1.1.1" is not a list; give a list of IPv4 addresses such as ["1.1.1.1", "8.8.8.8"]`},
		{"network: {dns_servers: [1.1.1.1, 5]}", "network.dns_servers[1]", `network.dns_servers[1]: "5" is a number, not text; give an IPv4 address such as 1.1.1.1`},
		{"network: {static_leases: [controller-01]}", "network.static_leases", `network.static_leases: "[controller-01]" is not a mapping;`},
		{"network: 192.168.100.0/24", "network", `network: "192.168.100.0/24" is not a mapping;`},
		{"global: [a, b]", "global", `global: "[a, b]" is not a mapping; give a mapping of key: value settings, or leave the key out`},
		{"global: {ratio: .nan}", "global.ratio", `global.ratio: "NaN" is not a finite number; give a number, or quote the value to make it text`},
		{"cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {enable_kvm: yes}}}", "cluster.hardware.acceleration.enable_kvm",
			`cluster.hardware.acceleration.enable_kvm: "yes" is not true or false; give true or false, or leave the key out to use KVM when the host has it`},
		{"cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {enable_nested: 1}}}", "cluster.hardware.acceleration.enable_nested",
			`cluster.hardware.acceleration.enable_nested: "1" is not true or false;`},
		{"cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {cpu_features: +vmx}}}", "cluster.hardware.acceleration.cpu_features",
			`cluster.hardware.acceleration.cpu_features: "+vmx" is not a list; give a list such as ["+vmx", "-svm"]`},
		{"cluster: {name: lab, host: 2024-01-02, storage: {base_image: /x.qcow2}}", "cluster.host", `cluster.host: "2024-01-02" is a date, not text;`},
	}
	for _, tc := range cases {
		t.Run(tc.yaml, func(t *testing.T) {
			yaml := tc.yaml + "\n"
			if !strings.HasPrefix(yaml, "cluster:") {
				yaml = labYAML + yaml
			}
			_, err := Parse([]byte(yaml))
			got := problemAt(t, err, tc.path).Error()
			if strings.HasSuffix(tc.want, ";") || strings.HasSuffix(tc.want, "letters") {
				assert.True(t, strings.HasPrefix(got, tc.want), "got %q, want it to start with %q", got, tc.want)
			} else {
				assert.Equal(t, tc.want, got)
			}
		})
	}
}

func TestParseAcceptsQuotedNumbersAndBooleans(t *testing.T) {
	s, err := Parse([]byte(labYAML + `
controller: {memory_mb: "2048", cpu_cores: 1e0, disk_size_gb: 20.0}
compute_nodes: [{name: c1, memory_mb: 0x400}]
`))
	require.NoError(t, err)
	assert.Equal(t, ControllerSpec{Count: 1, MemoryMB: 2048, CPUCores: 1, DiskSizeGB: 20}, s.Controller)
	assert.Equal(t, 1024, s.ComputeNodes[0].MemoryMB)

	s, err = Parse([]byte(`cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {enable_kvm: "false"}}}`))
	require.NoError(t, err)
	require.NotNil(t, s.Cluster.Hardware.Acceleration.EnableKVM)
	assert.False(t, *s.Cluster.Hardware.Acceleration.EnableKVM)
}

func TestParseSuggestsTheNearestKnownKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"controller: {memroy_mb: 4096}", "controller.memroy_mb is not a known setting; did you mean controller.memory_mb?"},
		{"controller: {memory: 4096}", "controller.memory is not a known setting; did you mean controller.memory_mb?"},
		{"controller: {disk: 10}", "controller.disk is not a known setting; did you mean controller.disk_size_gb?"},
		{"controllers: {count: 1}", "controllers is not a known setting; did you mean controller?"},
		{"compute_node: [{name: c1}]", "compute_node is not a known setting; did you mean compute_nodes?"},
		{"compute_nodes: [{name: c1, cpu_core: 2}]", "compute_nodes[0].cpu_core is not a known setting; did you mean compute_nodes[0].cpu_cores?"},
		{"network: {gateway: 192.168.100.1}", "network.gateway is not a known setting; did you mean network.gateway_ip?"},
		{"network: {dhcp_stat: 192.168.100.1}", "network.dhcp_stat is not a known setting; did you mean network.dhcp_start?"},
		{"controller.count: 2", `"controller.count" is not a known setting; write count indented under controller: (a key does not contain dots)`},
		{"controller: {ram: 4096}", "controller.ram is not a known setting; the settings here are count, memory_mb, cpu_cores, disk_size_gb, cpu_topology, virtio_fs_mounts"},
		{`controller: {"x.y\n": 1}`, `controller."x.y\n" is not a known setting; the settings here are count, memory_mb, cpu_cores, disk_size_gb, cpu_topology, virtio_fs_mounts`},
	}
	for _, tc := range cases {
		t.Run(tc.yaml, func(t *testing.T) {
			_, err := Parse([]byte(labYAML + tc.yaml + "\n"))
			var problems ValidationError
			require.ErrorAs(t, err, &problems)
			require.Len(t, problems, 1, "%v", err)
			assert.Equal(t, tc.want, problems[0].Error())
		})
	}
	_, err := Parse([]byte("clutser: {name: lab}\n"))
	assert.Contains(t, err.Error(), "clutser is not a known setting; did you mean cluster?")
}

func TestParseRefusesKeysThatDifferOnlyInCase(t *testing.T) {
	_, err := Parse([]byte("cluster: {Name: lab, name: lab, host: hv1, storage: {base_image: /x.qcow2}}\n"))
	assert.Equal(t, `cluster.name is given twice, as "Name" and "name"; keep one of them: keys are not case-sensitive`, problemAt(t, err, "cluster.name").Error())

	s, err := Parse([]byte("Cluster: {Name: lab, HOST: hv1, Storage: {Base_Image: /x.qcow2}}\n"))
	require.NoError(t, err, "keys are matched case-insensitively, as when viper read the file")
	assert.Equal(t, "lab", s.Cluster.Name)
}

func TestParseKeepsFreeFormSections(t *testing.T) {
	s, err := Parse([]byte(labYAML + `
global: {Anything: [1, {Deep: x}], 7: seven}
host_configuration: {require_confirmation: true}
compute_nodes:
  - name: c1
    pcie_passthrough: {enabled: false, devices: [{pci_address: "0000:65:00.0", device_type: gpu, iommu_group: 1}]}
`))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"anything": []any{1, map[string]any{"deep": "x"}}, "7": "seven"}, s.Global)
	assert.Equal(t, true, s.HostConfiguration["require_confirmation"])
	devices := s.ComputeNodes[0].PCIePassthrough.Devices
	assert.Equal(t, "0000:65:00.0", devices[0].PCIAddress)
	require.NotNil(t, devices[0].IOMMUGroup)
	assert.Equal(t, 1, *devices[0].IOMMUGroup)
	assert.Equal(t, []string{
		"host_configuration: every host change is off, so require_confirmation change nothing",
		"global has no effect: hpcvm reads no settings from it",
		"compute_nodes[0].pcie_passthrough lists 1 device(s) but enabled is false: they are not passed through",
	}, Warnings(s))
	_, err = json.Marshal(s)
	require.NoError(t, err, "the Spec travels to the workflow as JSON")
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse([]byte(`
cluster: {name: Lab, host: hv1, storage: {base_image: /x.qcow2}}
network: {gateway_ip: "", dns_servers: [nope]}
controller: {memroy_mb: 10, count: -1, cpu_cores: 0, disk_size_gb: 4096.5}
compute_nodes: [{name: c1, cpu_cores: [1, 2], memory_mb: true}, 7]
`))
	var problems ValidationError
	require.ErrorAs(t, err, &problems)
	var paths []string
	for _, p := range problems {
		paths = append(paths, p.Path)
	}
	assert.Equal(t, []string{
		"cluster.name",
		"network.gateway_ip",
		"network.dns_servers[0]",
		"controller.disk_size_gb",
		"controller.memroy_mb",
		"controller.count",
		"controller.cpu_cores",
		"compute_nodes[0].memory_mb",
		"compute_nodes[0].cpu_cores",
		"compute_nodes[1]",
	}, paths, "in file order, each setting once:\n%v", err)
}

func TestLoadNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/cluster.yaml"
	require.NoError(t, os.WriteFile(path, []byte(labYAML+"controller: {count: 0}\n"), 0o600))
	_, err := Load(path)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), path+": cluster configuration has 1 problem(s)"), err.Error())
	var problems ValidationError
	assert.ErrorAs(t, err, &problems)
}

func TestApplyDefaultsTreatsZeroAsUnsetForGoCallers(t *testing.T) {
	s := Spec{Cluster: ClusterSpec{Name: "lab", Host: "hv1", Storage: StorageSpec{BaseImage: "/x.qcow2"}}, ComputeNodes: []NodeSpec{{Name: "c1", CPUCores: 3}}}
	ApplyDefaults(&s)
	assert.Equal(t, ControllerSpec{Count: 1, MemoryMB: 4096, CPUCores: 2, DiskSizeGB: 50}, s.Controller)
	assert.Equal(t, NodeSpec{Name: "c1", MemoryMB: 8192, CPUCores: 3, DiskSizeGB: 100}, s.ComputeNodes[0])
	require.NoError(t, Validate(s))
}

func TestValidateRefusesAJSONSpecWithZeros(t *testing.T) {
	s, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	for _, tc := range []struct {
		path  string
		patch func(*Spec)
	}{
		{"controller.count", func(s *Spec) { s.Controller.Count = 0 }},
		{"controller.count", func(s *Spec) { s.Controller.Count = -1 }},
		{"controller.count", func(s *Spec) { s.Controller.Count = 1 << 40 }},
		{"controller.memory_mb", func(s *Spec) { s.Controller.MemoryMB = 0 }},
		{"controller.memory_mb", func(s *Spec) { s.Controller.MemoryMB = 1 << 40 }},
		{"compute_nodes[1].cpu_cores", func(s *Spec) { s.ComputeNodes[1].CPUCores = 0 }},
		{"compute_nodes[0].disk_size_gb", func(s *Spec) { s.ComputeNodes[0].DiskSizeGB = -5 }},
		{"network.gateway_ip", func(s *Spec) { s.Network.GatewayIP = "" }},
	} {
		t.Run(tc.path, func(t *testing.T) {
			data, err := json.Marshal(s)
			require.NoError(t, err)
			var sent Spec
			require.NoError(t, json.Unmarshal(data, &sent))
			tc.patch(&sent)
			assert.NotPanics(t, func() { err = Validate(sent) })
			problemAt(t, err, tc.path)
		})
	}
}

func TestControllerNamesNeverPanics(t *testing.T) {
	assert.Nil(t, ControllerNames(-1))
	assert.Nil(t, ControllerNames(0))
	assert.Equal(t, []string{"controller-01", "controller-02"}, ControllerNames(2))
}

// TestSettingHintsCoverEverySetting keeps the table of what is accepted
// where in step with spec.go: a new setting needs its hint, and its kind
// must be one readInput knows.
func TestSettingHintsCoverEverySetting(t *testing.T) {
	var patterns []string
	var walk func(pattern string, t reflect.Type)
	walk = func(pattern string, typ reflect.Type) {
		if pattern != "" {
			patterns = append(patterns, pattern)
		}
		switch {
		case typ == freeFormType:
		case typ.Kind() == reflect.Pointer:
			walk(pattern, typ.Elem())
		case typ.Kind() == reflect.Struct:
			for _, f := range settingFields(typ) {
				walk(joinPattern(pattern, f.key), typ.Field(f.index).Type)
			}
		case typ.Kind() == reflect.Slice:
			if typ.Elem().Kind() == reflect.Struct {
				patterns = append(patterns, pattern+"[]")
				for _, f := range settingFields(typ.Elem()) {
					walk(pattern+"[]."+f.key, typ.Elem().Field(f.index).Type)
				}
			} else {
				walk(pattern+"[]", typ.Elem())
			}
		case typ.Kind() == reflect.Map:
			walk(pattern+".*", typ.Elem())
		}
	}
	walk("", reflect.TypeOf(Spec{}))
	for _, p := range patterns {
		assert.Contains(t, settingHints, p, "no hint for %s", p)
	}
	for p := range settingHints {
		assert.Contains(t, patterns, p, "hint for a setting that does not exist")
	}
}

func TestEditDistanceCountsASwapAsOneEdit(t *testing.T) {
	assert.Equal(t, 1, editDistance("memroy_mb", "memory_mb"))
	assert.Equal(t, 0, editDistance("count", "count"))
	assert.Equal(t, 3, editDistance("memory", "memory_mb"))
	assert.Equal(t, 5, editDistance("", "count"))
}

// A dotted host_configuration key names the same setting as the nested
// one: given both, the file is refused, not decided by key order.
func TestHostConfigurationRefusesASettingGivenNestedAndDotted(t *testing.T) {
	_, err := Parse([]byte(labYAML + `
host_configuration:
  network:
    enable_cross_cluster_routing: false
  network.enable_cross_cluster_routing: true
`))
	require.Error(t, err)
	assert.Equal(t, `host_configuration.network.enable_cross_cluster_routing: "true" is given twice, nested and as a dotted key (or twice dotted); keep one of them`,
		problemAt(t, err, "host_configuration.network.enable_cross_cluster_routing").Error())

	s, err := Parse([]byte(labYAML + "host_configuration: {network.enable_cross_cluster_routing: false}\n"))
	require.NoError(t, err, "a dotted key alone is the nested setting")
	assert.False(t, hostFlag(s.HostConfiguration, "network.enable_cross_cluster_routing", true))
}
