package api

import "github.com/hpcvm/hpcvm/internal/hostchange"

// RoutingRequest names a cluster's network for the routing between the
// host's routed clusters, and how host_configuration lets it be made.
type RoutingRequest struct {
	Cluster string `json:"cluster"`
	Network string `json:"network"` // the cluster's libvirt network
	Bridge  string `json:"bridge"`
	Subnet  string `json:"subnet"`
	// EnableIPForwarding lets the step turn IP forwarding on.
	EnableIPForwarding bool `json:"enable_ip_forwarding,omitempty"`
	// RequireRoot refuses the change unless the worker runs as root.
	RequireRoot bool `json:"require_root,omitempty"`
	// RequestedBy is who submitted the run, for the audit log.
	RequestedBy string `json:"requested_by,omitempty"`
}

// HostChangeResult lists what a host change step did, as the audit log
// has it.
type HostChangeResult struct {
	Records []hostchange.Record `json:"records"`
}

// Changed says the step changed the host.
func (r HostChangeResult) Changed() bool {
	for _, rec := range r.Records {
		if rec.Outcome == hostchange.OutcomeDone {
			return true
		}
	}
	return false
}

// AuditRequest selects audit records: a cluster's ("" for every one), the
// newest Last of them (0 for all).
type AuditRequest struct {
	Cluster string `json:"cluster,omitempty"`
	Last    int    `json:"last,omitempty"`
}

// AuditLog is a host's audit log, as ReadAuditLog found it.
type AuditLog struct {
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Records []hostchange.Record `json:"records"`
	// Skipped counts lines that are not records (a torn write).
	Skipped int `json:"skipped,omitempty"`
}

// DiscoveryRequest is the cluster's service discovery record: where it
// goes and what it lists.
type DiscoveryRequest struct {
	Cluster string `json:"cluster"`
	// Dir is where the record goes; for a removal, set it to remove only
	// the record there (a rollback), leave it empty for all (destroy).
	Dir         string            `json:"dir,omitempty"`
	RequireRoot bool              `json:"require_root,omitempty"`
	Nodes       []hostchange.Node `json:"nodes,omitempty"`
	RequestedBy string            `json:"requested_by,omitempty"`
	// VMs are the VMs a prune takes out of the record.
	VMs []string `json:"vms,omitempty"`
}

// ResolverRequest is the host resolver's entry of a cluster: where it goes
// and what it says.
type ResolverRequest struct {
	Cluster string `json:"cluster"`
	// Dir is the resolver's drop-in directory; for a removal, set it to
	// remove only the entry there (a rollback), leave it empty for all
	// (destroy).
	Dir         string `json:"dir,omitempty"`
	Domain      string `json:"domain,omitempty"`  // the cluster's domain, <cluster>.local
	Gateway     string `json:"gateway,omitempty"` // where its network's DNS answers
	RequireRoot bool   `json:"require_root,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

// PendingRequest names the host changes a start would make, as it would
// ask for them.
type PendingRequest struct {
	Routing   *RoutingRequest   `json:"routing,omitempty"`
	Discovery *DiscoveryRequest `json:"discovery,omitempty"`
	Resolver  *ResolverRequest  `json:"resolver,omitempty"`
}

// PendingChanges says which of them are not in place on the host: what a
// start would change, and so what a person must confirm.
type PendingChanges struct {
	Routing   bool `json:"routing,omitempty"`
	Discovery bool `json:"discovery,omitempty"`
	Resolver  bool `json:"resolver,omitempty"`
}

// Any says something would change.
func (p PendingChanges) Any() bool { return p.Routing || p.Discovery || p.Resolver }
