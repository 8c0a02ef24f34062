package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/activities"
	"github.com/hpcvm/hpcvm/internal/trace"
	"go.temporal.io/api/serviceerror"

	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/hpcvm/hpcvm/internal/pcifixture"
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

	// Started again, the same file changes nothing: libvirt's own additions
	// to the definitions (a default model, expanded features) do not count.
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "created 0 object(s), started 0 VM(s)")
	// Its trace keeps the domain documents start compared, each marked as
	// never given to libvirt.
	assert.Contains(t, out, "not applied: their objects existed as planned and were kept")
	defines := 0
	for _, r := range e.readTrace(out).XMLOperations {
		if r.XMLType == "domain" {
			defines++
			assert.Equal(t, trace.StatusNotApplied, r.Status, *r.XMLFile)
			assert.True(t, strings.HasSuffix(*r.XMLFile, "_NOT_APPLIED.xml"), *r.XMLFile)
		}
	}
	assert.Equal(t, 2, defines)

	// Other hardware for existing VMs is refused, not ignored.
	writeFile(t, e.config, strings.Replace(readFile(t, e.config), "numa_topology: {nodes: 2}", "numa_topology: null", 1))
	code, out = e.hpcvm("start")
	require.NotEqual(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "NUMA cells is")
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

// ledgerClaims reads the host's device ledger; none when it never ran.
func (e *env) ledgerClaims() []api.DeviceClaim {
	e.t.Helper()
	v, err := e.ts.GetDefaultClient().QueryWorkflow(context.Background(), api.LedgerWorkflowID(e.host), "", api.LedgerQueryClaims)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	require.NoError(e.t, err)
	var claims []api.DeviceClaim
	require.NoError(e.t, v.Get(&claims))
	return claims
}

// secondCluster writes a copy of the env's cluster.yaml for another
// cluster (its own name, network and bridge) and returns its path; it is
// destroyed when the test ends.
func (e *env) secondCluster(suffix string) (string, string) {
	name := e.cluster + suffix
	cfg := strings.Replace(readFile(e.t, e.config), "name: "+e.cluster, "name: "+name, 1)
	re := regexp.MustCompile(`network_range: 10\.(\d+)\.(\d+)\.0/24`)
	m := re.FindStringSubmatch(cfg)
	require.NotNil(e.t, m)
	third, _ := strconv.Atoi(m[2])
	cfg = re.ReplaceAllString(cfg, fmt.Sprintf("network_range: 10.%s.%d.0/24", m[1], (third+101)%250))
	path := filepath.Join(e.poolRoot, name+".yaml")
	writeFile(e.t, path, cfg)
	e.t.Cleanup(func() {
		var out bytes.Buffer
		if code := cli.Main([]string{"destroy", "--yes", "-c", path, "--temporal-address", e.ts.GetFrontendHostPort(), "--namespace", e.ts.GetDefaultNamespace()},
			strings.NewReader(""), &out, &out); code != 0 {
			e.t.Errorf("cleanup destroy of %s failed: %s", name, out.String())
		}
	})
	return name, path
}

