package libvirt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

const testMetaNS = "https://hpcvm.test/xmlns/owner"

type tinyDomain struct {
	def libvirtxml.Domain
}

func (d *tinyDomain) xml(t *testing.T) string {
	t.Helper()
	x, err := d.def.Marshal()
	require.NoError(t, err)
	return x
}

// newTinyDomain is a 64 MiB q35 guest with one disk and one NIC and no
// operating system: enough for libvirt and QEMU to run it.
func newTinyDomain(t *testing.T, facts HostFacts, name, disk, network, owner string) *tinyDomain {
	t.Helper()
	domType := "qemu"
	if facts.KVMUsable {
		domType = "kvm"
	}
	require.Contains(t, facts.MachineTypes, "q35")
	return &tinyDomain{def: libvirtxml.Domain{
		Type:     domType,
		Name:     name,
		Metadata: &libvirtxml.DomainMetadata{XML: `<t:owner xmlns:t="` + testMetaNS + `" cluster="` + owner + `"/>`},
		Memory:   &libvirtxml.DomainMemory{Value: 64, Unit: "MiB"},
		VCPU:     &libvirtxml.DomainVCPU{Value: 1},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm", Arch: "x86_64", Machine: "q35"},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		OnPoweroff: "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Emulator: facts.Emulator,
			Disks: []libvirtxml.DomainDisk{{
				Device: "disk",
				Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2"},
				Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: disk}},
				Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
			}},
			Interfaces: []libvirtxml.DomainInterface{{
				MAC:    &libvirtxml.DomainInterfaceMAC{Address: "52:54:00:aa:bb:01"},
				Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: network}},
				Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
			}},
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
		},
	}}
}

func TestDomainLifecycle(t *testing.T) {
	c := testClient(t)
	facts, err := c.HostFacts()
	require.NoError(t, err)
	prefix := testPrefix(t)

	p := dirPool(t, c, prefix)
	_, err = c.EnsurePool(p.xml)
	require.NoError(t, err)
	_, err = c.EnsureVolume(p.name, volumeXML(t, "root.qcow2", "qcow2", 64<<20, ""))
	require.NoError(t, err)
	vol, err := c.LookupVolume(p.name, "root.qcow2")
	require.NoError(t, err)

	n := isolatedNetwork(t, prefix)
	t.Cleanup(func() { _ = c.DeleteNetwork(n.name, n.uuid) })
	_, err = c.EnsureNetwork(n.xml)
	require.NoError(t, err)

	name := prefix + "node1"
	// Registered after the pool and network cleanups, so it runs first.
	t.Cleanup(func() {
		if err := c.DeleteDomain(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	d := newTinyDomain(t, facts, name, vol.Path, n.name, "c1")

	created, err := c.EnsureDomain(d.xml(t))
	require.NoError(t, err)
	require.True(t, created)
	created, err = c.EnsureDomain(d.xml(t))
	require.NoError(t, err)
	require.False(t, created)

	bigger := *d
	bigger.def.Memory = &libvirtxml.DomainMemory{Value: 128, Unit: "MiB"}
	_, err = c.EnsureDomain(bigger.xml(t))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), `memory is "65536 KiB", want "131072 KiB"`)

	// enable_kvm changed in cluster.yaml: the domain keeps its type, and
	// the difference is named, not ignored.
	otherType := *d
	otherType.def.Type = map[string]string{"kvm": "qemu", "qemu": "kvm"}[d.def.Type]
	_, err = c.EnsureDomain(otherType.xml(t))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), `domain type is "`+d.def.Type+`", want "`+otherType.def.Type+`"`)
	diff, err := c.DomainDifference(otherType.xml(t))
	require.NoError(t, err)
	require.Contains(t, diff, "domain type")

	sameMemInKiB := *d
	sameMemInKiB.def.Memory = &libvirtxml.DomainMemory{Value: 65536}
	_, err = c.EnsureDomain(sameMemInKiB.xml(t))
	require.NoError(t, err)

	otherOwner := newTinyDomain(t, facts, name, vol.Path, n.name, "c2")
	_, err = c.EnsureDomain(otherOwner.xml(t))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "metadata "+testMetaNS)

	otherDisk := newTinyDomain(t, facts, name, vol.Path+".other", n.name, "c1")
	_, err = c.EnsureDomain(otherDisk.xml(t))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "disk sources")

	meta, err := c.DomainMetadata(name, testMetaNS)
	require.NoError(t, err)
	require.Contains(t, meta, `cluster="c1"`)
	_, err = c.DomainMetadata(name, "https://hpcvm.test/xmlns/other")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = c.DomainMetadata(prefix+"absent", testMetaNS)
	require.ErrorIs(t, err, ErrNotFound)

	st, err := c.DomainState(name)
	require.NoError(t, err)
	require.Equal(t, StateShutOff, st)

	started, err := c.StartDomain(name)
	require.NoError(t, err)
	require.True(t, started)
	started, err = c.StartDomain(name)
	require.NoError(t, err)
	require.False(t, started, "already running")
	st, err = c.DomainState(name)
	require.NoError(t, err)
	require.Equal(t, StateRunning, st)
	require.NoError(t, c.WatchRunning(context.Background(), name, 300*time.Millisecond), "it keeps running")

	// A domain paused behind hpcvm's back (QEMU stopping a guest nested
	// KVM cannot run looks the same to libvirt) is not running: said with
	// its state, libvirt's reason and the end of its QEMU log.
	require.NoError(t, c.withDomain("suspend domain", name, func(dom *lv.Domain) error { return dom.Suspend() }))
	err = c.WatchRunning(context.Background(), name, 300*time.Millisecond)
	var notRunning *NotRunningError
	require.ErrorAs(t, err, &notRunning)
	assert.Equal(t, StatePaused, notRunning.State)
	assert.Equal(t, "paused by a user", notRunning.Reason)
	assert.NotEmpty(t, notRunning.Log, "the test libvirtd's QEMU log is readable here")
	assert.Contains(t, err.Error(), "domain "+name+" is paused (reason: paused by a user) right after its start, not running; its QEMU log ends: ")
	require.NoError(t, c.withDomain("resume domain", name, func(dom *lv.Domain) error { return dom.Resume() }))

	list, err := c.ListDomains(testMetaNS)
	require.NoError(t, err)
	var mine *DomainSummary
	for i := range list {
		if list[i].Name == name {
			mine = &list[i]
		}
	}
	require.NotNil(t, mine, "ListDomains includes %s", name)
	require.Equal(t, StateRunning, mine.State)
	require.Equal(t, d.def.Type, mine.Type, "the type it is defined with")
	require.Equal(t, uint64(65536), mine.MemoryKiB)
	require.Equal(t, uint(1), mine.VCPUs)
	require.Contains(t, mine.Metadata, `cluster="c1"`)
	require.True(t, strings.Contains(mine.XML, "<domain"))

	// No guest OS answers the power button, so the domain keeps running
	// until forced off.
	require.NoError(t, c.ShutdownDomain(name))
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	ticks := 0
	err = c.WaitDomainsOff(ctx, []string{name, prefix + "absent"}, 100*time.Millisecond, func(still []string) {
		ticks++
		require.Equal(t, []string{name}, still)
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotZero(t, ticks)

	require.NoError(t, c.ForceOffDomain(name))
	require.NoError(t, c.WaitDomainsOff(context.Background(), []string{name}, 100*time.Millisecond, nil))
	require.NoError(t, c.ForceOffDomain(name), "force off when already off")
	require.NoError(t, c.ShutdownDomain(name), "shut down when already off")

	// Delete also copes with a running domain.
	_, err = c.StartDomain(name)
	require.NoError(t, err)
	require.NoError(t, c.DeleteDomain(name))
	_, err = c.DomainState(name)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, c.DeleteDomain(name), "deleting twice is fine")
	_, err = c.StartDomain(name)
	require.ErrorIs(t, err, ErrNotFound)
}

