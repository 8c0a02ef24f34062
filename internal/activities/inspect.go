package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/registry"
	"github.com/hpcvm/hpcvm/internal/templates"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sys/unix"
)

// InspectCluster reports what exists of the cluster in libvirt, found by
// the marks hpcvm writes (network and pool UUIDs, domain metadata) rather
// than by today's cluster.yaml, so destroy, stop and status see everything
// the cluster owns after any edit of the file. The start workflow takes it
// as its snapshot of what existed before the run, so that its compensations
// undo only what the run itself created.
func (a *Activities) InspectCluster(ctx context.Context, req api.InspectRequest) (api.Inventory, error) {
	var inv api.Inventory
	if req.Binding && a.Temporal != nil {
		bindings, _, err := registry.Bindings(ctx, a.Temporal)
		if err != nil {
			return inv, err
		}
		for _, b := range bindings {
			if b.Cluster == req.Cluster {
				inv.BoundTo = b.Hosts
			}
		}
	}
	// The host's routing rules are read beside the libvirt calls.
	routing := make(chan *api.RoutingState, 1)
	go func() { routing <- a.routingOf(ctx, req.Cluster) }()
	err := a.heartbeating(ctx, func() error {
		name := req.Cluster
		if n, err := a.Libvirt.LookupNetwork(cluster.NetworkName(name)); err == nil {
			ns := &api.NetworkState{Name: n.Name, UUID: n.UUID, Bridge: n.Bridge, Active: n.Active,
				Address: n.Address, DHCPRange: n.DHCPRange, Forward: n.Forward,
				Owned: strings.EqualFold(n.UUID, cluster.NetworkUUID(name))}
			for _, f := range n.DNSForwarders {
				ns.DNSForwarders = append(ns.DNSForwarders, cluster.DNSForwarder{Domain: f.Domain, Addr: f.Addr})
			}
			for _, h := range n.Hosts {
				ns.Leases = append(ns.Leases, cluster.HostLease{Name: h.Name, MAC: h.MAC, IP: h.IP})
			}
			inv.Network = ns
		} else if !errors.Is(err, libvirt.ErrNotFound) {
			return err
		}

		poolUUID := cluster.PoolUUID(name)
		if pool, err := a.Libvirt.LookupPool(cluster.PoolName(name)); err == nil {
			inv.Pool = &api.PoolState{Name: pool.Name, UUID: pool.UUID, Path: pool.Path, Active: pool.Active,
				Owned:    strings.EqualFold(pool.UUID, poolUUID),
				Capacity: pool.Capacity, Allocation: pool.Allocation, Available: pool.Available}
			// libvirt's "available" of a directory pool is its capacity
			// less what is used, which counts blocks no one may write
			// (seen: 234 GiB where df said 74G). What the file system
			// gives a writer is what validate judges space by: status
			// shows the same.
			var fs syscall.Statfs_t
			if pool.Path != "" && syscall.Statfs(pool.Path, &fs) == nil {
				inv.Pool.Available = fs.Bavail * uint64(fs.Bsize)
			}
		} else if !errors.Is(err, libvirt.ErrNotFound) {
			return err
		}
		if inv.PoolOwned() {
			if !inv.Pool.Active && req.Activate {
				// An inactive pool hides its volumes: a start would take
				// existing disks for new ones, a destroy would miss them.
				// A pool that cannot start (its directory removed by hand)
				// is reported, not fatal: destroy still removes the rest.
				if err := a.Libvirt.ActivatePool(inv.Pool.Name, poolUUID); err != nil {
					if libvirt.IsRetryable(err) {
						return err
					}
					inv.Pool.Problem = err.Error()
					if _, statErr := os.Stat(inv.Pool.Path); errors.Is(statErr, fs.ErrNotExist) {
						inv.Pool.DirMissing = true
					}
				} else {
					inv.Pool.Active = true
				}
			}
			if inv.Pool.Active {
				vols, err := a.Libvirt.ListVolumes(inv.Pool.Name)
				if err != nil {
					return err
				}
				inv.Volumes, inv.VolumesListed = map[string]api.VolumeState{}, true
				for _, v := range vols {
					vs := api.VolumeState{Name: v.Name, Path: v.Path, Format: v.Format,
						Capacity: v.Capacity, Allocation: v.Allocation, BackingPath: v.BackingPath}
					if slices.Contains(cluster.BaseVolumeNames(name), v.Name) {
						vs.Format, vs.Problem = baseVolumeHeader(inv.Pool.Path, v, vs.Format)
					}
					inv.Volumes[v.Name] = vs
				}
			}
		}

		planned := map[string]bool{}
		for _, d := range req.PlannedDomains {
			planned[d] = true
		}
		domains, err := a.Libvirt.ListDomains(templates.MetadataNamespace)
		if err != nil {
			return err
		}
		for _, d := range domains {
			ds := api.DomainState{Name: d.Name, State: string(d.State), Type: d.Type, MemoryMiB: d.MemoryKiB / 1024, VCPUs: d.VCPUs,
				Disks: d.Disks, Networks: d.Networks, AgentConnected: d.AgentConnected, StartedAt: d.StartedAt}
			if d.Metadata != "" {
				if owner, err := templates.ParseOwner(d.Metadata); err == nil && owner.Cluster == name {
					ds.Owned, ds.VM, ds.Role = true, owner.VM, owner.Role
				}
			}
			lookalike := req.LookalikePrefix != "" && d.Metadata == "" && strings.HasPrefix(d.Name, req.LookalikePrefix)
			if ds.Owned || planned[d.Name] || lookalike {
				inv.Domains = append(inv.Domains, ds)
			}
			if ds.Owned {
				continue
			}
			if d.Unreadable {
				inv.Unreadable = append(inv.Unreadable, d.Name)
				continue
			}
			if n := inv.Network; n != nil && (slices.Contains(d.Networks, n.Name) || slices.Contains(d.Bridges, n.Bridge)) {
				inv.NetworkUsers = append(inv.NetworkUsers, d.Name)
			}
			if inv.Pool != nil {
				// Its disks, the files under them, and pool volumes it
				// names: whatever of the pool it uses stays.
				for _, disk := range append(append([]string{}, d.Disks...), d.BackingFiles...) {
					if filepath.Dir(filepath.Clean(disk)) == inv.Pool.Path {
						inv.ForeignDisks = append(inv.ForeignDisks, filepath.Clean(disk))
					}
				}
				for _, pv := range d.VolumeDisks {
					if pool, vol, ok := strings.Cut(pv, "/"); ok && pool == inv.Pool.Name {
						inv.ForeignDisks = append(inv.ForeignDisks, filepath.Join(inv.Pool.Path, vol))
					}
				}
			}
		}
		if req.LiveAddresses {
			inv.LiveAddresses = a.liveAddresses(inv)
		}
		if req.AddressesInUse {
			inUse, err := a.addressesInUse(ctx)
			if err != nil {
				return err
			}
			inv.AddressesInUse, inv.AddressesListed = inUse, true
		}
		return nil
	})
	inv.Routing = <-routing
	if err == nil && req.Activate && inv.Routing != nil && inv.Routing.Problem != "" {
		// Start and destroy act on what this says: a start refuses to
		// run a routed cluster whose file no longer routes it, and must
		// not take "cannot tell" for "not routed" (fail closed). A
		// cluster that never routed here (the audit log has no rule of
		// it) cannot be a member: its start and destroy go on.
		if routed, aerr := a.HostChanges.EverRouted(req.Cluster); aerr != nil || routed {
			what := fmt.Sprintf("cannot tell whether cluster %s is one of host %s's routed clusters (%s), and hpcvm made routing rules for it on this host (audit log), so nothing was changed: ",
				req.Cluster, a.HostChanges.Name, inv.Routing.Problem)
			if inv.Routing.Busy {
				return inv, temporal.NewApplicationError(what+"if another program holds the xtables lock (iptables-legacy: /run/xtables.lock), this step is retried; run it again once the lock is free", api.ErrTypeBusy)
			}
			return inv, temporal.NewNonRetryableApplicationError(what+"make iptables work for the worker (it needs root, or CAP_NET_ADMIN, and the kernel's iptables tables) and run it again", api.ErrTypeInvalidState, nil)
		}
	}
	return inv, err
}

