package cluster

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func hwYAML(acceleration, rest string) string {
	return "cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {" + acceleration + "}}}\n" + rest
}

func TestHardwareSettingsAreJudgedFromTheFile(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"hugepage size", hwYAML(`performance: {enable_hugepages: true, hugepage_size: "3M"}`, ""),
			`cluster.hardware.acceleration.performance.hugepage_size: "3M" is not a hugepage size; use "2M" or "1G"`},
		{"memory backing", hwYAML(`performance: {memory_backing: ram}`, ""),
			`cluster.hardware.acceleration.performance.memory_backing: "ram" is not a memory backing; use "default", "hugepages" or "memfd"`},
		{"memory not whole pages", hwYAML(`performance: {memory_backing: hugepages, hugepage_size: 1G}`, "controller: {memory_mb: 1536}"),
			`controller.memory_mb: "1536" is not a whole number of 1G hugepages; use a multiple of 1024 MiB, or turn hugepages off`},
		{"topology on a 1-vCPU VM", hwYAML(`cpu_topology: {sockets: 2, cores: 4, threads: 2}`, "controller: {cpu_cores: 16}\ncompute_nodes: [{name: c1, cpu_cores: 1}]"),
			`cluster.hardware.acceleration.cpu_topology: "2×4×2" gives 16 vCPUs but c1 has 1; make sockets × cores × threads equal compute_nodes[0].cpu_cores (1), or give compute_nodes[0].cpu_topology of its own`},
		{"own topology", hwYAML(``, "compute_nodes: [{name: c1, cpu_cores: 4, cpu_topology: {sockets: 1, cores: 2, threads: 1}}]"),
			`compute_nodes[0].cpu_topology: "1×2×1" gives 2 vCPUs but c1 has 4; make sockets × cores × threads equal compute_nodes[0].cpu_cores (4)`},
		{"more cells than vCPUs", hwYAML(`numa_topology: {nodes: 4}`, ""),
			`cluster.hardware.acceleration.numa_topology.nodes: "4" is more than the 2 vCPUs of the controllers; every guest NUMA cell needs at least one vCPU: lower nodes or raise cpu_cores`},
		{"cells do not add up", hwYAML(`numa_topology: {nodes: 2, memory_per_node: 4G}`, "controller: {memory_mb: 4096}"),
			`cluster.hardware.acceleration.numa_topology.memory_per_node: "4G" × 2 nodes = 8192 MiB, but the controllers have memory_mb 4096; leave memory_per_node out to split each VM's memory evenly, or make it match`},
		{"cell size unreadable", hwYAML(`numa_topology: {nodes: 2, memory_per_node: lots}`, ""),
			`cluster.hardware.acceleration.numa_topology.memory_per_node: "lots" is not a memory size; write it like "4G" or "4096M" (binary units), or leave it out to split each VM's memory evenly`},
		{"pci address", hwYAML(``, "compute_nodes: [{name: c1, pcie_passthrough: {enabled: false, devices: [{pci_address: zz-not-an-address, device_type: gpu}]}}]"),
			`compute_nodes[0].pcie_passthrough.devices[0].pci_address: "zz-not-an-address" is not a PCI address; write domain:bus:slot.function in lowercase hex, e.g. "0000:01:00.0" (see lspci -D)`},
		{"device type", hwYAML(``, "compute_nodes: [{name: c1, pcie_passthrough: {enabled: false, devices: [{pci_address: \"0000:01:00.0\", device_type: toaster}]}}]"),
			`compute_nodes[0].pcie_passthrough.devices[0].device_type: "toaster" is not a device type; use one of gpu, audio, network, storage, other`},
		{"vendor id", hwYAML(``, "compute_nodes: [{name: c1, pcie_passthrough: {enabled: false, devices: [{pci_address: \"0000:01:00.0\", device_type: gpu, vendor_id: NVDA}]}}]"),
			`compute_nodes[0].pcie_passthrough.devices[0].vendor_id: "NVDA" is not a PCI ID; write 4 lowercase hex digits, e.g. "10de" (see lspci -nn)`},
		{"assigned to nobody", "cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {pcie_passthrough: {enabled: false, devices: [{pci_address: \"0000:01:00.0\", device_type: gpu, assigned_to: ghost}]}}}\n",
			`cluster.hardware.pcie_passthrough.devices[0].assigned_to: "ghost" names no VM of this cluster; use one of controller-01`},
		{"not assigned", "cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {pcie_passthrough: {enabled: false, devices: [{pci_address: \"0000:01:00.0\", device_type: gpu}]}}}\n",
			`cluster.hardware.pcie_passthrough.devices[0].assigned_to is required here; name the VM the device goes to: controller-01`},
		{"virtiofs owner", hwYAML(``, "compute_nodes: [{name: c1, virtio_fs_mounts: [{tag: data, host_path: /srv/data, mount_point: /data, owner: \"a b\"}]}]"),
			`compute_nodes[0].virtio_fs_mounts[0].owner: "a b" contains blanks or characters hpcvm does not hand to the guest; write it without spaces, quotes, < > & or control characters (options: comma-separated, e.g. ro,noatime)`},
		{"virtiofs tag twice", hwYAML(``, "compute_nodes: [{name: c1, virtio_fs_mounts: [{tag: data, host_path: /srv/a, mount_point: /a}, {tag: data, host_path: /srv/b, mount_point: /b}]}]"),
			`compute_nodes[0].virtio_fs_mounts[1].tag: "data" is used twice in this VM; give every mount its own tag`},
		{"virtiofs relative path", hwYAML(``, "controller: {virtio_fs_mounts: [{tag: data, host_path: srv/data, mount_point: /data}]}"),
			`controller.virtio_fs_mounts[0].host_path: "srv/data" is not a usable absolute path; give a path starting with '/' without blanks, < > & " ' or control characters`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var verr ValidationError
			require.True(t, errors.As(err, &verr), "want a ValidationError, got %v", err)
			var got []string
			for _, e := range verr {
				got = append(got, e.Error())
			}
			assert.Contains(t, got, tc.want)
		})
	}
}

