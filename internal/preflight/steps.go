package preflight

import (
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/hpcvm/hpcvm/internal/templates"
)

// steps is the start's saga as data, from the rendered documents (in
// planDocuments' order: network, pool, base volume, then volume and domain
// of every VM).
func (r *run) steps(docs []api.Document) *api.StartSteps {
	p, inv, hc := r.plan, r.inv, r.hostChanges
	netExisted := inv.NetworkOwned()
	s := &api.StartSteps{
		HostChanges: hc,
		Network:     api.ObjectStep{Name: p.Network.Name, UUID: p.Network.UUID, XML: docs[0].XML, Existed: netExisted},
		Pool:        api.ObjectStep{Name: p.Pool.Name, UUID: p.Pool.UUID, XML: docs[1].XML, Existed: inv.PoolOwned()},
		Base: api.BaseStep{Existed: r.baseExisted, Upload: api.UploadRequest{
			Pool: p.Pool.Name, PoolUUID: p.Pool.UUID, Volume: p.BaseImage.Volume, XML: docs[2].XML, Source: r.img.Path, Existed: r.baseExisted,
		}},
		ScaleOut: ownsDomains(inv),
		Notes:    p.Machine.Notes,
	}
	for _, d := range cluster.ExclusiveDevices(r.req.Spec) {
		s.Devices = append(s.Devices, api.DeviceClaim{Address: d.PCIAddress, VM: d.VM})
	}
	s.Resources, s.Bind = ResourceClaims(p), true
	if hc.Routing {
		rr := RoutingRequest(r.req, p, hc)
		s.Routing = &rr
	}
	if hc.Resolver {
		s.Resolver = &api.ResolverStep{Request: ResolverRequest(r.req, p, hc), Existed: r.resolverExisted}
	}
	if hc.Discovery {
		s.Discovery = &api.DiscoveryStep{Request: DiscoveryRequest(r.req, p, hc), Existed: r.discoveryExisted}
	}
	for i, vm := range p.VMs {
		dom, domExisted := inv.Domain(vm.Domain)
		_, volExisted := inv.Volume(vm.Volume)
		v := api.VMSteps{
			Name: vm.Name, Domain: vm.Domain,
			Volume:     api.VolumeRequest{Pool: p.Pool.Name, PoolUUID: p.Pool.UUID, XML: docs[3+2*i].XML},
			VolumeName: vm.Volume, VolumeExisted: volExisted,
			DomainXML: docs[4+2*i].XML, DomainExisted: domExisted, WasRunning: domExisted && dom.Running(),
			ExclusiveDevices: exclusiveDevices(vm),
			Claims:           s.ScaleOut,
		}
		// A network that existed before the run gets the VM's lease in
		// place, without a restart: how a node joins a running cluster.
		lease := cluster.HostLease{Name: vm.Name, MAC: vm.MAC, IP: vm.IP}
		if netExisted && !hasLease(inv.Network.Leases, lease) {
			v.Lease = &api.DHCPHostRequest{Network: api.NetworkRef{Name: p.Network.Name, UUID: p.Network.UUID}, Lease: lease}
			v.LeaseHadMAC = hasMAC(inv.Network.Leases, vm.MAC)
		}
		s.VMs = append(s.VMs, v)
	}
	return s
}

func planDocuments(p cluster.Plan, img api.ImageInfo) ([]api.Document, error) {
	var docs []api.Document
	add := func(kind, name string, render func() (string, error)) error {
		x, err := render()
		if err != nil {
			return fmt.Errorf("render %s %s: %w", kind, name, err)
		}
		docs = append(docs, api.Document{Kind: kind, Name: name, XML: x})
		return nil
	}
	if err := add("network", p.Network.Name, func() (string, error) { return templates.Network(p) }); err != nil {
		return nil, err
	}
	if err := add("pool", p.Pool.Name, func() (string, error) { return templates.Pool(p) }); err != nil {
		return nil, err
	}
	if err := add("volume", p.BaseImage.Volume, func() (string, error) { return templates.BaseImage(p, img.Format, img.VirtualSize) }); err != nil {
		return nil, err
	}
	for _, vm := range p.VMs {
		if err := add("volume", vm.Volume, func() (string, error) { return templates.VMVolume(p, vm, img.Format) }); err != nil {
			return nil, err
		}
		if err := add("domain", vm.Domain, func() (string, error) { return templates.Domain(p, vm, img.Format) }); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// DiscoveryRequest is the cluster's service discovery record.
func DiscoveryRequest(req api.Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.DiscoveryRequest {
	dreq := api.DiscoveryRequest{Cluster: plan.Cluster, Dir: hc.DiscoveryDir, RequireRoot: hc.RequireRoot, RequestedBy: req.RequestedBy}
	for _, vm := range plan.VMs {
		dreq.Nodes = append(dreq.Nodes, hostchange.Node{VM: vm.Name, Role: vm.Role, Domain: vm.Domain, Address: vm.IP, MAC: vm.MAC})
	}
	return dreq
}

// ResolverRequest is the host resolver's entry of the cluster.
func ResolverRequest(req api.Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.ResolverRequest {
	return api.ResolverRequest{Cluster: plan.Cluster, Dir: hc.ResolverDir, Domain: plan.Network.DomainName,
		Gateway: plan.Network.Gateway, RequireRoot: hc.RequireRoot, RequestedBy: req.RequestedBy}
}

// RoutingRequest is the cluster's membership of the host's routing.
func RoutingRequest(req api.Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.RoutingRequest {
	return api.RoutingRequest{
		Cluster: plan.Cluster, Network: plan.Network.Name, Bridge: plan.Network.Bridge, Subnet: plan.Network.Range,
		EnableIPForwarding: hc.EnableIPForwarding, RequireRoot: hc.RequireRoot, RequestedBy: req.RequestedBy,
	}
}

// PendingRequest names the host changes of a cluster, to ask which are
// not in place.
func PendingRequest(req api.Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.PendingRequest {
	var p api.PendingRequest
	if hc.Routing {
		r := RoutingRequest(req, plan, hc)
		p.Routing = &r
	}
	if hc.Discovery {
		d := DiscoveryRequest(req, plan, hc)
		p.Discovery = &d
	}
	if hc.Resolver {
		r := ResolverRequest(req, plan, hc)
		p.Resolver = &r
	}
	return p
}

func ownsDomains(inv api.Inventory) bool {
	for _, d := range inv.Domains {
		if d.Owned {
			return true
		}
	}
	return false
}

func exclusiveDevices(vm cluster.VMPlan) bool {
	for _, d := range vm.HostDevices {
		if d.Exclusive {
			return true
		}
	}
	return false
}

func hasLease(ls []cluster.HostLease, want cluster.HostLease) bool {
	for _, l := range ls {
		if strings.EqualFold(l.MAC, want.MAC) && l.Name == want.Name && l.IP == want.IP {
			return true
		}
	}
	return false
}

func hasMAC(ls []cluster.HostLease, mac string) bool {
	for _, l := range ls {
		if strings.EqualFold(l.MAC, mac) {
			return true
		}
	}
	return false
}