// baseVolumeHeader reads the header of the cluster's base volume v in the
// pool directory poolDir, read-only, and says its format as hpcvm decides
// it for a base image (see InspectBaseImage: the volume holds the image's
// bytes) and why no VM may start on it ("" if one may): the same check the
// upload step of a start makes (volumeSelfContained), so validate sees
// what start would refuse. A volume whose header cannot be read keeps
// libvirt's format (probed) and says why.
func baseVolumeHeader(poolDir string, v libvirt.VolumeInfo, probed string) (format, problem string) {
	cannot := func(err error) (string, string) {
		return probed, fmt.Sprintf("base volume %s cannot be read (%v), so it cannot be checked: run `hpcvm destroy` and start again", v.Path, err)
	}
	if filepath.Dir(filepath.Clean(v.Path)) != filepath.Clean(poolDir) {
		return cannot(fmt.Errorf("libvirt places it outside the pool directory %s", poolDir))
	}
	// Opened inside the pool's directory: no link, at the end or on the
	// way, is followed; O_NONBLOCK so a FIFO planted there cannot hang us.
	root, err := os.OpenRoot(poolDir)
	if err != nil {
		return cannot(err)
	}
	defer root.Close()
	f, err := root.OpenFile(filepath.Base(v.Path), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return cannot(err)
	}
	defer f.Close()
	img, err := selfContained(f, v.Path)
	if err != nil {
		return probed, fmt.Sprintf("base volume %s is not an image QEMU can use on its own, so no VM is started on it: %v; then run `hpcvm destroy` and start again", v.Path, err)
	}
	return img.Format, ""
}

// routingReadTimeout bounds reading the host's routing rules.
const routingReadTimeout = 5 * time.Second

