package libvirt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The node devices libvirt lists are the functions sysfs lists, with the
// same vendor and device IDs.
func TestPCIDevicesMatchSysfs(t *testing.T) {
	c := testClient(t)
	devs, err := c.PCIDevices()
	require.NoError(t, err)
	sysfs, err := filepath.Glob("/sys/bus/pci/devices/*")
	require.NoError(t, err)
	require.NotEmpty(t, sysfs, "this host has PCI functions")
	require.Len(t, devs, len(sysfs))
	for _, d := range devs {
		dir := filepath.Join("/sys/bus/pci/devices", d.Address)
		vendor, err := os.ReadFile(filepath.Join(dir, "vendor"))
		require.NoError(t, err, d.Address)
		device, err := os.ReadFile(filepath.Join(dir, "device"))
		require.NoError(t, err, d.Address)
		assert.Equal(t, strings.TrimPrefix(strings.TrimSpace(string(vendor)), "0x"), d.Vendor, d.Address)
		assert.Equal(t, strings.TrimPrefix(strings.TrimSpace(string(device)), "0x"), d.Device, d.Address)
		_, groupErr := os.Stat(filepath.Join(dir, "iommu_group"))
		assert.Equal(t, groupErr == nil, d.IOMMUGroup != nil, "%s: libvirt and sysfs agree on the IOMMU group", d.Address)
	}
}