// Two clusters that start at the same moment with one exclusive GPU:
// exactly one gets it, the other's error names the winner and it created
// nothing; the winner's failed start (this host cannot pass devices
// through) gives the claim back, and destroy frees a cluster's claims.
func TestTwoClustersRacingForOneGPU(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	// The fixture host's second GPU, alone in IOMMU group 9.
	node := "  - {name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n"
	cfg := readFile(t, e.config)
	writeFile(t, e.config, strings.Replace(cfg, node, `  - name: compute-01
    memory_mb: 128
    cpu_cores: 1
    disk_size_gb: 1
    pcie_passthrough: {enabled: true, devices: [{pci_address: "0000:03:00.0", device_type: gpu}]}
`, 1))
	sysfs := t.TempDir()
	require.NoError(t, pcifixture.Write(sysfs, pcifixture.GPUHost, true))
	e.startWorkerWith(func(o *hostworker.Options) { o.SysfsRoot = sysfs })
	e.mustLeaveNothing()
	other, otherConfig := e.secondCluster("b")

	a := e.hpcvmInBackground("start")
	bFull := []string{"start", "-c", otherConfig, "--temporal-address", e.ts.GetFrontendHostPort(), "--namespace", e.ts.GetDefaultNamespace()}
	b := &backgroundCLI{code: make(chan int, 1)}
	go func() { b.code <- cli.Main(bFull, strings.NewReader(""), &b.out, &b.out) }()
	codeA, outA := a.wait(t, 2*time.Minute)
	codeB, outB := b.wait(t, 2*time.Minute)

	// Both fail: the winner at its domain's start (no IOMMU here), rolled
	// back; the loser at the claim, before anything was created.
	require.Equal(t, cli.ExitFailed, min(codeA, codeB), "one start gets the GPU and fails only at the domain:\n%s\n%s", outA, outB)
	winner, loserOut := e.cluster, outB
	if codeA == cli.ExitBadInput {
		winner, loserOut = other, outA
	}
	require.Equal(t, cli.ExitBadInput, max(codeA, codeB), "the other is refused:\n%s\n%s", outA, outB)
	// Refused by its host checks (the winner's claim was already in the
	// ledger) or by its own claim (both checked before the claim landed):
	// either way before anything was created, naming the holder.
	assert.Contains(t, loserOut, "0000:03:00.0")
	assert.Contains(t, loserOut, "is claimed by cluster "+winner+" (VM compute-01) since ")
	assert.Contains(t, loserOut, "nothing had been created")
	assert.Empty(t, e.ledgerClaims(), "the winner's rollback gave the claim back")
	assert.Empty(t, e.leftovers())

	// A claim the cluster holds is freed by its destroy.
	var res api.ClaimResult
	acts := &activities.Activities{Temporal: e.ts.GetDefaultClient(), Libvirt: e.lv}
	res, err := acts.ClaimDevices(context.Background(), api.ClaimRequest{Host: e.host, Queue: api.TaskQueue(e.host), Cluster: e.cluster, RunID: "by-hand",
		Devices: []api.DeviceClaim{{Address: "0000:03:00.0", VM: "compute-01"}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"0000:03:00.0"}, res.Added)
	require.Len(t, e.ledgerClaims(), 1)
	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitFailed, code, out, "its own claim does not stop the cluster")
	require.Len(t, e.ledgerClaims(), 1, "a failed start keeps a claim it did not make")
	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.ledgerClaims())
}

// A host directory shared with virtiofs is mounted inside the bootable
// test guest where cluster.yaml says, with its mode; the guest reads a
// file in it (and writes what it read back, which the host sees).
func TestVirtioFSShareIsMountedInTheGuest(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	share, err := os.MkdirTemp("/var/tmp", "hpcvm-share-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(share) })
	token := "read-by-the-guest-" + randomSuffix()
	require.NoError(t, os.WriteFile(filepath.Join(share, "hpcvm-probe"), []byte(token), 0o644))
	node := "  - {name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n"
	writeFile(t, e.config, strings.Replace(readFile(t, e.config), node, `  - name: compute-01
    memory_mb: 128
    cpu_cores: 1
    disk_size_gb: 1
    virtio_fs_mounts:
      - {tag: data, host_path: `+share+`, mount_point: /mnt/data, mode: "0750", options: rw}
`, 1))
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "note: virtio_fs_mounts: compute-01 get shared memfd memory, which virtiofs needs")
	var d libvirtxml.Domain
	require.NoError(t, d.Unmarshal(virsh(t, "dumpxml", e.cluster+"-compute-01")))
	require.Len(t, d.Devices.Filesystems, 1)
	assert.Equal(t, "data", d.Devices.Filesystems[0].Target.Dir)

	var read []byte
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		if read, err = os.ReadFile(filepath.Join(share, "hpcvm-probe.read")); err == nil && len(read) > 0 {
			break
		}
	}
	require.Equal(t, token, string(read), "the guest mounted the share and read the file")
	st, err := os.Stat(share)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o750), st.Mode().Perm(), "the guest applied the mount's mode")

	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.FileExists(t, filepath.Join(share, "hpcvm-probe"), "destroy leaves the shared directory alone")

	// A shared directory the host does not have is refused before
	// anything is created.
	writeFile(t, e.config, strings.Replace(readFile(t, e.config), share, share+"-missing", 1))
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, `compute_nodes[0].virtio_fs_mounts[0].host_path "`+share+`-missing" does not exist on host`)
	assert.Empty(t, e.leftovers())
}
