package activities

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/templates"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A shared directory swapped for a link after the preflight checked it
// (the minutes of a base upload) is refused when the domain starts, naming
// the path; virtiofsd, as root, would follow the link.
func TestStartDomainRefusesAShareSwappedForALink(t *testing.T) {
	f := newFixture(t)
	shareRoot := filepath.Join(f.dir, "shares")
	share := filepath.Join(shareRoot, "data")
	require.NoError(t, os.MkdirAll(share, 0o755))
	f.acts.ShareRoots = []string{shareRoot}

	name := "sh" + f.prefix[len("hpcvma-"):]
	spec, err := cluster.Parse([]byte("cluster: {name: " + name + ", host: hv1, storage: {pool_path: " + f.dir + ", base_image: " + filepath.Join(f.dir, "base.qcow2") + "},\n" +
		"  hardware: {acceleration: {enable_kvm: false}}}\ncontroller: {memory_mb: 128, cpu_cores: 1, disk_size_gb: 1,\n" +
		"  virtio_fs_mounts: [{tag: data, host_path: " + share + ", mount_point: /data}]}\n"))
	require.NoError(t, err)
	plan, err := cluster.NewPlan(spec)
	require.NoError(t, err)
	val, err := f.env().ExecuteActivity(f.acts.ProbeHost)
	require.NoError(t, err)
	var caps cluster.HostCapabilities
	require.NoError(t, val.Get(&caps))
	require.NoError(t, plan.Negotiate(spec, caps))
	vm := plan.VMs[0]
	domXML, err := templates.Domain(plan, vm, "qcow2")
	require.NoError(t, err)
	dirs, err := libvirt.ShareDirs(domXML)
	require.NoError(t, err)
	assert.Equal(t, []string{share}, dirs, "the share as the domain XML names it")

	_, err = f.lv.EnsureDomain(domXML)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.lv.DeleteDomain(vm.Domain) })
	ref := api.DomainRef{Name: vm.Domain, Cluster: name}

	// The inventory carries the type the domain really has (enable_kvm:
	// false made it a TCG domain), for status to show.
	val, err = f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: name})
	require.NoError(t, err)
	var inv api.Inventory
	require.NoError(t, val.Get(&inv))
	dom, found := inv.Domain(vm.Domain)
	require.True(t, found)
	assert.Equal(t, "qemu", dom.Type)

	// The directory checked before anything was created, then swapped.
	require.NoError(t, f.acts.CheckHostPaths(t.Context(), api.PathsRequest{SharedDirs: []api.SharedDir{{Field: "controller.virtio_fs_mounts[0].host_path", Path: share}}}))
	require.NoError(t, os.Remove(share))
	require.NoError(t, os.Symlink("/etc", share))

	_, err = f.env().ExecuteActivity(f.acts.StartDomain, ref)
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeBadInput, typ)
	assert.True(t, final)
	assert.Contains(t, err.Error(), share)
	st, err := f.lv.DomainState(vm.Domain)
	require.NoError(t, err)
	assert.Equal(t, libvirt.StateShutOff, st, "the domain was not started")

	// Outside the share roots altogether.
	f.acts.ShareRoots = []string{filepath.Join(f.dir, "elsewhere")}
	require.NoError(t, os.Remove(share))
	require.NoError(t, os.Mkdir(share, 0o755))
	_, err = f.env().ExecuteActivity(f.acts.StartDomain, ref)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--share-root")
}
