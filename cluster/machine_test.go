package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Host fixtures: pvm-2cpu.json is the probe of the machines hpcvm is built
// on (2 CPUs, one NUMA cell, KVM through kvm_pvm: no nesting, no IOMMU, no
// hugepages reserved, a KVM guest CPU without SSE3). hpc-2cell.json is
// made up from it, shaped like a two-socket HPC host: 2 cells of 8 CPUs and
// 64 GiB, hugepages reserved, kvm_intel with nesting, an IOMMU, and a guest
// CPU with the usual SIMD features.
func loadHost(t *testing.T, name string) HostCapabilities {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hosts", name+".json"))
	require.NoError(t, err)
	var h HostCapabilities
	require.NoError(t, json.Unmarshal(b, &h))
	return h
}

func negotiate(t *testing.T, host string, yaml string, running ...string) (Plan, error) {
	t.Helper()
	s, err := Parse([]byte(yaml))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	err = p.NegotiateRunning(s, loadHost(t, host), running)
	return p, err
}

func TestNegotiateCPUOnThisHost(t *testing.T) {
	p, err := negotiate(t, "pvm-2cpu", hwYAML(``, ""))
	require.NoError(t, err)
	assert.Equal(t, "", p.Machine.CPUMode, "no <cpu>: QEMU's default")
	assert.Contains(t, strings.Join(p.Machine.Notes, "\n"), "QEMU's default CPU model, qemu64, the one choice measured to start on every host here; KVM on this host cannot give it every feature of qemu64")

	p, err = negotiate(t, "pvm-2cpu", hwYAML(`cpu_features: ["+x2apic", "-svm"]`, ""))
	require.NoError(t, err)
	assert.Equal(t, MachinePlan{DomainType: "kvm", MachineType: "pc-q35-7.2", Emulator: "/usr/bin/qemu-system-x86_64",
		CPUMode: "custom", CPUModel: "qemu64", CPUCheck: "none", CPUFeatures: []string{"+x2apic", "-svm"},
		Notes: []string{nestedKVMNote, "cpu_features without cpu_model apply to QEMU's default model qemu64"}}, p.Machine)

	p, err = negotiate(t, "pvm-2cpu", hwYAML(`cpu_model: pentium3, cpu_features: ["+x2apic"]`, ""))
	require.NoError(t, err)
	assert.Equal(t, "custom", p.Machine.CPUMode)
	assert.Equal(t, "pentium3", p.Machine.CPUModel)
	assert.Equal(t, "", p.Machine.CPUCheck, "a model the host can run is checked by libvirt")

	p, err = negotiate(t, "pvm-2cpu", hwYAML(`cpu_model: host-model`, ""))
	require.NoError(t, err)
	assert.Equal(t, "host-model", p.Machine.CPUMode)

	_, err = negotiate(t, "pvm-2cpu", hwYAML(`cpu_model: Broadwell`, ""))
	require.Error(t, err)
	assert.Equal(t, `host hv1 cannot run this cluster as written: cluster.hardware.acceleration.cpu_model "Broadwell" needs CPU features KVM on this host cannot give a guest (libvirt marks it not usable); models KVM can run here as they are: pentium3, pentium2, pentium, 486; or use host-model or host-passthrough`, err.Error())

	_, err = negotiate(t, "pvm-2cpu", hwYAML(`cpu_model: Pentium9000`, ""))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `cpu_model "Pentium9000" is not a CPU model libvirt knows on this host`)

	_, err = negotiate(t, "pvm-2cpu", hwYAML(`cpu_model: host-passthrough, cpu_features: ["+vmx", "+svm", "+sse4.1", "-nosuchthing"]`, ""))
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "cannot run this cluster as written (2 problems)")
	assert.Contains(t, msg, "cpu_features disables nosuchthing, which neither the host's CPU nor any guest CPU libvirt offers here has")
	assert.Contains(t, msg, "cpu_features requires vmx, svm, sse4.1, which KVM on this host cannot give a guest; it offers: 3dnowprefetch apic")

	_, err = negotiate(t, "pvm-2cpu", hwYAML(`enable_kvm: false, cpu_model: host-passthrough`, ""))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `cpu_model "host-passthrough" is not offered by TCG on this host (it offers maximum, host-model, custom)`)
}

func TestNegotiateNested(t *testing.T) {
	_, err := negotiate(t, "pvm-2cpu", hwYAML(`enable_nested: true`, ""))
	require.Error(t, err)
	assert.Equal(t, "host hv1 cannot run this cluster as written: cluster.hardware.acceleration.enable_nested is true, but its KVM does not offer vmx or svm to guests (neither kvm_intel nor kvm_amd is loaded (loaded: kvm_pvm)): enable nesting on the host (for Intel: modprobe kvm_intel nested=1) or set enable_nested to false", err.Error())

	p, err := negotiate(t, "hpc-2cell", hwYAML(`enable_nested: true, cpu_model: host-model`, ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"+vmx"}, p.Machine.CPUFeatures)
	assert.Contains(t, p.Machine.Notes, "enable_nested: the VMs' CPUs get vmx, so they can run KVM guests of their own")
}

