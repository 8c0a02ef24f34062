package api

import (
	"fmt"
	"strings"
	"time"
)

// DeviceClaim is one host PCI function held by a cluster's VM.
type DeviceClaim struct {
	Address string    `json:"address"`
	Cluster string    `json:"cluster"`
	VM      string    `json:"vm"`
	RunID   string    `json:"run_id"` // the start that claimed it
	Since   time.Time `json:"since"`
	// Holders are the cluster's VMs whose domains name the device, each
	// with the start that added it: a device moved to another VM in
	// cluster.yaml is named by the old domain until that one is
	// destroyed, and the claim lasts until no VM names it. Empty in
	// claims recorded before: VM and RunID are then the one holder.
	Holders []ClaimHolder `json:"holders,omitempty"`
}

// ClaimHolder is one VM of the claiming cluster that names the device.
type ClaimHolder struct {
	VM    string `json:"vm"`
	RunID string `json:"run_id"`
}

// NewDeviceClaim is the claim of a device no one held.
func NewDeviceClaim(address, cluster, vm, runID string, since time.Time) DeviceClaim {
	return DeviceClaim{Address: address, Cluster: cluster, VM: vm, RunID: runID, Since: since, Holders: []ClaimHolder{{VM: vm, RunID: runID}}}
}

// HolderList is the claim's holders, also for a claim recorded before
// there were several.
func (c DeviceClaim) HolderList() []ClaimHolder {
	if len(c.Holders) == 0 {
		return []ClaimHolder{{VM: c.VM, RunID: c.RunID}}
	}
	return c.Holders
}

// WithHolder is the claim with vm among its holders (added by runID if
// it was not one already).
func (c DeviceClaim) WithHolder(vm, runID string) DeviceClaim {
	hs := c.HolderList()
	for _, h := range hs {
		if h.VM == vm {
			return c
		}
	}
	c.Holders = append(append([]ClaimHolder{}, hs...), ClaimHolder{VM: vm, RunID: runID})
	return c
}

// WithoutHolders is the claim without the holders a release names: the
// VM's (vm), the run's (runID), or both; "" matches any. free says no
// holder is left, so the device is free.
func (c DeviceClaim) WithoutHolders(vm, runID string) (left DeviceClaim, free bool) {
	var kept []ClaimHolder
	for _, h := range c.HolderList() {
		if (vm == "" || h.VM == vm) && (runID == "" || h.RunID == runID) {
			continue
		}
		kept = append(kept, h)
	}
	if len(kept) == 0 {
		return DeviceClaim{}, true
	}
	c.Holders = kept
	c.VM, c.RunID = kept[0].VM, kept[0].RunID
	return c, false
}

// HolderNames are the VMs that hold the device, for messages.
func (c DeviceClaim) HolderNames() string {
	var names []string
	for _, h := range c.HolderList() {
		names = append(names, h.VM)
	}
	return strings.Join(names, ", ")
}

// ClaimRequest claims devices for a cluster's VMs on a host.
type ClaimRequest struct {
	Host    string        `json:"host"`
	Queue   string        `json:"queue"` // the host's task queue, where the ledger runs
	Cluster string        `json:"cluster"`
	RunID   string        `json:"run_id"`
	Devices []DeviceClaim `json:"devices"` // Address and VM
	// Resources are the VMs' CPUs, hugepages and memory (Cluster, RunID
	// and Since are the ledger's to fill in).
	Resources []ResourceClaim `json:"resources,omitempty"`
	// Capacity is the hugepages the host reserves, read when the claim
	// is made: what the ledger judges the pages claimed against.
	Capacity []HugepagePool `json:"capacity,omitempty"`
	// Adopt are the claims the host's libvirt shows for domains of
	// clusters (hpcvm's metadata) the ledger has no claim for: taken
	// into the ledger as they are, before the request is judged.
	Adopt []ResourceClaim `json:"adopt,omitempty"`
}

// ClaimResult lists the devices this request claimed anew (the others the
// cluster held already).
type ClaimResult struct {
	Added []string `json:"added,omitempty"`
	// ResourcesAdded are the VMs whose resource claims this request made
	// or changed.
	ResourcesAdded []string `json:"resources_added,omitempty"`
}

// ReleaseRequest frees a cluster's claims: all of them, those of one VM,
// or those one run made (a failed start's compensation).
type ReleaseRequest struct {
	Host    string `json:"host"`
	Queue   string `json:"queue"`
	Cluster string `json:"cluster"`
	VM      string `json:"vm,omitempty"`
	RunID   string `json:"run_id,omitempty"`
}

// ReleaseResult lists the devices freed.
type ReleaseResult struct {
	Released []string `json:"released,omitempty"`
	// ResourcesReleased are the VMs whose CPUs, hugepages and memory
	// were given back.
	ResourcesReleased []string `json:"resources_released,omitempty"`
}

// LedgerState is the ledger workflow's input: the claims carried over a
// continue-as-new.
type LedgerState struct {
	Claims map[string]DeviceClaim `json:"claims"`
	// Resources are the VMs' CPU, hugepage and memory claims, by
	// ResourceKey.
	Resources map[string]ResourceClaim `json:"resources,omitempty"`
}

// LedgerWorkflowID is the ID of a host's device ledger.
func LedgerWorkflowID(host string) string { return "hpcvm-devices-" + host }

// ClaimConflicts says which requested devices another cluster holds, or
// "" when none does. The ledger uses it in its validator and its handler.
func ClaimConflicts(claims map[string]DeviceClaim, req ClaimRequest) string {
	var held []string
	for _, d := range req.Devices {
		if c, ok := claims[d.Address]; ok && c.Cluster != req.Cluster {
			held = append(held, fmt.Sprintf("%s is claimed by cluster %s (VM %s) since %s", d.Address, c.Cluster, c.HolderNames(), c.Since.UTC().Format(time.RFC3339)))
		}
	}
	if len(held) == 0 {
		return ""
	}
	return fmt.Sprintf("exclusive_mode: %s on host %s; destroy that cluster (which frees its devices), or set exclusive_mode: false in both to share them one running cluster at a time",
		strings.Join(held, "; "), req.Host)
}

// The device ledger: one long-running workflow per host (DeviceLedger in
// package workflows) holds which cluster claims which host PCI function.
// Its updates run one at a time in the workflow, so two clusters that
// claim one device at the same moment cannot both get it; its state is
// durable, so a claim outlives every process.
const (
	LedgerWorkflowName = "DeviceLedger"
	LedgerUpdateClaim  = "claim"
	LedgerUpdateFree   = "release"
	LedgerQueryClaims  = "claims"
	// ErrTypeDeviceClaimed: another cluster holds a device.
	ErrTypeDeviceClaimed = "DeviceClaimed"
)