// ListDomains reads the metadata from the definition: only an element in
// the asked namespace counts, wherever it stands, as virDomainGetMetadata
// would find it; a look-alike element in another namespace does not.
func TestMetadataElementInNamespace(t *testing.T) {
	var d libvirtxml.Domain
	require.NoError(t, d.Unmarshal(`<domain type="kvm"><name>x</name><metadata>
  <other:cluster xmlns:other="https://example.org/not-hpcvm" name="c1"/>
  <hv:cluster xmlns:hv="`+testMetaNS+`" name="c2" vm="n1"><hv:note/></hv:cluster>
</metadata></domain>`))
	ns, elem, err := metadataElementIn(&d, func(ns string) bool { return ns == testMetaNS })
	require.NoError(t, err)
	require.Equal(t, testMetaNS, ns)
	require.Contains(t, elem, `name="c2"`)
	require.True(t, strings.HasSuffix(elem, "</hv:cluster>"), elem)

	_, elem, err = metadataElementIn(&d, func(ns string) bool { return ns == "https://hpcvm.test/xmlns/absent" })
	require.NoError(t, err)
	require.Empty(t, elem)

	var bare libvirtxml.Domain
	require.NoError(t, bare.Unmarshal(`<domain type="kvm"><name>y</name></domain>`))
	_, elem, err = metadataElementIn(&bare, func(string) bool { return true })
	require.NoError(t, err)
	require.Empty(t, elem)
}

// A start refused for want of hugetlbfs says what to do; other failures
// point at QEMU's log.
func TestStartFailureSaysWhatToDo(t *testing.T) {
	msg := startFailure("lab-compute-01", "internal error: hugetlbfs filesystem is not mounted or disabled by administrator config")
	require.Contains(t, msg, "mount -t hugetlbfs hugetlbfs /dev/hugepages) and restart libvirtd")
	require.Contains(t, msg, "memory_backing to memfd")
	require.Equal(t, "internal error: process exited while connecting to monitor; see /var/log/libvirt/qemu/lab-compute-01.log on the host",
		startFailure("lab-compute-01", "internal error: process exited while connecting to monitor"))
}
