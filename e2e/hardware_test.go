package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/internal/pcifixture"
	"github.com/hpcvm/hpcvm/starter/cli"
	"github.com/hpcvm/hpcvm/worker/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// withAcceleration rewrites the harness's cluster.yaml: acceleration
// settings after enable_kvm, and the controller's vCPUs.
func (e *env) withAcceleration(acceleration string, controllerCPUs int) {
	cfg := readFile(e.t, e.config)
	cfg = strings.Replace(cfg, "      enable_kvm: false\n", "      enable_kvm: false\n"+acceleration, 1)
	cfg = strings.Replace(cfg, "controller: {count: 1, memory_mb: 128, cpu_cores: 1,", fmt.Sprintf("controller: {count: 1, memory_mb: 128, cpu_cores: %d,", controllerCPUs), 1)
	writeFile(e.t, e.config, cfg)
}

// A cluster with a CPU topology, two guest NUMA cells and explicit CPU
// features starts, and libvirt reports that each running domain got them.
func TestTopologyNUMAAndFeaturesReachTheDomains(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{cpus: map[string]int{"compute-01": 2}})
	e.withAcceleration(`      cpu_features: ["+sse4.2", "-svm"]
      cpu_topology: {sockets: 1, cores: 2, threads: 1}
      numa_topology: {nodes: 2}
`, 2)
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "note: cpu_features without cpu_model apply to QEMU's default model qemu64")

	for _, vm := range []string{"controller-01", "compute-01"} {
		var d libvirtxml.Domain
		require.NoError(t, d.Unmarshal(virsh(t, "dumpxml", e.cluster+"-"+vm)))
		require.NotNil(t, d.CPU, vm)
		assert.Equal(t, &libvirtxml.DomainCPUTopology{Sockets: 1, Dies: 1, Cores: 2, Threads: 1}, d.CPU.Topology, vm)
		require.NotNil(t, d.CPU.Model, vm)
		assert.Equal(t, "qemu64", d.CPU.Model.Value, vm)
		features := map[string]string{}
		for _, f := range d.CPU.Features {
			features[f.Name] = f.Policy
		}
		assert.Equal(t, "require", features["sse4.2"], "%s: %v", vm, d.CPU.Features)
		assert.Equal(t, "disable", features["svm"], "%s: %v", vm, d.CPU.Features)
		require.NotNil(t, d.CPU.Numa, vm)
		require.Len(t, d.CPU.Numa.Cell, 2, vm)
		for i, cell := range d.CPU.Numa.Cell {
			assert.Equal(t, fmt.Sprint(i), cell.CPUs, vm)
			assert.Equal(t, uint(64*1024), cell.Memory, "%s cell %d in KiB", vm, i)
		}
		// QEMU itself was asked for them.
		pid := strings.TrimSpace(readFile(t, "/var/run/libvirt/qemu/"+e.cluster+"-"+vm+".pid"))
		cmdline := strings.ReplaceAll(readFile(t, "/proc/"+pid+"/cmdline"), "\x00", " ")
		t.Logf("%s: %s", vm, cmdline)
		assert.Contains(t, cmdline, "-numa node,nodeid=0,cpus=0", vm)
		assert.Contains(t, cmdline, "-numa node,nodeid=1,cpus=1", vm)
		assert.Contains(t, cmdline, "sse4.2=on", vm)
		assert.Contains(t, cmdline, "svm=off", vm)
		assert.Contains(t, cmdline, "sockets=1,dies=1,cores=2,threads=1", vm)
	}
}

// Hugepages are counted against what the host really has free, and a
// cluster that would not get them is refused before anything is created.
func TestHugepagesRefusedWithTheRealFreeCount(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	e.withAcceleration("      performance: {enable_hugepages: true, hugepage_size: 2M}\n", 1)
	e.startWorker()
	e.mustLeaveNothing()

	raw, err := os.ReadFile("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
	require.NoError(t, err)
	free := strings.TrimSpace(string(raw))
	require.Equal(t, "0", free, "this test expects a host without free 2M hugepages; reserve none while it runs")

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "the VMs to start need 128 free 2M hugepages (256 MiB), but the host has "+free+" free")
	assert.Empty(t, e.leftovers())
}

// withGPU gives compute-01 the fixture host's GPU and its audio function.
func (e *env) withGPU(gpuAddress string) {
	cfg := readFile(e.t, e.config)
	node := "  - {name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n"
	require.Contains(e.t, cfg, node)
	cfg = strings.Replace(cfg, node, `  - name: compute-01
    memory_mb: 128
    cpu_cores: 1
    disk_size_gb: 1
    pcie_passthrough:
      enabled: true
      devices:
        - {pci_address: "`+gpuAddress+`", device_type: gpu, vendor_id: "10de"}
        - {pci_address: "0000:01:00.1", device_type: audio}
`, 1)
	writeFile(e.t, e.config, cfg)
}

// On a fixture GPU host (its sysfs tree), the GPU passes every check, its
// domain gets both functions; starting it fails on this machine, which has
// no such device, and is rolled back. A device the host lacks is refused
// before anything is created.
func TestGPUPassthroughOnAFixtureHost(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	e.withGPU("0000:01:00.0")
	sysfs := t.TempDir()
	require.NoError(t, pcifixture.Write(sysfs, pcifixture.GPUHost, true))
	e.startWorkerWith(func(o *hostworker.Options) { o.SysfsRoot = sysfs })
	e.mustLeaveNothing()

	code, out := e.hpcvm("validate")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "✓ pci: 2 function(s) present, in complete IOMMU groups, held by no other domain (sysfs at "+sysfs+")")

	code, out = e.hpcvm("plan", "--xml")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "gpu 0000:01:00.0, audio 0000:01:00.1")
	assert.Contains(t, out, `<address domain="0x0000" bus="0x01" slot="0x00" function="0x1"></address>`)
	assert.Contains(t, out, `<model type="none"></model>`)

	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitFailed, code, out)
	assert.Contains(t, out, e.cluster+"-compute-01")
	assert.Contains(t, out, "rolled back")
	assert.Empty(t, e.leftovers())

	e.writeSpec(clusterFile{})
	e.withGPU("0000:65:00.0")
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "compute_nodes[0].pcie_passthrough.devices[0].pci_address 0000:65:00.0: host "+e.host+" has no PCI device at that address")
	assert.Empty(t, e.leftovers())
}

// On this machine itself (libvirt's node devices, no IOMMU): the plan's
// GPU is refused, saying exactly what the host lacks.
func TestGPUOnThisHostIsRefusedWithWhatItLacks(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	e.withGPU("0000:65:00.0")
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("validate")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "✗ pci: PCI passthrough needs the IOMMU, and host "+e.host+" has no IOMMU groups (libvirt node devices)")
	assert.Contains(t, out, "✗ pci: compute_nodes[0].pcie_passthrough.devices[0].pci_address 0000:65:00.0: host "+e.host+" has no PCI device at that address (libvirt node devices;")
	assert.Empty(t, e.leftovers())
}