func TestPCIDeviceTwiceInTheCluster(t *testing.T) {
	_, err := Parse([]byte(hwYAML(``, `compute_nodes:
  - {name: c1, pcie_passthrough: {enabled: true, devices: [{pci_address: "0000:01:00.0", device_type: gpu}]}}
  - {name: c2, pcie_passthrough: {enabled: true, devices: [{pci_address: "0000:01:00.0", device_type: gpu}]}}
`)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `compute_nodes[1].pcie_passthrough.devices[0].pci_address: "0000:01:00.0" is listed twice; already at compute_nodes[0].pcie_passthrough.devices[0]`)
}

func TestPlanSplitsNUMACellsAndKeepsTopology(t *testing.T) {
	s, err := Parse([]byte(hwYAML(`numa_topology: {nodes: 2}, cpu_topology: {sockets: 2, cores: 2, threads: 1}, performance: {enable_hugepages: true}`,
		"controller: {cpu_cores: 3, memory_mb: 1030, cpu_topology: {sockets: 1, cores: 3, threads: 1}}\ncompute_nodes: [{name: c1, cpu_cores: 4, memory_mb: 4096}]")))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	ctl, node := p.VMs[0], p.VMs[1]
	assert.Equal(t, &CPUTopologySpec{Sockets: 1, Cores: 3, Threads: 1}, ctl.CPUTopology)
	assert.Equal(t, []NUMACellPlan{
		{ID: 0, CPUs: "0-1", FirstCPU: 0, LastCPU: 1, MemoryMiB: 516, HostCell: -1},
		{ID: 1, CPUs: "2", FirstCPU: 2, LastCPU: 2, MemoryMiB: 514, HostCell: -1},
	}, ctl.NUMACells, "3 vCPUs and 515 pages of 2 MiB over two cells")
	assert.Equal(t, &CPUTopologySpec{Sockets: 2, Cores: 2, Threads: 1}, node.CPUTopology)
	assert.Equal(t, []NUMACellPlan{
		{ID: 0, CPUs: "0-1", FirstCPU: 0, LastCPU: 1, MemoryMiB: 2048, HostCell: -1},
		{ID: 1, CPUs: "2-3", FirstCPU: 2, LastCPU: 3, MemoryMiB: 2048, HostCell: -1},
	}, node.NUMACells)
}

func TestParseMemorySize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "4096M": 4096, "4096MiB": 4096, "4G": 4096, "4 GiB": 4096, "1GB": 1024} {
		got, ok := parseMemoryMiB(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "-1G", "4T", "4g", "1.5G", "99999999999G"} {
		_, ok := parseMemoryMiB(in)
		assert.False(t, ok, in)
	}
}
