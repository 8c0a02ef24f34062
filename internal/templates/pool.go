package templates

import (
	"github.com/hpcvm/hpcvm/cluster"
	"libvirt.org/go/libvirtxml"
)

// Pool is the cluster's directory pool. Libvirt creates the directory when
// the pool is built; mode 0755 lets QEMU's unprivileged user reach the disks.
func Pool(p cluster.Plan) (string, error) {
	doc := libvirtxml.StoragePool{
		Type: p.Pool.Type,
		Name: p.Pool.Name,
		UUID: p.Pool.UUID, // hpcvm's mark of ownership: see cluster.PoolUUID
		Target: &libvirtxml.StoragePoolTarget{
			Path:        p.Pool.Path,
			Permissions: &libvirtxml.StoragePoolTargetPermissions{Mode: "0755"},
		},
	}
	return doc.Marshal()
}
