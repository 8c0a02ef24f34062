package templates

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/pcifixture"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// hardwareMatrix is every hardware shape hpcvm renders, each negotiated
// against a host fixture (see cluster/testdata/hosts): pvm-2cpu is the
// machine hpcvm is built on, hpc-2cell a made-up two-socket HPC host.
var hardwareMatrix = []struct {
	name, host, acceleration, vms string
}{
	{"default-cpu", "pvm-2cpu", ``, ``},
	// TCG: a domain of type qemu, as enable_kvm: false renders it.
	{"tcg", "pvm-2cpu", `enable_kvm: false`, ``},
	{"features-without-model", "pvm-2cpu", `cpu_features: ["+x2apic", "-svm"]`, ``},
	{"custom-model", "pvm-2cpu", `cpu_model: pentium3, cpu_features: ["+x2apic"]`, ``},
	{"host-model", "pvm-2cpu", `cpu_model: host-model`, ``},
	{"host-passthrough-nested", "hpc-2cell", `cpu_model: host-passthrough, enable_nested: true, cpu_features: ["+avx2"]`, ``},
	{"topology-numa", "pvm-2cpu", `cpu_topology: {sockets: 2, cores: 2, threads: 1}, numa_topology: {nodes: 2}`,
		"controller: {cpu_cores: 2, cpu_topology: {sockets: 1, cores: 2, threads: 1}}"},
	{"hugepages-2m", "hpc-2cell", `performance: {enable_hugepages: true, hugepage_size: 2M}`, ``},
	{"hugepages-1g-numa-pinned", "hpc-2cell", `numa_topology: {nodes: 2, memory_per_node: 1G}, performance: {memory_backing: hugepages, hugepage_size: 1G, cpu_pinning: true}`,
		"controller: {memory_mb: 2048, cpu_cores: 2}"},
	{"memfd-numa", "pvm-2cpu", `numa_topology: {nodes: 2}, performance: {memory_backing: memfd}`, ``},
	{"memfd-hugepages", "hpc-2cell", `performance: {memory_backing: memfd, enable_hugepages: true}`, ``},
	{"virtiofs", "pvm-2cpu", `numa_topology: {nodes: 2}`, `  - name: data-01
    memory_mb: 2048
    cpu_cores: 2
    virtio_fs_mounts:
      - {tag: scratch, host_path: /srv/scratch, mount_point: /scratch, owner: "1000", group: "1000", mode: "0775", options: "rw,noatime"}
      - {tag: datasets, host_path: /srv/datasets, mount_point: /datasets}
`},
	// The plan's per-VM GPU example on the fixture GPU host: the GPU and
	// its audio function, each on a root port of its own, no display.
	{"gpu-node", "hpc-2cell", `cpu_model: host-passthrough`, `  - name: gpu-01
    memory_mb: 8192
    cpu_cores: 4
    pcie_passthrough:
      enabled: true
      devices:
        - {pci_address: "0000:01:00.0", device_type: gpu, vendor_id: "10de", device_id: "2805", iommu_group: 7}
        - {pci_address: "0000:01:00.1", device_type: audio, vendor_id: "10de", device_id: "22bd"}
`},
}

// gpuHostFacts is what a worker reads from the fixture GPU host's sysfs.
func gpuHostFacts() cluster.PCIFacts {
	facts := cluster.PCIFacts{Source: "fixture", IOMMU: true, Devices: map[string]cluster.HostPCIDevice{}}
	members := map[int][]string{}
	for _, f := range pcifixture.GPUHost {
		members[f.Group] = append(members[f.Group], f.Address)
	}
	for _, f := range pcifixture.GPUHost {
		g := f.Group
		facts.Devices[f.Address] = cluster.HostPCIDevice{Address: f.Address, Vendor: f.Vendor, Device: f.Device, Class: f.Class, IOMMUGroup: &g, GroupMembers: members[g]}
	}
	return facts
}

func matrixPlan(t *testing.T, host, acceleration, vms string) cluster.Plan {
	t.Helper()
	yaml := `
cluster:
  name: lab
  host: hv1
  storage: {pool_path: /srv/hpcvm, base_image: /srv/images/base.qcow2}
  hardware: {acceleration: {` + acceleration + `}}
compute_nodes:
  - {name: compute-01, memory_mb: 2048, cpu_cores: 4, disk_size_gb: 40}
` + vms
	s, err := cluster.Parse([]byte(yaml))
	require.NoError(t, err)
	p, err := cluster.NewPlan(s)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join("..", "..", "cluster", "testdata", "hosts", host+".json"))
	require.NoError(t, err)
	var caps cluster.HostCapabilities
	require.NoError(t, json.Unmarshal(b, &caps))
	require.NoError(t, p.Negotiate(s, caps))
	require.Empty(t, p.AssignPCI(s, caps.Hostname, gpuHostFacts()))
	return p
}

// TestHardwareMatrixXML renders every VM of every shape, compares the
// compute node's domain with its golden file and has libvirt's own RelaxNG
// schema judge every document (virt-xml-validate, from libvirt-clients,
// which `make deps` installs).
func TestHardwareMatrixXML(t *testing.T) {
	validator, err := exec.LookPath("virt-xml-validate")
	require.NoError(t, err, "virt-xml-validate is missing: run `make deps` (package libvirt-clients)")
	dir := t.TempDir()
	for _, tc := range hardwareMatrix {
		t.Run(tc.name, func(t *testing.T) {
			p := matrixPlan(t, tc.host, tc.acceleration, tc.vms)
			for _, vm := range p.VMs {
				domXML, err := Domain(p, vm, "qcow2")
				require.NoError(t, err)
				roundTrip(t, &libvirtxml.Domain{}, domXML)
				if vm.Name == p.VMs[len(p.VMs)-1].Name { // the shape's own VM: compute-01, or gpu-01
					golden(t, "matrix/"+tc.name+".xml", domXML)
				}
				path := filepath.Join(dir, tc.name+"-"+vm.Name+".xml")
				require.NoError(t, os.WriteFile(path, []byte(domXML), 0o644))
				out, err := exec.Command(validator, path, "domain").CombinedOutput()
				require.NoError(t, err, "libvirt's schema refuses the %s domain of %s:\n%s\n%s", vm.Name, tc.name, out, domXML)
			}
		})
	}
}
