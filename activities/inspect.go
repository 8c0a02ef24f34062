package activities

import (
	"context"
	"errors"

	"github.com/hpcvm/hpcvm/libvirt"
	"github.com/hpcvm/hpcvm/templates"
)

// InspectCluster reports which of the plan's objects exist and in what
// state. The start workflow takes it as its snapshot of what existed before
// the run, so that its compensations undo only what the run itself created.
func (a *Activities) InspectCluster(ctx context.Context, req InspectRequest) (Inventory, error) {
	var inv Inventory
	err := a.heartbeating(ctx, func() error {
		p := req.Plan
		if n, err := a.Libvirt.LookupNetwork(p.Network.Name); err == nil {
			inv.Network = &NetworkState{Name: n.Name, Bridge: n.Bridge, Active: n.Active}
		} else if !errors.Is(err, libvirt.ErrNotFound) {
			return err
		}
		if pool, err := a.Libvirt.LookupPool(p.Pool.Name); err == nil {
			inv.Pool = &PoolState{Name: pool.Name, Path: pool.Path, Active: pool.Active,
				Capacity: pool.Capacity, Allocation: pool.Allocation, Available: pool.Available}
			// Listing brings an inactive pool up: its volumes must be
			// known, or a start would take existing disks for new ones
			// (and its rollback would delete them).
			{
				vols, err := a.Libvirt.ListVolumes(p.Pool.Name)
				if err != nil {
					return err
				}
				inv.Volumes = map[string]VolumeState{}
				for _, v := range vols {
					vs := VolumeState{Name: v.Name, Path: v.Path, Capacity: v.Capacity, Allocation: v.Allocation}
					if v.Name == p.BaseImage.Volume {
						inv.BaseVolume = &vs
						continue
					}
					inv.Volumes[v.Name] = vs
				}
			}
		} else if !errors.Is(err, libvirt.ErrNotFound) {
			return err
		}

		planned := map[string]bool{}
		for _, vm := range p.VMs {
			planned[vm.Domain] = true
		}
		domains, err := a.Libvirt.ListDomains(templates.MetadataNamespace)
		if err != nil {
			return err
		}
		for _, d := range domains {
			ds := DomainState{Name: d.Name, State: string(d.State), MemoryMiB: d.MemoryKiB / 1024, VCPUs: d.VCPUs}
			if d.Metadata != "" {
				if owner, err := templates.ParseOwner(d.Metadata); err == nil && owner.Cluster == p.Cluster {
					ds.Owned, ds.VM, ds.Role = true, owner.VM, owner.Role
				}
			}
			if ds.Owned || planned[d.Name] {
				inv.Domains = append(inv.Domains, ds)
			}
		}
		return nil
	})
	return inv, err
}
