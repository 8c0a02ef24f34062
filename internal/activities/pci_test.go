package activities

import (
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/pcifixture"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

func validatePCI(t *testing.T, f *fixture, req api.PCIRequest) cluster.PCIFacts {
	t.Helper()
	v, err := f.env().ExecuteActivity(f.acts.ValidatePCI, req)
	require.NoError(t, err)
	var facts cluster.PCIFacts
	require.NoError(t, v.Get(&facts))
	return facts
}

// On a GPU host's sysfs layout, the requested functions come back with
// their IOMMU groups and the other members of those groups.
func TestValidatePCIReadsASysfsTree(t *testing.T) {
	f := newFixture(t)
	f.acts.SysfsRoot = t.TempDir()
	require.NoError(t, pcifixture.Write(f.acts.SysfsRoot, pcifixture.GPUHost, true))

	facts := validatePCI(t, f, api.PCIRequest{Cluster: f.prefix, Addresses: []string{"0000:01:00.0", "0000:65:00.0"}})
	assert.True(t, facts.IOMMU)
	assert.Equal(t, "sysfs at "+f.acts.SysfsRoot, facts.Source)
	seven := 7
	assert.Equal(t, cluster.HostPCIDevice{Address: "0000:01:00.0", Vendor: "10de", Device: "2805", Class: "030000", Driver: "nvidia",
		IOMMUGroup: &seven, GroupMembers: []string{"0000:00:01.0", "0000:01:00.0", "0000:01:00.1"}}, facts.Devices["0000:01:00.0"])
	assert.Equal(t, "040300", facts.Devices["0000:01:00.1"].Class, "the group's other members are described too")
	assert.Equal(t, "060400", facts.Devices["0000:00:01.0"].Class)
	_, absent := facts.Devices["0000:65:00.0"]
	assert.False(t, absent, "a function the host does not have is not made up")
	assert.NotContains(t, facts.Devices, "0000:02:00.0", "functions nobody asked about are left out")

	// IOMMU off: the same functions, no groups.
	f.acts.SysfsRoot = t.TempDir()
	require.NoError(t, pcifixture.Write(f.acts.SysfsRoot, pcifixture.GPUHost, false))
	facts = validatePCI(t, f, api.PCIRequest{Cluster: f.prefix, Addresses: []string{"0000:01:00.0"}})
	assert.False(t, facts.IOMMU)
	assert.Nil(t, facts.Devices["0000:01:00.0"].IOMMUGroup)
}

// A domain of another cluster (here: made by hand, without hpcvm's
// metadata) that has a function passed through holds it.
func TestValidatePCISeesDomainsHoldingAFunction(t *testing.T) {
	f := newFixture(t)
	f.acts.SysfsRoot = t.TempDir()
	require.NoError(t, pcifixture.Write(f.acts.SysfsRoot, pcifixture.GPUHost, true))
	zero, one := uint(0), uint(1)
	dom := libvirtxml.Domain{Type: "qemu", Name: f.prefix + "-gpu-holder",
		Memory: &libvirtxml.DomainMemory{Value: 64, Unit: "MiB"},
		OS:     &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"}},
		Devices: &libvirtxml.DomainDeviceList{Hostdevs: []libvirtxml.DomainHostdev{{Managed: "yes",
			SubsysPCI: &libvirtxml.DomainHostdevSubsysPCI{Source: &libvirtxml.DomainHostdevSubsysPCISource{
				Address: &libvirtxml.DomainAddressPCI{Domain: &zero, Bus: &one, Slot: &zero, Function: &zero}}}}}}}
	x, err := dom.Marshal()
	require.NoError(t, err)
	_, err = f.lv.EnsureDomain(x)
	require.NoError(t, err, "libvirt defines a domain with a hostdev the host lacks; only starting it would fail")
	t.Cleanup(func() { _ = f.lv.DeleteDomain(dom.Name) })

	facts := validatePCI(t, f, api.PCIRequest{Cluster: f.prefix, Addresses: []string{"0000:01:00.0", "0000:01:00.1"}})
	assert.Equal(t, []string{dom.Name}, facts.Devices["0000:01:00.0"].HeldBy)
	assert.Empty(t, facts.Devices["0000:01:00.1"].HeldBy)
}

// On this host, through libvirt's node devices: the functions it has are
// found, one it lacks is not.
func TestValidatePCIReadsNodeDevices(t *testing.T) {
	f := newFixture(t)
	facts := validatePCI(t, f, api.PCIRequest{Cluster: f.prefix, Addresses: []string{"0000:00:00.0", "0000:65:00.0"}})
	assert.Equal(t, "libvirt node devices", facts.Source)
	assert.Contains(t, facts.Devices, "0000:00:00.0")
	assert.NotContains(t, facts.Devices, "0000:65:00.0")
}

// The host's hardware facts are read from libvirt once per ProbeRefresh;
// free hugepages are read on every probe.
func TestProbeHostKeepsHardwareFactsAndRereadsFreePages(t *testing.T) {
	f := newFixture(t)
	probe := func() cluster.HostCapabilities {
		v, err := f.env().ExecuteActivity(f.acts.ProbeHost)
		require.NoError(t, err)
		var caps cluster.HostCapabilities
		require.NoError(t, v.Get(&caps))
		return caps
	}
	first := probe()
	require.NotEmpty(t, first.NUMACells)
	for _, c := range first.NUMACells {
		assert.NotNil(t, c.FreeHugepages, "cell %d: free pages are read", c.ID)
	}
	read := f.acts.probeAt
	probe()
	assert.Equal(t, read, f.acts.probeAt, "within ProbeRefresh the hardware facts are not read again")
	assert.Nil(t, f.acts.probeFacts.NUMACells[0].FreePages, "free pages are not kept")

	f.acts.probeAt = read.Add(-ProbeRefresh - time.Second)
	again := probe()
	assert.True(t, f.acts.probeAt.After(read), "after ProbeRefresh they are read again")
	assert.Equal(t, first.GuestCPU, again.GuestCPU)
}
