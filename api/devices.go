package api

import (
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
}

// ClaimResult lists the devices this request claimed anew (the others the
// cluster held already).
type ClaimResult struct {
	Added []string `json:"added,omitempty"`
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
}

// LedgerState is the ledger workflow's input: the claims carried over a
// continue-as-new.
type LedgerState struct {
	Claims map[string]DeviceClaim `json:"claims"`
}
