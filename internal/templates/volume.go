package templates

import (
	"path/filepath"

	"github.com/hpcvm/hpcvm/cluster"
	"libvirt.org/go/libvirtxml"
)

// GiB is the unit of disk sizes in cluster.yaml.
const GiB = uint64(1) << 30

// BaseImage is the volume the operator's image is streamed into. Its format
// and size come from the image itself, read on the host.
func BaseImage(p cluster.Plan, format string, virtualSize uint64) (string, error) {
	doc := libvirtxml.StorageVolume{
		Type:     "file",
		Name:     p.BaseImage.Volume,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: virtualSize},
		// Allocated by what the upload writes: the image's holes stay
		// holes (a raw volume made with its full allocation is written
		// out in zeros first).
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
	}
	return doc.Marshal()
}

// BaseImagePath is where the base volume lives in a directory pool.
func BaseImagePath(p cluster.Plan) string { return filepath.Join(p.Pool.Path, p.BaseImage.Volume) }

// VolumePath is where a VM's disk lives in a directory pool.
func VolumePath(p cluster.Plan, vm cluster.VMPlan) string {
	return filepath.Join(p.Pool.Path, vm.Volume)
}

// VMVolume is a VM's copy-on-write qcow2 disk on top of the base volume: it
// starts empty and only grows with what the VM writes.
func VMVolume(p cluster.Plan, vm cluster.VMPlan, baseFormat string) (string, error) {
	doc := libvirtxml.StorageVolume{
		Type:       "file",
		Name:       vm.Volume,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(vm.DiskGiB) * GiB},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
		BackingStore: &libvirtxml.StorageVolumeBackingStore{
			Path:   BaseImagePath(p),
			Format: &libvirtxml.StorageVolumeTargetFormat{Type: baseFormat},
		},
	}
	return doc.Marshal()
}
