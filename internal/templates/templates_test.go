package templates

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

var update = flag.Bool("update", false, "rewrite the golden XML files in testdata")

const specYAML = `
cluster:
  name: lab
  host: hv1
  storage:
    pool_path: /srv/hpcvm
    base_image: /srv/images/base.qcow2
network:
  network_range: 10.20.0.0/24
  dns_servers: [10.20.0.53]
  static_leases:
    controller-01: 10.20.0.10
controller: {memory_mb: 1024, cpu_cores: 2, disk_size_gb: 20}
compute_nodes:
  - {name: compute-01, memory_mb: 2048, cpu_cores: 4, disk_size_gb: 40}
`

func testPlan(t *testing.T) cluster.Plan {
	t.Helper()
	s, err := cluster.Parse([]byte(specYAML))
	require.NoError(t, err)
	p, err := cluster.NewPlan(s)
	require.NoError(t, err)
	require.NoError(t, p.Negotiate(s, cluster.HostCapabilities{
		Arch: "x86_64", KVMUsable: true, Emulator: "/usr/bin/qemu-system-x86_64",
		MachineTypes: []string{"pc-q35-7.2", "pc-i440fx-7.2"},
	}))
	return p
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got+"\n"), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run `go test ./templates -update` to create %s", path)
	assert.Equal(t, string(want), got+"\n", "XML differs from %s; if the change is intended, rerun with -update and review the diff", path)
}

// roundTrip proves libvirtxml reads back exactly what it wrote, so nothing
// in the document is something libvirt's schema does not know.
func roundTrip(t *testing.T, doc interface {
	Unmarshal(string) error
	Marshal() (string, error)
}, xml string) {
	t.Helper()
	require.NoError(t, doc.Unmarshal(xml))
	again, err := doc.Marshal()
	require.NoError(t, err)
	assert.Equal(t, xml, again)
}

func TestGoldenXML(t *testing.T) {
	p := testPlan(t)

	netXML, err := Network(p)
	require.NoError(t, err)
	golden(t, "network.xml", netXML)
	roundTrip(t, &libvirtxml.Network{}, netXML)

	poolXML, err := Pool(p)
	require.NoError(t, err)
	golden(t, "pool.xml", poolXML)
	roundTrip(t, &libvirtxml.StoragePool{}, poolXML)

	baseXML, err := BaseImage(p, "qcow2", 2*GiB)
	require.NoError(t, err)
	golden(t, "base-volume.xml", baseXML)
	roundTrip(t, &libvirtxml.StorageVolume{}, baseXML)

	for _, vm := range p.VMs {
		volXML, err := VMVolume(p, vm, "qcow2")
		require.NoError(t, err)
		golden(t, vm.Name+"-volume.xml", volXML)
		roundTrip(t, &libvirtxml.StorageVolume{}, volXML)

		domXML, err := Domain(p, vm, "qcow2")
		require.NoError(t, err)
		golden(t, vm.Name+"-domain.xml", domXML)
		roundTrip(t, &libvirtxml.Domain{}, domXML)
	}
}

func TestDomainCarriesOwnershipMetadata(t *testing.T) {
	p := testPlan(t)
	domXML, err := Domain(p, p.VMs[1], "qcow2")
	require.NoError(t, err)
	var d libvirtxml.Domain
	require.NoError(t, d.Unmarshal(domXML))
	owner, err := ParseOwner(d.Metadata.XML)
	require.NoError(t, err)
	assert.Equal(t, Owner{XMLName: owner.XMLName, Cluster: "lab", VM: "compute-01", Role: "compute", Host: "hv1"}, owner)

	// libvirt returns the element without its namespace.
	owner, err = ParseOwner(`<cluster name="lab" vm="compute-01" role="compute" host="hv1"/>`)
	require.NoError(t, err)
	assert.Equal(t, "lab", owner.Cluster)
	_, err = ParseOwner(`<thing/>`)
	assert.Error(t, err, "another element is not ours")
	_, err = ParseOwner(`<cluster vm="x"/>`)
	assert.Error(t, err, "an element naming no cluster proves nothing")
}

func TestDomainNeedsANegotiatedMachine(t *testing.T) {
	p := testPlan(t)
	p.Machine = cluster.MachinePlan{}
	_, err := Domain(p, p.VMs[0], "qcow2")
	assert.ErrorContains(t, err, "negotiate")
}

func TestCPUModeIsCarriedOnlyWhenAsked(t *testing.T) {
	p := testPlan(t)
	p.Machine.CPUMode = "host-passthrough"
	p.Machine.CPUFeatures = []string{"+avx2", "-svm"}
	domXML, err := Domain(p, p.VMs[0], "qcow2")
	require.NoError(t, err)
	var d libvirtxml.Domain
	require.NoError(t, d.Unmarshal(domXML))
	require.NotNil(t, d.CPU)
	assert.Equal(t, "host-passthrough", d.CPU.Mode)
	assert.Equal(t, []libvirtxml.DomainCPUFeature{{Policy: "require", Name: "avx2"}, {Policy: "disable", Name: "svm"}}, d.CPU.Features)
}

// network.forward: nat (also when unset) gives libvirt's NAT forward; none
// gives no <forward> at all, an isolated network.
func TestNetworkForwardModes(t *testing.T) {
	p := testPlan(t)
	for mode, want := range map[string]string{"": "nat", "nat": "nat", "none": ""} {
		p.Network.Forward = mode
		x, err := Network(p)
		require.NoError(t, err)
		var n libvirtxml.Network
		require.NoError(t, n.Unmarshal(x))
		if want == "" {
			assert.Nil(t, n.Forward, "forward %q", mode)
			continue
		}
		require.NotNil(t, n.Forward, "forward %q", mode)
		assert.Equal(t, want, n.Forward.Mode)
		assert.Empty(t, n.Forward.Dev, "NAT out of whichever interface routes, not one the file would have to name")
	}
}

// Every VM disk names its whole backing chain, so libvirt probes no image
// header: the overlay, its base volume with its format, then nothing.
func TestDiskNamesItsWholeBackingChain(t *testing.T) {
	p := testPlan(t)
	for _, format := range []string{"qcow2", "raw"} {
		domXML, err := Domain(p, p.VMs[0], format)
		require.NoError(t, err)
		var d libvirtxml.Domain
		require.NoError(t, d.Unmarshal(domXML))
		disk := d.Devices.Disks[0]
		assert.Equal(t, VolumePath(p, p.VMs[0]), disk.Source.File.File)
		assert.Equal(t, "qcow2", disk.Driver.Type)
		require.NotNil(t, disk.BackingStore)
		assert.Equal(t, format, disk.BackingStore.Format.Type)
		assert.Equal(t, BaseImagePath(p), disk.BackingStore.Source.File.File)
		require.NotNil(t, disk.BackingStore.BackingStore, "the chain ends at the base")
		assert.Contains(t, domXML, "<backingStore></backingStore>")
	}
	_, err := Domain(p, p.VMs[0], "vmdk")
	assert.ErrorContains(t, err, "not qcow2 or raw")
}