func TestNegotiateHugepagesCountsFreePages(t *testing.T) {
	_, err := negotiate(t, "pvm-2cpu", hwYAML(`performance: {enable_hugepages: true}`, "controller: {memory_mb: 1024}\ncompute_nodes: [{name: c1, memory_mb: 512}]"))
	require.Error(t, err)
	assert.Equal(t, "host hv1 cannot run this cluster as written: cluster.hardware.acceleration.performance: the VMs to start need 768 free 2M hugepages (1536 MiB), but the host has 0 free (cell 0: 0): reserve at least 768 (e.g. sysctl vm.nr_hugepages for 2M pages) or turn hugepages off", err.Error())

	// The controller runs already and holds its pages: only c1's count.
	_, err = negotiate(t, "pvm-2cpu", hwYAML(`performance: {enable_hugepages: true}`, "controller: {memory_mb: 1024}\ncompute_nodes: [{name: c1, memory_mb: 512}]"), "controller-01")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "need 256 free 2M hugepages")

	p, err := negotiate(t, "hpc-2cell", hwYAML(`performance: {memory_backing: hugepages, hugepage_size: 1G}`, "controller: {memory_mb: 8192}\ncompute_nodes: [{name: c1, memory_mb: 8192}]"))
	require.NoError(t, err, "16 pages of 1G free, 16 needed")
	assert.Equal(t, uint64(1048576), p.Machine.HugepageKiB)
	_, err = negotiate(t, "hpc-2cell", hwYAML(`performance: {memory_backing: hugepages, hugepage_size: 1G}`, "controller: {memory_mb: 8192}\ncompute_nodes: [{name: c1, memory_mb: 9216}]"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "need 17 free 1G hugepages (17408 MiB), but the host has 16 free (cell 0: 16, cell 1: 0)")
}

