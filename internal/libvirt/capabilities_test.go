package libvirt

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHostFacts(t *testing.T) {
	c := testClient(t)
	f, err := c.HostFacts()
	require.NoError(t, err)
	t.Logf("host facts: %+v", HostFacts{Hostname: f.Hostname, Arch: f.Arch, LibvirtVersion: f.LibvirtVersion,
		HypervisorVersion: f.HypervisorVersion, KVMUsable: f.KVMUsable, Emulator: f.Emulator})
	require.Equal(t, "x86_64", f.Arch)
	require.NotEmpty(t, f.Hostname)
	require.Regexp(t, `^\d+\.\d+\.\d+$`, f.LibvirtVersion)
	require.Regexp(t, `^\d+\.\d+\.\d+$`, f.HypervisorVersion)
	require.NotEmpty(t, f.Emulator)
	require.Contains(t, f.MachineTypes, "q35")
	hasVersioned := false
	for _, m := range f.MachineTypes {
		if strings.HasPrefix(m, "pc-q35-") {
			hasVersioned = true
		}
	}
	require.True(t, hasVersioned, "a pc-q35-* machine in %v", f.MachineTypes)
	if _, err := os.Stat("/dev/kvm"); err != nil {
		require.False(t, f.KVMUsable, "no /dev/kvm on this host, yet KVM reported usable")
	}
}
