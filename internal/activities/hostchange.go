package activities

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// JoinRouting makes the cluster's network one of the host's routed
// clusters (hostchange.Host.Join), recording every change.
func (a *Activities) JoinRouting(ctx context.Context, req api.RoutingRequest) (api.HostChangeResult, error) {
	var res api.HostChangeResult
	err := a.heartbeating(ctx, func() error {
		h, err := a.hostChanges(req.RequireRoot)
		if err != nil {
			return err
		}
		res.Records, err = h.Join(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy), hostchange.Member{Cluster: req.Cluster, Bridge: req.Bridge, Subnet: req.Subnet},
			hostchange.JoinOptions{EnableIPForwarding: req.EnableIPForwarding})
		return hostChangeError(err)
	})
	return res, err
}

// LeaveRouting removes what JoinRouting made for the cluster, found by its
// tag on the host. IP forwarding goes back off only if this cluster turned
// it on, in this boot, no routed cluster is left and no other network of
// the host forwards; otherwise it is recorded as kept, for good
// (hostchange.Host.Leave). A cluster that never routed leaves sysctl alone.
func (a *Activities) LeaveRouting(ctx context.Context, req api.RoutingRequest) (api.HostChangeResult, error) {
	var res api.HostChangeResult
	if a.HostChanges == nil || a.HostChanges.Audit == nil {
		return res, nil // a worker that makes no host changes has none to undo
	}
	err := a.heartbeating(ctx, func() error {
		h := a.HostChanges
		others := false
		if a.Libvirt != nil {
			nets, err := a.Libvirt.ForwardingNetworks()
			if err != nil {
				return classify(err)
			}
			for _, n := range nets {
				if n != req.Network {
					others = true
				}
			}
		}
		var err error
		res.Records, err = h.Leave(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy), others)
		return hostChangeError(err)
	})
	return res, err
}

// RoutedClusters lists the host's routed clusters, from their rules.
func (a *Activities) RoutedClusters(ctx context.Context) ([]hostchange.Member, error) {
	if a.HostChanges == nil {
		return nil, nil
	}
	var out []hostchange.Member
	err := a.heartbeating(ctx, func() (err error) {
		out, err = a.HostChanges.Members(ctx)
		return hostChangeError(err)
	})
	return out, err
}

// ReadAuditLog returns the host's audit records that req selects.
func (a *Activities) ReadAuditLog(ctx context.Context, req api.AuditRequest) (api.AuditLog, error) {
	if a.HostChanges == nil || a.HostChanges.Audit == nil {
		return api.AuditLog{}, badInput("this worker keeps no audit log (it makes no host changes)", nil)
	}
	log := api.AuditLog{Host: a.HostChanges.Name, Path: a.HostChanges.Audit.Path}
	// One line a change: a pending record is shown only when its outcome
	// was never recorded.
	recs, skipped, err := a.HostChanges.Audit.ReadSettled(func(r hostchange.Record) bool {
		return req.Cluster == "" || r.Cluster == req.Cluster
	})
	if err != nil {
		return log, err
	}
	if req.Last > 0 && len(recs) > req.Last {
		recs = recs[len(recs)-req.Last:]
	}
	log.Records, log.Skipped = recs, skipped
	return log, nil
}

func (a *Activities) hostChanges(requireRoot bool) (*hostchange.Host, error) {
	if a.HostChanges == nil || a.HostChanges.Audit == nil {
		return nil, badInput("this worker was started without an audit log, so it makes no host changes: start hpcvm-worker with --audit-log", nil)
	}
	if requireRoot && os.Geteuid() != 0 {
		return nil, badInput(fmt.Sprintf("the worker runs as uid %d and host_configuration.security.require_root_access is true: run hpcvm-worker as root, or set it false if the worker may change the firewall otherwise (capabilities)", os.Geteuid()), nil)
	}
	return a.HostChanges, nil
}

// hostChangeError makes a change the host or its configuration refuses
// final, and so a change not made because the audit log cannot be written
// (retrying cannot repair the log); anything else (a busy xtables lock, a
// slow iptables) is retried.
func hostChangeError(err error) error {
	var refused *hostchange.RefusedError
	if errors.As(err, &refused) {
		return temporal.NewNonRetryableApplicationError(refused.Msg, api.ErrTypeBadInput, nil)
	}
	var audit *hostchange.AuditError
	if errors.As(err, &audit) {
		return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeInvalidState, nil)
	}
	return err
}

