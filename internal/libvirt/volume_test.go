package libvirt

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVolumeLifecycle(t *testing.T) {
	c := testClient(t)
	p := dirPool(t, c, testPrefix(t))
	_, err := c.EnsurePool(p.xml)
	require.NoError(t, err)

	base := volumeXML(t, "base.qcow2", "qcow2", 16<<20, "")
	created, err := c.EnsureVolume(p.name, base)
	require.NoError(t, err)
	require.True(t, created)
	created, err = c.EnsureVolume(p.name, base)
	require.NoError(t, err)
	require.False(t, created)

	v, err := c.LookupVolume(p.name, "base.qcow2")
	require.NoError(t, err)
	require.Equal(t, "qcow2", v.Format)
	require.Equal(t, uint64(16<<20), v.Capacity)
	require.Equal(t, filepath.Join(p.dir, "base.qcow2"), v.Path)
	require.NotZero(t, v.Physical)

	_, err = c.EnsureVolume(p.name, volumeXML(t, "base.qcow2", "qcow2", 32<<20, ""))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "capacity")
	_, err = c.EnsureVolume(p.name, volumeXML(t, "base.qcow2", "raw", 16<<20, ""))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "format")

	overlay := volumeXML(t, "node1.qcow2", "qcow2", 16<<20, v.Path)
	created, err = c.EnsureVolume(p.name, overlay)
	require.NoError(t, err)
	require.True(t, created)
	created, err = c.EnsureVolume(p.name, overlay)
	require.NoError(t, err)
	require.False(t, created)
	o, err := c.LookupVolume(p.name, "node1.qcow2")
	require.NoError(t, err)
	require.Equal(t, v.Path, o.BackingPath)
	_, err = c.EnsureVolume(p.name, volumeXML(t, "node1.qcow2", "qcow2", 16<<20, ""))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "backing store")

	vols, err := c.ListVolumes(p.name)
	require.NoError(t, err)
	require.Len(t, vols, 2)

	require.NoError(t, c.DeleteVolume(p.name, "node1.qcow2"))
	require.NoError(t, c.DeleteVolume(p.name, "node1.qcow2"), "deleting twice is fine")
	_, err = c.LookupVolume(p.name, "node1.qcow2")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = c.LookupVolume(p.name+"-absent", "x")
	require.ErrorIs(t, err, ErrNotFound)
}