// routingOf says whether the cluster is one of the host's routed clusters
// (its tagged rules), and with whom; nil when the worker makes no host
// changes or the cluster is not routed. Rules that cannot be read are a
// Problem, not a failed inspection: libvirt's objects are what it is for.
func (a *Activities) routingOf(ctx context.Context, name string) *api.RoutingState {
	if a.HostChanges == nil {
		return nil
	}
	// A held xtables lock must not hold up an inspection; what cannot be
	// read within the bound is a Problem, which a start or destroy does
	// not take for "not routed" (InspectCluster).
	ctx, cancel := context.WithTimeout(ctx, routingReadTimeout)
	defer cancel()
	members, err := a.HostChanges.Members(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return &api.RoutingState{Problem: fmt.Sprintf("iptables did not answer within %s (is the xtables lock held?): %v", routingReadTimeout, err), Busy: true}
		}
		// iptables that gave up waiting for the lock (-w N) is busy too.
		return &api.RoutingState{Problem: err.Error(), Busy: strings.Contains(err.Error(), "xtables lock")}
	}
	st := &api.RoutingState{}
	for _, m := range members {
		if m.Cluster == name {
			st.Member = true
		} else {
			st.With = append(st.With, m.Cluster)
		}
	}
	if !st.Member {
		return nil
	}
	return st
}

// liveAddresses reads what the cluster's guests hold now. What cannot be
// read is left out: the status shows the planned addresses all the same.
func (a *Activities) liveAddresses(inv api.Inventory) []api.LiveAddress {
	var out []api.LiveAddress
	if inv.NetworkOwned() {
		if leases, err := a.Libvirt.NetworkDHCPLeases(inv.Network.Name); err == nil {
			for _, l := range leases {
				out = append(out, api.LiveAddress{MAC: l.MAC, IP: l.IP, Source: "dhcp", Hostname: l.Hostname, Expiry: l.Expiry})
			}
		}
	}
	// The agents are asked all at once, and only for agentAnswerWithin: a
	// connected agent whose guest is stuck makes libvirt wait, and the
	// status must not wait for it (it shows the planned and DHCP addresses).
	var asked []api.DomainState
	for _, d := range inv.Domains {
		if d.Owned && d.AgentConnected && d.Running() {
			if _, busy := a.agentAsking.LoadOrStore(d.Name, true); busy {
				continue // an earlier question is still waiting for it
			}
			asked = append(asked, d)
		}
	}
	answers := make([]map[string][]string, len(asked))
	answered := make(chan int, len(asked))
	for i, d := range asked {
		go func() {
			defer a.agentAsking.Delete(d.Name)
			if byMAC, err := a.Libvirt.DomainAgentAddresses(d.Name); err == nil {
				answers[i] = byMAC
			}
			answered <- i
		}()
	}
	got := make([]bool, len(asked))
	timeout := time.After(agentAnswerWithin)
wait:
	for range asked {
		select {
		case i := <-answered:
			got[i] = true
		case <-timeout:
			break wait
		}
	}
	for i, d := range asked {
		if !got[i] {
			continue
		}
		for _, mac := range slices.Sorted(maps.Keys(answers[i])) {
			for _, ip := range answers[i][mac] {
				out = append(out, api.LiveAddress{MAC: mac, IP: ip, Source: "agent", Hostname: d.VM})
			}
		}
	}
	return out
}

// agentAnswerWithin is how long a status waits for the guest agents.
const agentAnswerWithin = 3 * time.Second

// addressesInUse lists the subnets of every libvirt network of the host
// and every route of the hypervisor's namespace (a LAN, a VPN, Docker's
// bridge), so that a new network's range is checked against them before
// libvirt refuses it half-way through a start.
func (a *Activities) addressesInUse(ctx context.Context) ([]api.AddressInUse, error) {
	nets, err := a.Libvirt.AllNetworkAddresses()
	if err != nil {
		return nil, err
	}
	var out []api.AddressInUse
	bridges := map[string]bool{}
	for _, n := range nets {
		bridges[n.Bridge] = n.Bridge != ""
		owner := fmt.Sprintf("libvirt network %s (bridge %s)", n.Name, orNone(n.Bridge))
		listed := false
		for _, addr := range strings.Split(n.Address, ",") {
			if addr == "" || strings.Contains(addr, ":") {
				continue // IPv6: cluster networks are IPv4
			}
			out = append(out, api.AddressInUse{Subnet: addr, Owner: owner, Bridge: n.Bridge, Network: n.Name})
			listed = true
		}
		if !listed && n.Bridge != "" {
			// No IPv4 address, but its bridge name is taken.
			out = append(out, api.AddressInUse{Owner: owner, Bridge: n.Bridge, Network: n.Name})
		}
	}
	if a.HostChanges == nil {
		return out, nil
	}
	routes, err := a.HostChanges.Routes(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the host's routes: %w", err)
	}
	for _, r := range routes {
		if bridges[r.Device] || r.Device == "lo" {
			continue // a libvirt network's own route: named above
		}
		out = append(out, api.AddressInUse{Subnet: r.Subnet, Owner: "a route of the host (dev " + orNone(r.Device) + ")", Bridge: r.Device})
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