func TestNegotiatePinningBindsCellsAndCountsPagesPerCell(t *testing.T) {
	yaml := hwYAML(`numa_topology: {nodes: 2}, performance: {cpu_pinning: true, enable_hugepages: true}`,
		"controller: {cpu_cores: 8, memory_mb: 8192}\ncompute_nodes: [{name: c1, cpu_cores: 8, memory_mb: 2048}]")
	p, err := negotiate(t, "hpc-2cell", yaml)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, p.VMs[0].VCPUPins)
	assert.Equal(t, []int{8, 9, 10, 11, 12, 13, 14, 15}, p.VMs[1].VCPUPins)
	assert.Equal(t, 0, p.VMs[0].NUMACells[1].HostCell)
	assert.Equal(t, 1, p.VMs[1].NUMACells[0].HostCell)

	// c1's 4096 MiB would need 2048 pages on cell 1, which has 1024 free.
	yaml = strings.Replace(yaml, "memory_mb: 2048", "memory_mb: 4096", 1)
	_, err = negotiate(t, "hpc-2cell", yaml)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the pinned VMs need 2048 free 2M hugepages on host NUMA cell 1, which has 1024")

	_, err = negotiate(t, "pvm-2cpu", hwYAML(`performance: {cpu_pinning: true}`, "compute_nodes: [{name: c1, cpu_cores: 1}]"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the cluster has 3 vCPUs and the host 2 CPUs")
	p, err = negotiate(t, "pvm-2cpu", hwYAML(`performance: {cpu_pinning: true}`, "controller: {cpu_cores: 1}\ncompute_nodes: [{name: c1, cpu_cores: 1}]"))
	require.NoError(t, err)
	assert.Equal(t, []int{0}, p.VMs[0].VCPUPins)
	assert.Equal(t, []int{1}, p.VMs[1].VCPUPins)
}

func TestNegotiateSizesAgainstTheHost(t *testing.T) {
	_, err := negotiate(t, "pvm-2cpu", hwYAML(``, "compute_nodes: [{name: c1, memory_mb: 40000}]"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "VM c1 has 40000 MiB of memory, more than the host's 24105 MiB")
	p, err := negotiate(t, "pvm-2cpu", hwYAML(``, "compute_nodes: [{name: c1, memory_mb: 16384}, {name: c2, memory_mb: 16384}]"))
	require.NoError(t, err)
	notes := strings.Join(p.Machine.Notes, "\n")
	assert.Contains(t, notes, "overcommit: the VMs have 36864 MiB of memory in all, the host 24105 MiB")
	assert.Contains(t, notes, "overcommit: the VMs have 10 vCPUs in all, the host 2 CPUs")

	host := loadHost(t, "pvm-2cpu")
	host.MemoryBackingSources = []string{"file", "anonymous"}
	s, err := Parse([]byte(hwYAML(`performance: {memory_backing: memfd}`, "")))
	require.NoError(t, err)
	p, err = NewPlan(s)
	require.NoError(t, err)
	err = p.Negotiate(s, host)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "memory_backing is memfd, but QEMU on this host offers only file, anonymous")
}

func TestNegotiateTakesTheCPUAsWrittenWithoutTheHardwareProbe(t *testing.T) {
	// A host description built by hand, without the probe's CPU, NUMA and
	// memory: the CPU settings are taken as written.
	host := loadHost(t, "pvm-2cpu")
	host.ProbeVersion = 0
	host.GuestCPU = nil
	s, err := Parse([]byte(hwYAML(`cpu_model: host-passthrough, cpu_features: ["+avx"]`, "")))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	require.NoError(t, p.Negotiate(s, host))
	assert.Equal(t, "host-passthrough", p.Machine.CPUMode)
	assert.Equal(t, []string{"+avx"}, p.Machine.CPUFeatures)
}

func TestNegotiateRefusesQ35OlderThan72(t *testing.T) {
	host := loadHost(t, "pvm-2cpu")
	host.MachineTypes = []string{"pc-q35-6.2", "pc-q35-7.1", "q35"}
	s, err := Parse([]byte(hwYAML(``, "")))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	err = p.Negotiate(s, host)
	require.Error(t, err)
	assert.Equal(t, "host hv1 offers Q35 machine types up to pc-q35-7.1; hpcvm needs pc-q35-7.2 or newer (QEMU 7.2+): upgrade QEMU on the host", err.Error())
}

func TestNegotiateRefusesWhatTheHostCannotCount(t *testing.T) {
	host := loadHost(t, "pvm-2cpu")
	host.HostdevSupported = false
	host.NUMACells = nil
	s, err := Parse([]byte(hwYAML(`performance: {enable_hugepages: true}`,
		"compute_nodes: [{name: c1, pcie_passthrough: {enabled: true, devices: [{pci_address: \"0000:01:00.0\", device_type: gpu}]}}]")))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	err = p.Negotiate(s, host)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pcie_passthrough: libvirt on this host offers no host device passthrough")
	assert.Contains(t, err.Error(), "libvirt on this host reports no NUMA cells, so their free pages cannot be counted")
}

func TestPinningKeepsExistingPinsAndLeavesOtherDomainsTheirs(t *testing.T) {
	host := loadHost(t, "hpc-2cell")
	host.PinnedCPUs = map[string][]int{
		"lab-controller-01": {2, 3}, // this cluster's, running
		"other-vm":          {0, 1, 4},
	}
	yaml := hwYAML(`performance: {cpu_pinning: true}`, "compute_nodes: [{name: c1, cpu_cores: 3}]")
	p, err := negotiate0(t, host, yaml)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 3}, p.VMs[0].VCPUPins, "an existing VM keeps its pins")
	assert.Equal(t, []int{5, 6, 7}, p.VMs[1].VCPUPins, "a new one takes CPUs nobody pins")

	host.CPUs = 8
	host.NUMACells = host.NUMACells[:1] // CPUs 0-7
	_, err = negotiate0(t, host, hwYAML(`performance: {cpu_pinning: true}`, "compute_nodes: [{name: c1, cpu_cores: 4}]"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the cluster has 6 vCPUs and the host 8 CPUs, of which domain(s) other-vm pin some: 4 vCPUs to pin, 3 CPUs free")
}

func negotiate0(t *testing.T, host HostCapabilities, yaml string) (Plan, error) {
	t.Helper()
	s, err := Parse([]byte(yaml))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	return p, p.Negotiate(s, host)
}

const nestedKVMNote = "host hv1 is itself a virtual machine (its CPU has the hypervisor flag), so KVM here is nested: a guest may stop in early boot with QEMU's \"KVM internal error … emulation failure\" (its domain pauses); if guests do, set cluster.hardware.acceleration.enable_kvm: false to run them under software emulation"

// validate says when KVM is nested (the host CPU has the hypervisor flag),
// and what that means for guests; not for TCG, nor on bare metal.
func TestNegotiateNotesNestedKVM(t *testing.T) {
	p, err := negotiate(t, "pvm-2cpu", hwYAML(``, ""))
	require.NoError(t, err)
	assert.Contains(t, p.Machine.Notes, nestedKVMNote)

	p, err = negotiate(t, "pvm-2cpu", hwYAML(`enable_kvm: false`, ""))
	require.NoError(t, err)
	assert.NotContains(t, p.Machine.Notes, nestedKVMNote, "TCG: nothing nested")

	bare := loadHost(t, "pvm-2cpu")
	bare.HostCPU.Features = slices.DeleteFunc(slices.Clone(bare.HostCPU.Features), func(f string) bool { return f == "hypervisor" })
	s, err := Parse([]byte(hwYAML(``, "")))
	require.NoError(t, err)
	plan, err := NewPlan(s)
	require.NoError(t, err)
	require.NoError(t, plan.NegotiateRunning(s, bare, nil))
	assert.NotContains(t, plan.Machine.Notes, nestedKVMNote, "bare metal")
}
