package activities

import (
	"context"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/libvirt"
)

// EnsureNetwork defines and starts the cluster network (idempotent). An
// existing network of that name must carry the UUID in xml.
func (a *Activities) EnsureNetwork(ctx context.Context, xml string) (api.EnsureResult, error) {
	var res api.EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		res.Created, err = a.Libvirt.EnsureNetwork(xml)
		return err
	})
	return res, err
}

// DeleteNetwork stops and undefines the cluster network if it carries the
// cluster's UUID.
func (a *Activities) DeleteNetwork(ctx context.Context, ref api.NetworkRef) error {
	return a.heartbeating(ctx, func() error { return a.Libvirt.DeleteNetwork(ref.Name, ref.UUID) })
}

// EnsureDHCPHost adds (or corrects) a VM's static lease in the running
// cluster network, live and persistent, without restarting the network: how
// a node joins a running cluster. It reports whether it changed anything.
func (a *Activities) EnsureDHCPHost(ctx context.Context, req api.DHCPHostRequest) (api.EnsureResult, error) {
	var res api.EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		res.Created, err = a.Libvirt.EnsureDHCPHost(req.Network.Name, req.Network.UUID,
			libvirt.DHCPHost{MAC: req.Lease.MAC, Name: req.Lease.Name, IP: req.Lease.IP})
		return err
	})
	return res, err
}

// DeleteDHCPHost removes a VM's static lease from the cluster network.
func (a *Activities) DeleteDHCPHost(ctx context.Context, req api.DHCPHostRequest) error {
	return a.heartbeating(ctx, func() error {
		return a.Libvirt.DeleteDHCPHost(req.Network.Name, req.Network.UUID, req.Lease.MAC)
	})
}
