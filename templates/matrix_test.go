package templates

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/cluster"
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
	b, err := os.ReadFile(filepath.Join("..", "cluster", "testdata", "hosts", host+".json"))
	require.NoError(t, err)
	var caps cluster.HostCapabilities
	require.NoError(t, json.Unmarshal(b, &caps))
	require.NoError(t, p.Negotiate(s, caps))
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
				domXML, err := Domain(p, vm)
				require.NoError(t, err)
				roundTrip(t, &libvirtxml.Domain{}, domXML)
				if vm.Name == "compute-01" {
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
