package api

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/internal/templates"
)

// Call is one activity call as an operator reads it: what it does to which
// libvirt object, and the XML document it hands libvirt, if any. The
// workflows name their steps with it (the Temporal Web UI shows the
// summary of each) and the XML trace of a run is made from it.
type Call struct {
	Activity string // the activity's type name
	// Kind is the libvirt object acted on: network, pool, volume, domain;
	// "host" or "cluster" for steps that only read.
	Kind string
	// Operation is what is done to it, in the XML trace's words: create,
	// define, upload, start, shutdown, destroy, undefine, delete,
	// add-host, delete-host; read-only steps: inspect, probe, check.
	Operation string
	Target    string // the object's name
	// XML is the document this call hands libvirt: the object's definition,
	// or for a DHCP lease the <host> element of the network update. Calls
	// that give libvirt only a name (start, delete) have none.
	XML string
	// Changes says the call changes libvirt (a trace records only those).
	Changes bool
}

// Summary is the call in one line: "define domain hpc-compute-02".
func (c Call) Summary() string {
	if c.Target == "" {
		return c.Operation + " " + c.Kind
	}
	return c.Operation + " " + c.Kind + " " + c.Target
}

// Activity type names, as the worker registers them (the method names).
const (
	ActEnsureNetwork     = "EnsureNetwork"
	ActDeleteNetwork     = "DeleteNetwork"
	ActEnsureDHCPHost    = "EnsureDHCPHost"
	ActDeleteDHCPHost    = "DeleteDHCPHost"
	ActEnsurePool        = "EnsurePool"
	ActDeletePool        = "DeletePool"
	ActUploadBaseImage   = "UploadBaseImage"
	ActEnsureVolume      = "EnsureVolume"
	ActDeleteVolume      = "DeleteVolume"
	ActEnsureDomain      = "EnsureDomain"
	ActStartDomain       = "StartDomain"
	ActShutdownDomain    = "ShutdownDomain"
	ActForceOffDomain    = "ForceOffDomain"
	ActDeleteDomain      = "DeleteDomain"
	ActWaitDomainsOff    = "WaitDomainsOff"
	ActPreflight         = "Preflight"
	ActDescribe          = "Describe"
	ActInspectCluster    = "InspectCluster"
	ActProbeHost         = "ProbeHost"
	ActValidatePCI       = "ValidatePCI"
	ActCheckHostPaths    = "CheckHostPaths"
	ActInspectBaseImage  = "InspectBaseImage"
	ActPoolSpace         = "PoolSpace"
	ActDomainDifferences = "DomainDifferences"
	ActClaimDevices      = "ClaimDevices"
	ActReleaseDevices    = "ReleaseDevices"
	ActBindCluster       = "BindCluster"
	// ReadLedger and ClusterBindings are the preflight's reads of the
	// host's ledger and the cluster registry, made in process.
	ActReadLedger            = "ReadLedger"
	ActClusterBindings       = "ClusterBindings"
	ActUnbindCluster         = "UnbindCluster"
	ActJoinRouting           = "JoinRouting"
	ActLeaveRouting          = "LeaveRouting"
	ActRoutedClusters        = "RoutedClusters"
	ActReadAuditLog          = "ReadAuditLog"
	ActWriteDiscoveryRecord  = "WriteDiscoveryRecord"
	ActRemoveDiscoveryRecord = "RemoveDiscoveryRecord"
	ActDiscoveryRecordExists = "DiscoveryRecordExists"
	ActPruneDiscoveryRecord  = "PruneDiscoveryRecord"
	ActPendingHostChanges    = "PendingHostChanges"
	ActWriteResolverEntry    = "WriteResolverEntry"
	ActRemoveResolverEntry   = "RemoveResolverEntry"
	ActResolverEntryExists   = "ResolverEntryExists"
)

