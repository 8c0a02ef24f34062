package activities

import "context"

// EnsureNetwork defines and starts the cluster network (idempotent).
func (a *Activities) EnsureNetwork(ctx context.Context, xml string) (EnsureResult, error) {
	var res EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		res.Created, err = a.Libvirt.EnsureNetwork(xml)
		return err
	})
	return res, err
}

// DeleteNetwork stops and undefines the cluster network if it is ours.
func (a *Activities) DeleteNetwork(ctx context.Context, ref NetworkRef) error {
	return a.heartbeating(ctx, func() error { return a.Libvirt.DeleteNetwork(ref.Name, ref.Bridge) })
}
