package libvirt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	lv "libvirt.org/go/libvirt"
)

func TestPoolLifecycle(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t)
	p := dirPool(t, c, prefix)

	created, err := c.EnsurePool(p.xml)
	require.NoError(t, err)
	require.True(t, created)
	created, err = c.EnsurePool(p.xml)
	require.NoError(t, err)
	require.False(t, created)

	st, err := os.Stat(p.dir)
	require.NoError(t, err, "ensure builds the directory")
	require.True(t, st.IsDir())

	info, err := c.LookupPool(p.name)
	require.NoError(t, err)
	require.True(t, info.Active)
	require.Equal(t, p.dir, info.Path)
	require.NotZero(t, info.Capacity)

	_, err = c.EnsurePool(poolXML(t, p.name, p.uuid, p.dir+"-elsewhere"))
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "target path")

	_, err = c.EnsureVolume(p.name, volumeXML(t, "a.qcow2", "qcow2", 8<<20, ""))
	require.NoError(t, err)
	// A file made outside libvirt is a volume too once the pool is refreshed.
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "outside.img"), make([]byte, 4096), 0o644))
	vols, err := c.ListVolumes(p.name)
	require.NoError(t, err)
	require.Len(t, vols, 2)

	// A pool of that name without the caller's UUID is not the caller's.
	stranger := randomUUID(t)
	_, err = c.EnsurePool(poolXML(t, p.name, stranger, p.dir))
	require.ErrorIs(t, err, ErrNotOwned)
	require.ErrorIs(t, c.DeletePool(p.name, stranger), ErrNotOwned)
	require.ErrorIs(t, c.OwnedPool(p.name, stranger), ErrNotOwned)
	require.NoError(t, c.OwnedPool(p.name, p.uuid))
	_, err = c.LookupPool(p.name)
	require.NoError(t, err)

	// A pool that still holds files is kept, with what it holds named.
	err = c.DeletePool(p.name, p.uuid)
	require.ErrorIs(t, err, ErrNotEmpty)
	require.Contains(t, err.Error(), "outside.img")
	_, err = os.Stat(filepath.Join(p.dir, "outside.img"))
	require.NoError(t, err, "a file hpcvm did not create survives")

	require.NoError(t, c.DeleteVolume(p.name, "a.qcow2"))
	require.NoError(t, os.Remove(filepath.Join(p.dir, "outside.img")))
	require.NoError(t, c.DeletePool(p.name, p.uuid))
	_, err = c.LookupPool(p.name)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = os.Stat(p.dir)
	require.True(t, os.IsNotExist(err), "pool directory removed, got %v", err)
	require.NoError(t, c.DeletePool(p.name, p.uuid), "deleting twice is fine")
}

// A new pool is never defined over a directory that already holds files:
// deleting the pool would take them along.
func TestPoolRefusesANonEmptyDirectory(t *testing.T) {
	c := testClient(t)
	p := dirPool(t, c, testPrefix(t))
	require.NoError(t, os.MkdirAll(p.dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "precious.img"), []byte("x"), 0o644))
	t.Cleanup(func() { _ = os.RemoveAll(p.dir) })
	_, err := c.EnsurePool(p.xml)
	require.ErrorIs(t, err, ErrNotOwned)
	require.Contains(t, err.Error(), "precious.img")
	_, err = c.LookupPool(p.name)
	require.ErrorIs(t, err, ErrNotFound, "nothing was defined")
}

// An existing directory hpcvm did not create, even an empty one (a mount
// point, a directory an admin prepared), is not adopted as a pool: destroy
// removes a pool's directory, and would rmdir it. It is left as it was.
func TestPoolRefusesAnExistingEmptyDirectory(t *testing.T) {
	c := testClient(t)
	p := dirPool(t, c, testPrefix(t))
	require.NoError(t, os.MkdirAll(p.dir, 0o700))
	require.NoError(t, os.Chmod(p.dir, 0o700))
	_, err := c.EnsurePool(p.xml)
	require.ErrorIs(t, err, ErrNotOwned)
	require.Contains(t, err.Error(), "exists already")
	require.Contains(t, err.Error(), "rmdir "+p.dir)
	_, err = c.LookupPool(p.name)
	require.ErrorIs(t, err, ErrNotFound, "nothing was defined")
	require.NoError(t, c.DeletePool(p.name, p.uuid))
	st, err := os.Stat(p.dir)
	require.NoError(t, err, "the directory survives")
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "untouched")

	// A link at the pool path is refused the same way.
	require.NoError(t, os.Remove(p.dir))
	require.NoError(t, os.Symlink(t.TempDir(), p.dir))
	_, err = c.EnsurePool(p.xml)
	require.ErrorIs(t, err, ErrNotOwned)
	require.NoError(t, os.Remove(p.dir))

	// The directory hpcvm's pool made is its own: a retry adopts it, and
	// delete removes it.
	_, err = c.EnsurePool(p.xml)
	require.NoError(t, err)
	stopPool(t, c, p.name)
	created, err := c.EnsurePool(p.xml)
	require.NoError(t, err)
	require.False(t, created)
	require.NoError(t, c.DeletePool(p.name, p.uuid))
	_, err = os.Stat(p.dir)
	require.True(t, os.IsNotExist(err), "pool directory removed, got %v", err)
}

func TestPoolRestartsInactiveForDelete(t *testing.T) {
	c := testClient(t)
	p := dirPool(t, c, testPrefix(t))
	_, err := c.EnsurePool(p.xml)
	require.NoError(t, err)
	_, err = c.EnsureVolume(p.name, volumeXML(t, "v.raw", "raw", 1<<20, ""))
	require.NoError(t, err)

	// Stop the pool behind the client's back; delete must still find and
	// remove its volume and directory.
	stopPool(t, c, p.name)
	info, err := c.LookupPool(p.name)
	require.NoError(t, err)
	require.False(t, info.Active)
	// Ensure starts it again.
	created, err := c.EnsurePool(p.xml)
	require.NoError(t, err)
	require.False(t, created)
	info, err = c.LookupPool(p.name)
	require.NoError(t, err)
	require.True(t, info.Active)

	// Listing changes nothing: an inactive pool stays inactive.
	stopPool(t, c, p.name)
	_, err = c.ListVolumes(p.name)
	require.ErrorIs(t, err, ErrInvalidState)
	info, err = c.LookupPool(p.name)
	require.NoError(t, err)
	require.False(t, info.Active)

	require.NoError(t, c.DeleteVolume(p.name, "v.raw"))
	require.NoError(t, c.DeletePool(p.name, p.uuid))
	_, err = os.Stat(p.dir)
	require.True(t, os.IsNotExist(err), "pool directory removed, got %v", err)
}

// stopPool stops a pool behind the client's back, as a host reboot or an
// operator's virsh pool-destroy would leave it.
func stopPool(t *testing.T, c *Client, name string) {
	t.Helper()
	require.NoError(t, c.do("stop pool", name, false, func(conn *lv.Connect) error {
		pool, err := conn.LookupStoragePoolByName(name)
		if err != nil {
			return err
		}
		defer pool.Free()
		return pool.Destroy()
	}))
}
