package activities

import "context"

// EnsurePool defines, builds and starts the cluster pool (idempotent).
func (a *Activities) EnsurePool(ctx context.Context, xml string) (EnsureResult, error) {
	var res EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		res.Created, err = a.Libvirt.EnsurePool(xml)
		return err
	})
	return res, err
}

// DeletePool deletes the pool's volumes, its directory and the pool, if the
// pool is ours.
func (a *Activities) DeletePool(ctx context.Context, ref PoolRef) error {
	return a.heartbeating(ctx, func() error { return a.Libvirt.DeletePool(ref.Name, ref.Path) })
}
