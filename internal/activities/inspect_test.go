package activities

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The base volume found in the pool is judged as a start's upload step
// judges it (validate asks InspectCluster too): a base an older hpcvm
// uploaded with a backing file says why no VM may start on it, and its
// format is read from its header as hpcvm reads a base image, not taken
// from libvirt's probe.
func TestInspectClusterJudgesTheBaseVolume(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	poolDir := filepath.Join(f.dir, "pool")
	qcowBase := filepath.Join(poolDir, f.prefix+"-base.qcow2")
	rawBase := filepath.Join(poolDir, f.prefix+"-base.img")
	qemuImg := func(args ...string) {
		out, err := exec.Command("qemu-img", args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	inspect := func() api.Inventory {
		val, err := f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: f.prefix, Activate: true})
		require.NoError(t, err)
		var inv api.Inventory
		require.NoError(t, val.Get(&inv))
		require.True(t, inv.VolumesListed)
		return inv
	}

	// A qcow2 base layered on a host file, and a raw base whose bytes
	// are a QED image (libvirt's probe calls it qed).
	qemuImg("create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", qcowBase, "1M")
	qemuImg("create", "-q", "-f", "qed", rawBase, "4M")
	other := filepath.Join(poolDir, "vm-01.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", "-b", qcowBase, "-F", "qcow2", other)

	inv := inspect()
	base, ok := inv.Volume(f.prefix + "-base.qcow2")
	require.True(t, ok)
	assert.Equal(t, "qcow2", base.Format)
	assert.Contains(t, base.Problem, "/etc/shadow")
	assert.Contains(t, base.Problem, "hpcvm destroy")
	raw, ok := inv.Volume(f.prefix + "-base.img")
	require.True(t, ok)
	assert.Equal(t, "raw", raw.Format, "hpcvm uploaded raw bytes; libvirt's probe says qed")
	assert.Empty(t, raw.Problem)
	vm, ok := inv.Volume("vm-01.qcow2")
	require.True(t, ok)
	assert.Empty(t, vm.Problem, "only the base volume is judged: a VM disk is layered by design")

	// A flattened base is fine.
	require.NoError(t, os.Remove(qcowBase))
	qemuImg("create", "-q", "-f", "qcow2", qcowBase, "1M")
	base, ok = inspect().Volume(f.prefix + "-base.qcow2")
	require.True(t, ok)
	assert.Equal(t, "qcow2", base.Format)
	assert.Empty(t, base.Problem)

	// A raw base that looks like an ISO 9660 file system to libvirt.
	iso := make([]byte, 4<<20)
	copy(iso[0x8001:], "CD001")
	require.NoError(t, os.WriteFile(rawBase, iso, 0o644))
	raw, ok = inspect().Volume(f.prefix + "-base.img")
	require.True(t, ok)
	assert.Equal(t, "raw", raw.Format, "libvirt's probe says iso")
	assert.Empty(t, raw.Problem)

	// A base swapped for a link is not followed.
	require.NoError(t, os.Remove(qcowBase))
	require.NoError(t, os.Symlink("/etc/hostname", qcowBase))
	base, ok = inspect().Volume(f.prefix + "-base.qcow2")
	require.True(t, ok, "libvirt lists a link in a directory pool")
	assert.Contains(t, base.Problem, "cannot be read")
}

// The pool's free space is the file system's, as validate measures it
// (PoolSpace), not libvirt's capacity-less-allocation.
func TestInspectClusterGivesThePoolsFreeSpaceAsValidateMeasuresIt(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	val, err := f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: f.prefix})
	require.NoError(t, err)
	var inv api.Inventory
	require.NoError(t, val.Get(&inv))
	require.NotNil(t, inv.Pool)
	space, err := f.acts.PoolSpace(context.Background(), inv.Pool.Path)
	require.NoError(t, err)
	diff := int64(inv.Pool.Available) - int64(space.Available)
	if diff < 0 {
		diff = -diff
	}
	assert.Less(t, diff, int64(64<<20), "status and validate agree within what the machine wrote meanwhile: %d vs %d", inv.Pool.Available, space.Available)
}
