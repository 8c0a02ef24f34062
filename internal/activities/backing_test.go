package activities

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/templates"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// The domain XML templates.Domain renders starts on the real
// libvirtd and QEMU: the VM's overlay names its base volume with its
// format, and the chain ends there (libvirt probes no header). Run with the
// pool, base volume and overlay the activities make, on a qcow2 base from
// the real qemu-img.
func TestDomainStartsOnItsExplicitBackingChain(t *testing.T) {
	f := newFixture(t)
	env := f.env()
	val, err := env.ExecuteActivity(f.acts.ProbeHost)
	require.NoError(t, err)
	var caps cluster.HostCapabilities
	require.NoError(t, val.Get(&caps))

	name := f.prefix[len("hpcvma-"):] // a valid cluster name: the random part
	name = "bk" + name
	image := filepath.Join(f.dir, "base.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", image, "64M").CombinedOutput()
	require.NoError(t, err, "%s", out)
	spec, err := cluster.Parse([]byte("cluster: {name: " + name + ", host: hv1, storage: {pool_path: " + f.dir + ", base_image: " + image + "},\n" +
		"  hardware: {acceleration: {enable_kvm: false}}}\ncontroller: {memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n"))
	require.NoError(t, err)
	plan, err := cluster.NewPlan(spec)
	require.NoError(t, err)
	require.NoError(t, plan.Negotiate(spec, caps))

	poolXML, err := templates.Pool(plan)
	require.NoError(t, err)
	_, err = env.ExecuteActivity(f.acts.EnsurePool, poolXML)
	require.NoError(t, err)
	t.Cleanup(func() {
		if vols, err := f.lv.ListVolumes(plan.Pool.Name); err == nil {
			for _, v := range vols {
				_ = f.lv.DeleteVolume(plan.Pool.Name, v.Name)
			}
		}
		_ = f.lv.DeletePool(plan.Pool.Name, plan.Pool.UUID)
	})
	val, err = env.ExecuteActivity(f.acts.InspectBaseImage, image)
	require.NoError(t, err)
	var img api.ImageInfo
	require.NoError(t, val.Get(&img))
	baseXML, err := templates.BaseImage(plan, img.Format, img.VirtualSize)
	require.NoError(t, err)
	_, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: plan.Pool.Name, PoolUUID: plan.Pool.UUID, Volume: plan.BaseImage.Volume, XML: baseXML, Source: image})
	require.NoError(t, err)

	vm := plan.VMs[0]
	volXML, err := templates.VMVolume(plan, vm, img.Format)
	require.NoError(t, err)
	_, err = env.ExecuteActivity(f.acts.EnsureVolume, api.VolumeRequest{Pool: plan.Pool.Name, PoolUUID: plan.Pool.UUID, XML: volXML})
	require.NoError(t, err)

	domXML, err := templates.Domain(plan, vm, img.Format)
	require.NoError(t, err)
	// The cluster's network is not what is tried here.
	var dom libvirtxml.Domain
	require.NoError(t, dom.Unmarshal(domXML))
	dom.Devices.Interfaces = nil
	domXML, err = dom.Marshal()
	require.NoError(t, err)
	_, err = f.lv.EnsureDomain(domXML)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.lv.DeleteDomain(vm.Domain) })
	_, err = f.lv.StartDomain(vm.Domain)
	require.NoError(t, err, "the domain starts on its explicit chain")

	uri := os.Getenv("HPCVM_TEST_LIBVIRT_URI")
	if uri == "" {
		uri = "qemu:///system"
	}
	live, err := exec.Command("virsh", "-c", uri, "dumpxml", vm.Domain).Output()
	require.NoError(t, err)
	var running libvirtxml.Domain
	require.NoError(t, running.Unmarshal(string(live)))
	disk := running.Devices.Disks[0]
	assert.Equal(t, templates.VolumePath(plan, vm), disk.Source.File.File)
	require.NotNil(t, disk.BackingStore)
	assert.Equal(t, "qcow2", disk.BackingStore.Format.Type)
	assert.Equal(t, templates.BaseImagePath(plan), disk.BackingStore.Source.File.File)
	require.NotNil(t, disk.BackingStore.BackingStore, "the chain ends at the base")
	if s := disk.BackingStore.BackingStore.Source; s != nil {
		assert.Nil(t, s.File, "nothing below the base")
	}
	t.Logf("live disk: %s", mustMarshal(t, &disk))
	require.NoError(t, f.lv.DeleteDomain(vm.Domain))
}

func mustMarshal(t *testing.T, d *libvirtxml.DomainDisk) string {
	s, err := d.Marshal()
	require.NoError(t, err)
	return s
}
