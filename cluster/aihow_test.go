package cluster

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConvertAIHowExample(t *testing.T) {
	data, err := os.ReadFile("testdata/aihow/lab.yaml")
	require.NoError(t, err)
	out, err := ConvertAIHow(data, AIHowOptions{WorkDir: "/srv/ai-how", LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	require.Len(t, out, 1)
	c := out[0]
	assert.Equal(t, "lab", c.Name)
	assert.Empty(t, c.Problems, c.YAML)

	spec, err := Parse([]byte(c.YAML))
	require.NoError(t, err, c.YAML)
	assert.Equal(t, "lab", spec.Cluster.Name)
	assert.Equal(t, "/srv/ai-how/images/hpc-base.qcow2", spec.Cluster.Storage.BaseImage)
	assert.Equal(t, "10.77.0.0/24", spec.Network.NetworkRange)
	assert.Equal(t, "virbr77", spec.Network.BridgeName)
	assert.Equal(t, map[string]string{"controller-01": "10.77.0.10", "compute-01": "10.77.0.11"}, spec.Network.StaticLeases)
	assert.Equal(t, 8192, spec.Controller.MemoryMB)
	assert.Equal(t, 40, spec.Controller.DiskSizeGB)
	require.Len(t, spec.ComputeNodes, 3, "one VM and a group of 2")
	assert.Equal(t, []string{"compute-01", "compute-02", "compute-03"}, []string{spec.ComputeNodes[0].Name, spec.ComputeNodes[1].Name, spec.ComputeNodes[2].Name})
	assert.Equal(t, 16384, spec.ComputeNodes[0].MemoryMB)
	assert.Equal(t, 60, spec.ComputeNodes[0].DiskSizeGB)
	require.NotNil(t, spec.ComputeNodes[0].PCIePassthrough)
	assert.True(t, spec.ComputeNodes[0].PCIePassthrough.Enabled)
	require.Len(t, spec.ComputeNodes[0].PCIePassthrough.Devices, 2)
	assert.Equal(t, "0000:01:00.0", spec.ComputeNodes[0].PCIePassthrough.Devices[0].PCIAddress)
	assert.Equal(t, "gpu", spec.ComputeNodes[0].PCIePassthrough.Devices[0].DeviceType)
	assert.Equal(t, "10de", spec.ComputeNodes[0].PCIePassthrough.Devices[0].VendorID)
	assert.Equal(t, 4096, spec.ComputeNodes[2].MemoryMB)
	// The group's 2 vCPUs do not fill the cluster's 1×4×1: their own.
	require.NotNil(t, spec.ComputeNodes[1].CPUTopology)
	assert.Equal(t, 2, spec.ComputeNodes[1].CPUTopology.Cores)
	assert.Nil(t, spec.ComputeNodes[0].CPUTopology)
	acc := spec.Cluster.Hardware.Acceleration
	assert.Equal(t, "host-model", acc.CPUModel)
	require.NotNil(t, acc.EnableKVM)
	assert.True(t, *acc.EnableKVM)
	require.NotNil(t, acc.CPUTopology)
	assert.Equal(t, 4, acc.CPUTopology.Cores)
	require.NotNil(t, spec.Inventory)
	assert.Equal(t, []any{"gpu", "debug"}, spec.Inventory.Vars["slurm_partitions"])
	assert.Equal(t, "gpu", spec.Inventory.Vars["slurm_default_partition"])

	assert.Empty(t, c.NotCarried, "everything of the example has a home")
	for _, want := range []string{"converted from a configuration file of the Python tool", "two GPU nodes and a controller",
		"images/hpc-base.qcow2 made absolute", "compute-02 to compute-03", "slurm_config became variables"} {
		assert.Contains(t, c.YAML, want)
	}
}

func TestConvertAIHowReportsWhatItCannotCarry(t *testing.T) {
	src := `version: "1.0"
metadata: {name: x, description: d}
global: {region: eu}
clusters:
  cloud: {control_plane: {cpu_cores: 2}}
  hpc:
    name: x
    base_image_path: ${IMAGES}/base.qcow2
    network: {subnet: 10.1.0.0/24, bridge: br1, vlan: 5}
    controller: {cpu_cores: 2, memory_gb: 2, disk_gb: 10, ip_address: 10.1.0.10, base_image_path: /other.qcow2, pcie_passthrough: {enabled: true}}
    compute_nodes:
      - {cpu_cores: 1, memory_gb: 1, disk_gb: 10, ip: 10.1.0.11, auto_start: false, colour: red}
      - {count: 2, cpu_cores: 1, memory_gb: 1, disk_gb: 10, ip: 10.1.0.20}
    storage: {beegfs: {enabled: true}, virtio_fs: {}}
`
	out, err := ConvertAIHow([]byte(src), AIHowOptions{WorkDir: "/w", LookupEnv: func(k string) (string, bool) {
		return "", false
	}})
	require.NoError(t, err)
	nc := strings.Join(out[0].NotCarried, "\n")
	for _, want := range []string{
		"global: the Python tool did not use it either",
		"clusters.cloud: a Kubernetes cluster",
		"clusters.hpc.base_image_path: uses IMAGES, which is not set here",
		"clusters.hpc.network.vlan",
		"clusters.hpc.controller.base_image_path: /other.qcow2 differs",
		"clusters.hpc.controller.pcie_passthrough",
		"clusters.hpc.compute_nodes[0].auto_start: false",
		"clusters.hpc.compute_nodes[0].colour",
		"clusters.hpc.compute_nodes[1].ip: one address for a group of 2 VMs",
		"clusters.hpc.storage.beegfs", "clusters.hpc.storage.virtio_fs",
	} {
		assert.Contains(t, nc, want)
	}
	assert.Contains(t, out[0].YAML, "NOT CARRIED OVER: clusters.cloud")
	// ${IMAGES} unset: the path stays as written, and hpcvm says it is not absolute.
	assert.NotEmpty(t, out[0].Problems)

	out, err = ConvertAIHow([]byte(src), AIHowOptions{WorkDir: "/w", LookupEnv: func(k string) (string, bool) {
		return map[string]string{"IMAGES": "/srv/images"}[k], k == "IMAGES"
	}})
	require.NoError(t, err)
	spec, err := Parse([]byte(out[0].YAML))
	require.NoError(t, err, out[0].YAML)
	assert.Equal(t, "/srv/images/base.qcow2", spec.Cluster.Storage.BaseImage)

	for in, want := range map[string]string{
		"cluster: {name: lab}":                    "already an hpcvm cluster.yaml",
		"version: \"2.0\"\nclusters: {hpc: {}}":   `version is "2.0"`,
		"version: \"1.0\"\nclusters: {cloud: {}}": "no clusters.hpc",
		"version: \"1.0\"\nclusters: {hpc: {}}":   "clusters.hpc.name is missing",
		"":                                        "empty",
		"a: [":                                    "not YAML",
	} {
		_, err := ConvertAIHow([]byte(in), AIHowOptions{})
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}

func TestConvertAIHowRefusesNamesThatEscapeAndHugeGroups(t *testing.T) {
	_, err := ConvertAIHow([]byte("version: \"1.0\"\nclusters: {hpc: {name: ../../tmp/evil}}\n"), AIHowOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a name hpcvm takes")
	out, err := ConvertAIHow([]byte("version: \"1.0\"\nclusters: {hpc: {name: big, compute_nodes: [{count: 1000000000, cpu_cores: 1, memory_gb: 1, disk_gb: 10}]}}\n"), AIHowOptions{})
	require.NoError(t, err)
	assert.Contains(t, strings.Join(out[0].NotCarried, "\n"), "is not a number of VMs hpcvm converts")
}

// Values of the wrong kind are named by their path; numbers written as
// text are read as numbers, as the Python tool's schema read them.
func TestConvertAIHowNamesWrongKindsByPath(t *testing.T) {
	src := `version: 1.0
clusters:
  hpc:
    name: typed
    network: [10.1.0.0/24]
    hardware: {acceleration: {cpu_topology: {sockets: one, cores: 2, threads: 1}}}
    controller: {cpu_cores: "2", memory_gb: "2.5", disk_gb: 10, base_image_path: /img/base.qcow2}
    compute_nodes:
      - {cpu_cores: 1.5, memory_gb: [1], disk_gb: 10, base_image_path: /img/base.qcow2}
      - plain
      - {count: "2", cpu_cores: 1, memory_gb: 1, disk_gb: 10, base_image_path: /img/base.qcow2}
    slurm_config: [a]
`
	out, err := ConvertAIHow([]byte(src), AIHowOptions{})
	require.NoError(t, err)
	nc := strings.Join(out[0].NotCarried, "\n")
	for _, want := range []string{
		"clusters.hpc.network: is a list, not a mapping",
		"clusters.hpc.hardware.acceleration.cpu_topology.sockets: one is text, not a number",
		"clusters.hpc.compute_nodes[0].cpu_cores: 1.5 is not a whole number",
		"clusters.hpc.compute_nodes[0].memory_gb: [1] is a list, not a number",
		"clusters.hpc.compute_nodes[1]: is text, not a mapping",
		"clusters.hpc.slurm_config: is a list, not a mapping",
	} {
		assert.Contains(t, nc, want)
	}
	y := out[0].YAML
	assert.Contains(t, y, `version: 1.0 is a number in YAML; read as "1.0"`)
	assert.Contains(t, y, `clusters.hpc.controller.memory_gb "2.5" (text) read as the number 2.5`)
	assert.Contains(t, y, "memory_mb: 2560")
	assert.Contains(t, y, "every VM names /img/base.qcow2, which became the cluster's base image")
	assert.NotContains(t, nc, "differs from the cluster's base image")
	spec, err := Parse([]byte(y))
	require.Error(t, err, "compute-01 has no memory: the result says so")
	_ = spec
	assert.Len(t, strings.Split(strings.TrimSpace(strings.Join(out[0].Problems, "\n")), "\n"), len(out[0].Problems))

	for in, want := range map[string]string{
		"version: 1.0\nclusters: {hpc: {name: 123}}":    "clusters.hpc.name is 123 (a number)",
		"version: 2\nclusters: {hpc: {name: x}}":        "version is 2:",
		"clusters: {hpc: {name: x}}":                    "no version",
		"version: \"1.0\"\nclusters: [hpc]":             "clusters is a list, not a mapping",
		"version: \"1.0\"\nclusters: {hpc: [name]}":     "clusters.hpc is a list",
		"version: [1]\nclusters: {hpc: {name: x}}":      "version is [1] (a list)",
		"version: \"1.0\"\nclusters: {hpc: {name: ''}}": "clusters.hpc.name is missing",
	} {
		_, err := ConvertAIHow([]byte(in), AIHowOptions{})
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}

func TestConvertAIHowSurvivesImagesThatAreNotText(t *testing.T) {
	out, err := ConvertAIHow([]byte(`version: "1.0"
clusters:
  hpc:
    name: lists
    controller: {cpu_cores: 1, memory_gb: 1, disk_gb: 10, base_image_path: [a]}
    compute_nodes:
      - {cpu_cores: 1, memory_gb: 1, disk_gb: 10, base_image_path: [a]}
`), AIHowOptions{})
	require.NoError(t, err)
	assert.NotContains(t, out[0].YAML, "became the cluster's base image")
}
