package activities

import (
	"context"
	"errors"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"libvirt.org/go/libvirtxml"
)

// EnsurePool defines, builds and starts the cluster pool (idempotent). An
// existing pool of that name must carry the UUID in xml.
func (a *Activities) EnsurePool(ctx context.Context, xml string) (api.EnsureResult, error) {
	var res api.EnsureResult
	var def libvirtxml.StoragePool
	if err := def.Unmarshal(xml); err != nil || def.Target == nil {
		return res, badInput("the pool XML has no target directory", err)
	}
	// The roots bound where pools are created, and a pool is created only
	// in a directory that does not exist yet (destroy removes it); a pool
	// of the cluster that exists already is checked by its UUID in
	// EnsurePool instead.
	err := a.heartbeating(ctx, func() (err error) {
		if have, lerr := a.Libvirt.LookupPool(def.Name); lerr != nil || !strings.EqualFold(have.UUID, def.UUID) {
			p, err := checkUnder("cluster.storage.pool_path", def.Target.Path, a.PoolRoots, "--pool-root")
			if err != nil {
				return err
			}
			// (A same-named pool that is not ours is refused by
			// EnsurePool, which says so.)
			if p.Exists && errors.Is(lerr, libvirt.ErrNotFound) {
				return badInput(existingPoolDir(p.Path), nil)
			}
		}
		res.Created, err = a.Libvirt.EnsurePool(xml)
		return err
	})
	return res, err
}

// DeletePool deletes the cluster pool and its directory if the pool carries
// the cluster's UUID and holds no volume any more.
func (a *Activities) DeletePool(ctx context.Context, ref api.PoolRef) error {
	return a.heartbeating(ctx, func() error { return a.Libvirt.DeletePool(ref.Name, ref.UUID) })
}