// DiscoveryRecordExists says whether the cluster's record is in req.Dir
// already (a file of its name that is not the cluster's is an error).
func (a *Activities) DiscoveryRecordExists(ctx context.Context, req api.DiscoveryRequest) (bool, error) {
	h, err := a.hostChanges(false)
	if err != nil {
		return false, err
	}
	if _, err := checkDir(discoveryDirField, req.Dir, a.DiscoveryRoots, "--discovery-root"); err != nil {
		return false, err
	}
	exists, err := h.RecordExists(hostchange.DiscoveryFile(req.Dir, req.Cluster), req.Cluster)
	return exists, hostChangeError(err)
}

// WriteDiscoveryRecord writes the cluster's service discovery record, in
// a directory the worker allows (--discovery-root), recording the change.
func (a *Activities) WriteDiscoveryRecord(ctx context.Context, req api.DiscoveryRequest) (api.HostChangeResult, error) {
	var res api.HostChangeResult
	err := a.heartbeating(ctx, func() error {
		h, err := a.hostChanges(req.RequireRoot)
		if err != nil {
			return err
		}
		if err := a.CheckHostPaths(ctx, api.PathsRequest{DiscoveryDir: req.Dir}); err != nil {
			return err
		}
		doc, err := hostchange.RegistryDocument(req.Cluster, req.Nodes)
		if err != nil {
			return badInput("service discovery record: "+err.Error(), err)
		}
		res.Records, err = h.WriteRecord(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy),
			hostchange.DiscoveryFile(req.Dir, req.Cluster), doc)
		return hostChangeError(err)
	})
	return res, err
}

// RemoveDiscoveryRecord removes the record hpcvm wrote for the cluster
// (the audit log says where; a destroy also looks for the cluster's marked
// record in each --discovery-root, in case its record was lost); nothing
// to remove is success.
func (a *Activities) RemoveDiscoveryRecord(ctx context.Context, req api.DiscoveryRequest) (api.HostChangeResult, error) {
	return a.undoHostChange(ctx, func(h *hostchange.Host) ([]hostchange.Record, error) {
		only := ""
		if req.Dir != "" {
			only = hostchange.DiscoveryFile(req.Dir, req.Cluster)
		}
		return h.RemoveRecord(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy), only, a.DiscoveryRoots)
	})
}

// PruneDiscoveryRecord takes destroyed VMs out of the cluster's record
// (the audit log says where it is); a cluster without one changes nothing.
func (a *Activities) PruneDiscoveryRecord(ctx context.Context, req api.DiscoveryRequest) (api.HostChangeResult, error) {
	return a.undoHostChange(ctx, func(h *hostchange.Host) ([]hostchange.Record, error) {
		return h.PruneRecord(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy), req.VMs)
	})
}

// undoHostChange runs an undo of host changes, recorded as undo says; a
// worker that makes no host changes has none to undo.
func (a *Activities) undoHostChange(ctx context.Context, undo func(*hostchange.Host) ([]hostchange.Record, error)) (api.HostChangeResult, error) {
	var res api.HostChangeResult
	if a.HostChanges == nil || a.HostChanges.Audit == nil {
		return res, nil
	}
	err := a.heartbeating(ctx, func() (err error) {
		res.Records, err = undo(a.HostChanges)
		return hostChangeError(err)
	})
	return res, err
}

// changeMeta says who asked for a host change, for which cluster, and the
// workflow run the activity works for (empty outside one).
func changeMeta(ctx context.Context, cluster, requestedBy string) hostchange.Meta {
	m := hostchange.Meta{Cluster: cluster, RequestedBy: requestedBy}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		m.WorkflowID, m.RunID = info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	}
	return m
}

// ResolverEntryExists says whether the cluster's entry is in req.Dir
// already (a file of its name that is not the cluster's is an error).
func (a *Activities) ResolverEntryExists(ctx context.Context, req api.ResolverRequest) (bool, error) {
	h, err := a.hostChanges(false)
	if err != nil {
		return false, err
	}
	// Before anything exists: a worker that cannot reload the resolver
	// would fail the step after the network was made.
	if len(h.ResolverReload) == 0 {
		return false, badInput("the worker on host "+h.Name+" has no --resolver-reload command, so the host's resolver would never read the cluster's entry: start hpcvm-worker with --resolver-reload (e.g. \"systemctl restart dnsmasq\"), or set enable_host_dns_integration false", nil)
	}
	if _, err := checkDir(resolverDirField, req.Dir, a.ResolverRoots, "--resolver-root"); err != nil {
		return false, err
	}
	exists, err := h.ResolverExists(hostchange.ResolverFile(req.Dir, req.Cluster), req.Cluster)
	return exists, hostChangeError(err)
}

