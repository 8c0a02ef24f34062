package api

import "github.com/hpcvm/hpcvm/cluster"

// Preflight modes: a start stops at the first check that fails and may
// activate an inactive pool to read it; a plan (validate, plan) runs every
// check it can and changes nothing.
const (
	PreflightStart = "start"
	PreflightPlan  = "plan"
)

// PreflightRequest asks a host's worker to run the whole preflight of a
// cluster (activity Preflight): every check, the plan, the documents.
type PreflightRequest struct {
	Request Request `json:"request"`
	Mode    string  `json:"mode"`
}

// ClusterPlan is what the preflight found and decided, recorded once in
// the run's history: the checks and their outcomes, the negotiated plan,
// and for a start the saga to execute (Steps). Everything that depends on
// the file, the templates or the host is decided here, on the host; the
// workflow only executes it, so a change of those rules is never a change
// of the workflow's decisions.
type ClusterPlan struct {
	Checks []Check `json:"checks"`
	// Refusal is the check that stopped a start: nothing was created.
	Refusal   *Refusal                 `json:"refusal,omitempty"`
	Plan      cluster.Plan             `json:"plan"`
	Host      cluster.HostCapabilities `json:"host"`
	Objects   []PlannedObject          `json:"objects,omitempty"`
	Documents []Document               `json:"documents,omitempty"`
	NotInFile []string                 `json:"not_in_file,omitempty"`
	// Steps is the start's saga; nil when the preflight refused, and in a
	// plan.
	Steps *StartSteps `json:"steps,omitempty"`
}

// Refusal is a check that failed in a start.
type Refusal struct {
	Check string `json:"check"`
	// Short is what start's progress shows on the failed step ("" for
	// the message itself).
	Short   string `json:"short,omitempty"`
	Message string `json:"message"`
	// Type is the error type the run fails with (BadInput, NotOwned…).
	Type string `json:"type"`
	// OfRequest says the request itself was refused (the file, a
	// confirmation not given): the run fails with the message alone,
	// before any step.
	OfRequest bool `json:"of_request,omitempty"`
}

// StartSteps is a start's saga as data: each object with its document,
// whether it existed before the run (what the run created is what the
// rollback removes), and the host changes with their requests.
type StartSteps struct {
	HostChanges cluster.HostChangesPlan `json:"host_changes"`
	// Devices are the exclusive PCI functions the run claims in the
	// host's device ledger before anything is created.
	Devices []DeviceClaim `json:"devices,omitempty"`
	// Resources are every VM's pinned CPUs, hugepages and memory, claimed
	// in the host's ledger with the devices.
	Resources []ResourceClaim `json:"resources,omitempty"`
	// Bind: the run binds the cluster to its host in the cluster registry
	// before anything else (false in plans recorded before the registry).
	Bind     bool            `json:"bind,omitempty"`
	Network  ObjectStep      `json:"network"`
	Routing  *RoutingRequest `json:"routing,omitempty"`
	Resolver *ResolverStep   `json:"resolver,omitempty"`
	Pool     ObjectStep      `json:"pool"`
	Base     BaseStep        `json:"base"`
	// Discovery is the registry record, written once the VMs run.
	Discovery *DiscoveryStep `json:"discovery,omitempty"`
	VMs       []VMSteps      `json:"vms"`
	// ScaleOut says the cluster had domains before the run: a node that
	// fails is rolled back alone.
	ScaleOut bool     `json:"scale_out,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// ObjectStep is a libvirt network or pool of the plan.
type ObjectStep struct {
	Name    string `json:"name"`
	UUID    string `json:"uuid"`
	XML     string `json:"xml"`
	Existed bool   `json:"existed,omitempty"`
}

// BaseStep is the base image's volume and its upload.
type BaseStep struct {
	Upload  UploadRequest `json:"upload"`
	Existed bool          `json:"existed,omitempty"`
}

// ResolverStep is the host resolver's entry of the cluster, and whether
// hpcvm's entry was there before the run (the rollback leaves it).
type ResolverStep struct {
	Request ResolverRequest `json:"request"`
	Existed bool            `json:"existed,omitempty"`
}

// DiscoveryStep is the cluster's service discovery record, and whether
// hpcvm's record was there before the run.
type DiscoveryStep struct {
	Request DiscoveryRequest `json:"request"`
	Existed bool             `json:"existed,omitempty"`
}

// VMSteps are one VM's steps: its lease on a network that existed, its
// volume, its domain, its start.
type VMSteps struct {
	Name   string `json:"name"`
	Domain string `json:"domain"`
	// Lease is set when the run adds the VM's lease to a network that
	// existed (a new network has every lease in its XML); LeaseHadMAC
	// says the network had a lease for the VM's MAC already (the rollback
	// leaves it).
	Lease         *DHCPHostRequest `json:"lease,omitempty"`
	LeaseHadMAC   bool             `json:"lease_had_mac,omitempty"`
	Volume        VolumeRequest    `json:"volume"`
	VolumeName    string           `json:"volume_name"`
	VolumeExisted bool             `json:"volume_existed,omitempty"`
	DomainXML     string           `json:"domain_xml"`
	DomainExisted bool             `json:"domain_existed,omitempty"`
	WasRunning    bool             `json:"was_running,omitempty"`
	// ExclusiveDevices: the VM holds claimed PCI functions, which a
	// node rolled back alone gives back.
	ExclusiveDevices bool `json:"exclusive_devices,omitempty"`
	// Claims: the VM holds CPUs, hugepages and memory in the host's
	// ledger, which a node rolled back alone gives back.
	Claims bool `json:"claims,omitempty"`
}

// Report is the plan as validate and plan show it.
func (p ClusterPlan) Report() PlanReport {
	return PlanReport{Checks: p.Checks, Plan: p.Plan, Host: p.Host, Objects: p.Objects, Documents: p.Documents, NotInFile: p.NotInFile}
}