// DescribeCall describes a call of activity from its input, which decode
// reads into a pointer (a history's payload, or the workflow's argument).
// An activity it does not know, or an input it cannot read, is described
// by the activity's name alone.
func DescribeCall(activity string, decode func(into any) error) Call {
	c := Call{Activity: activity, Kind: "step", Operation: activity}
	var (
		xmlDoc string
		dom    DomainRef
		vol    VolumeRef
		volReq VolumeRequest
		up     UploadRequest
		net    NetworkRef
		pool   PoolRef
		lease  DHCPHostRequest
		names  []string
		path   string
	)
	switch activity {
	case ActEnsureNetwork, ActEnsurePool, ActEnsureDomain:
		if decode(&xmlDoc) != nil {
			return c
		}
		c.Kind = map[string]string{ActEnsureNetwork: "network", ActEnsurePool: "pool", ActEnsureDomain: "domain"}[activity]
		c.Operation = map[string]string{ActEnsureNetwork: "create", ActEnsurePool: "create", ActEnsureDomain: "define"}[activity]
		c.Target, c.XML, c.Changes = documentName(xmlDoc), xmlDoc, true
	case ActEnsureVolume:
		if decode(&volReq) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target, c.XML, c.Changes = "volume", "create", volReq.Pool+"/"+documentName(volReq.XML), volReq.XML, true
	case ActUploadBaseImage:
		if decode(&up) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target, c.XML, c.Changes = "volume", "upload", up.Pool+"/"+up.Volume, up.XML, true
	case ActDeleteVolume:
		if decode(&vol) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target, c.Changes = "volume", "delete", vol.Pool+"/"+vol.Name, true
	case ActStartDomain, ActShutdownDomain, ActForceOffDomain, ActDeleteDomain:
		if decode(&dom) != nil {
			return c
		}
		c.Kind, c.Target, c.Changes = "domain", dom.Name, true
		c.Operation = map[string]string{ActStartDomain: "start", ActShutdownDomain: "shutdown", ActForceOffDomain: "destroy", ActDeleteDomain: "undefine"}[activity]
	case ActDeleteNetwork:
		if decode(&net) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target, c.Changes = "network", "delete", net.Name, true
	case ActDeletePool:
		if decode(&pool) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target, c.Changes = "pool", "delete", pool.Name, true
	case ActEnsureDHCPHost, ActDeleteDHCPHost:
		if decode(&lease) != nil {
			return c
		}
		c.Kind, c.Target, c.Changes = "network", lease.Network.Name, true
		c.Operation = map[string]string{ActEnsureDHCPHost: "add-host", ActDeleteDHCPHost: "delete-host"}[activity]
		c.XML, _ = templates.DHCPHost(lease.Lease)
	case ActWaitDomainsOff:
		if decode(&names) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "domains", "wait-off", fmt.Sprintf("(%d)", len(names))
	case ActInspectCluster:
		var req InspectRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "cluster", "inspect", req.Cluster
	case ActProbeHost:
		c.Kind, c.Operation = "host", "probe"
	case ActDescribe:
		var req Request
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "cluster", "describe", req.Spec.Cluster.Name
	case ActPreflight:
		var req PreflightRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "cluster", "preflight", req.Request.Spec.Cluster.Name
	case ActValidatePCI:
		var req PCIRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "PCI devices", "validate", strings.Join(req.Addresses, ", ")
	case ActCheckHostPaths:
		c.Kind, c.Operation = "host paths", "check"
	case ActInspectBaseImage:
		if decode(&path) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "base image", "inspect", path
	case ActPoolSpace:
		if decode(&path) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "pool space", "measure", path
	case ActDomainDifferences:
		var docs []string
		if decode(&docs) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "domains", "compare", fmt.Sprintf("(%d)", len(docs))
	case ActClaimDevices:
		var req ClaimRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "host ledger", "claim", fmt.Sprintf("%d device(s), %d VM(s) for %s", len(req.Devices), len(req.Resources), req.Cluster)
	case ActReleaseDevices:
		var req ReleaseRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "host ledger", "release", strings.TrimSpace(req.Cluster+" "+req.VM)
	case ActReadLedger:
		var host string
		if decode(&host) != nil {
			return c
		}
		c.Kind, c.Operation, c.Target = "host ledger", "read", host
	case ActClusterBindings:
		c.Kind, c.Operation = "cluster registry", "read"
	case ActBindCluster, ActUnbindCluster:
		var req BindRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Target = "cluster registry", req.Cluster+" on "+req.Host
		c.Operation = map[string]string{ActBindCluster: "bind", ActUnbindCluster: "unbind"}[activity]
	case ActJoinRouting, ActLeaveRouting:
		var req RoutingRequest
		if decode(&req) != nil {
			return c
		}
		// A change of the host, not of libvirt: the audit log, not the
		// XML trace, records it.
		c.Kind, c.Target = "host routing", req.Bridge
		c.Operation = map[string]string{ActJoinRouting: "join", ActLeaveRouting: "leave"}[activity]
		if c.Target == "" {
			c.Target = req.Cluster
		}
	case ActRoutedClusters:
		c.Kind, c.Operation = "routed clusters", "list"
	case ActReadAuditLog:
		c.Kind, c.Operation = "audit log", "read"
	case ActPendingHostChanges:
		c.Kind, c.Operation = "host changes", "check"
	case ActWriteDiscoveryRecord, ActRemoveDiscoveryRecord, ActDiscoveryRecordExists, ActPruneDiscoveryRecord:
		var req DiscoveryRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Target = "service discovery record", req.Cluster
		c.Operation = map[string]string{ActWriteDiscoveryRecord: "write", ActRemoveDiscoveryRecord: "remove", ActDiscoveryRecordExists: "check", ActPruneDiscoveryRecord: "prune"}[activity]
	case ActWriteResolverEntry, ActRemoveResolverEntry, ActResolverEntryExists:
		var req ResolverRequest
		if decode(&req) != nil {
			return c
		}
		c.Kind, c.Target = "host resolver entry", req.Cluster
		if req.Domain != "" {
			c.Target = req.Domain
		}
		c.Operation = map[string]string{ActWriteResolverEntry: "write", ActRemoveResolverEntry: "remove", ActResolverEntryExists: "check"}[activity]
	}
	return c
}

// documentName is the <name> of a libvirt XML document ("" if unreadable).
func documentName(doc string) string {
	var d struct {
		Name string `xml:"name"`
	}
	if xml.Unmarshal([]byte(doc), &d) != nil {
		return ""
	}
	return d.Name
}