// WriteResolverEntry teaches the host's resolver the cluster's domain: its
// drop-in, in a directory the worker allows (--resolver-root), then the
// worker's reload command; each recorded.
func (a *Activities) WriteResolverEntry(ctx context.Context, req api.ResolverRequest) (api.HostChangeResult, error) {
	var res api.HostChangeResult
	err := a.heartbeating(ctx, func() error {
		h, err := a.hostChanges(req.RequireRoot)
		if err != nil {
			return err
		}
		if err := a.CheckHostPaths(ctx, api.PathsRequest{ResolverDir: req.Dir}); err != nil {
			return err
		}
		entry, err := hostchange.ResolverEntry(req.Cluster, req.Domain, req.Gateway)
		if err != nil {
			return badInput("host resolver entry: "+err.Error(), err)
		}
		res.Records, err = h.WriteResolver(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy), hostchange.ResolverFile(req.Dir, req.Cluster), entry)
		return hostChangeError(err)
	})
	return res, err
}

// RemoveResolverEntry removes the entries hpcvm wrote for the cluster (the
// audit log says where; a destroy also looks for the cluster's marked
// drop-in in each --resolver-root, in case its record was lost) and
// reloads the resolver; nothing to remove (and no reload owed) is success.
func (a *Activities) RemoveResolverEntry(ctx context.Context, req api.ResolverRequest) (api.HostChangeResult, error) {
	return a.undoHostChange(ctx, func(h *hostchange.Host) ([]hostchange.Record, error) {
		only := ""
		if req.Dir != "" {
			only = hostchange.ResolverFile(req.Dir, req.Cluster)
		}
		return h.RemoveResolver(ctx, changeMeta(ctx, req.Cluster, req.RequestedBy), only, a.ResolverRoots)
	})
}

// PendingHostChanges looks, without changing anything, at which of the
// host changes req names are missing: a routing that a join would change
// (forwarding off, a jump missing or not first, a rule of the cluster
// missing), a registry file or resolver entry that is absent or differs.
// Anything it cannot tell counts as pending.
func (a *Activities) PendingHostChanges(ctx context.Context, req api.PendingRequest) (api.PendingChanges, error) {
	var p api.PendingChanges
	h, err := a.hostChanges(false)
	if err != nil {
		return p, err
	}
	if r := req.Routing; r != nil {
		joined, err := h.Joined(ctx, hostchange.Member{Cluster: r.Cluster, Bridge: r.Bridge, Subnet: r.Subnet})
		if err != nil {
			return p, hostChangeError(err)
		}
		p.Routing = !joined
	}
	// The roots first: no file outside them is read, not even to answer.
	if d := req.Discovery; d != nil {
		dir, err := checkUnder(discoveryDirField, d.Dir, a.DiscoveryRoots, "--discovery-root")
		if err != nil {
			return p, err
		}
		p.Discovery = !dir.Exists
	}
	if r := req.Resolver; r != nil {
		dir, err := checkUnder(resolverDirField, r.Dir, a.ResolverRoots, "--resolver-root")
		if err != nil {
			return p, err
		}
		p.Resolver = !dir.Exists
	}
	if d := req.Discovery; d != nil && !p.Discovery {
		doc, err := hostchange.RegistryDocument(d.Cluster, d.Nodes)
		if err != nil {
			return p, badInput("service discovery record: "+err.Error(), err)
		}
		ok, err := h.RecordCurrent(hostchange.DiscoveryFile(d.Dir, d.Cluster), d.Cluster, doc)
		if err != nil {
			return p, hostChangeError(err)
		}
		p.Discovery = !ok
	}
	if r := req.Resolver; r != nil && !p.Resolver {
		entry, err := hostchange.ResolverEntry(r.Cluster, r.Domain, r.Gateway)
		if err != nil {
			return p, badInput("host resolver entry: "+err.Error(), err)
		}
		ok, err := h.ResolverCurrent(hostchange.ResolverFile(r.Dir, r.Cluster), r.Cluster, entry)
		if err != nil {
			return p, hostChangeError(err)
		}
		p.Resolver = !ok
	}
	return p, nil
}
