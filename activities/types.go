package activities

import "github.com/hpcvm/hpcvm/cluster"

// ImageInfo describes the operator's base image as found on the host.
type ImageInfo struct {
	Path        string `json:"path"`
	Format      string `json:"format"` // qcow2 or raw
	VirtualSize uint64 `json:"virtual_size"`
	FileSize    int64  `json:"file_size"`
}

// NetworkRef names a network and the bridge that proves it is ours.
type NetworkRef struct {
	Name   string `json:"name"`
	Bridge string `json:"bridge"`
}

// PoolRef names a pool and the directory that proves it is ours.
type PoolRef struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// VolumeRef names a volume in a pool.
type VolumeRef struct {
	Pool string `json:"pool"`
	Name string `json:"name"`
}

// VolumeRequest is a volume to ensure in a pool.
type VolumeRequest struct {
	Pool string `json:"pool"`
	XML  string `json:"xml"`
}

// UploadRequest streams Source into the pool volume described by XML.
type UploadRequest struct {
	Pool   string `json:"pool"`
	Volume string `json:"volume"`
	XML    string `json:"xml"`
	Source string `json:"source"`
	// Existed says the volume was there before this run began: it is then
	// verified against Source instead of uploaded.
	Existed bool `json:"existed"`
}

// UploadResult says what the upload did.
type UploadResult struct {
	Bytes       int64 `json:"bytes"`        // bytes sent by this activity
	ResumedFrom int64 `json:"resumed_from"` // offset a retry resumed at
	AlreadyDone bool  `json:"already_done"` // a complete volume was found
}

// DomainRef names a domain and the cluster that must own it.
type DomainRef struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster"`
}

// EnsureResult says whether the object was created by this call.
type EnsureResult struct {
	Created bool `json:"created"`
}

// Inventory is what exists in libvirt of one cluster's plan.
type Inventory struct {
	Network    *NetworkState          `json:"network,omitempty"`
	Pool       *PoolState             `json:"pool,omitempty"`
	BaseVolume *VolumeState           `json:"base_volume,omitempty"`
	Volumes    map[string]VolumeState `json:"volumes,omitempty"` // by volume name
	Domains    []DomainState          `json:"domains,omitempty"`
}

// NetworkState is the cluster network as libvirt has it.
type NetworkState struct {
	Name   string `json:"name"`
	Bridge string `json:"bridge"`
	Active bool   `json:"active"`
}

// PoolState is the cluster pool as libvirt has it.
type PoolState struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	Active     bool   `json:"active"`
	Capacity   uint64 `json:"capacity"`
	Allocation uint64 `json:"allocation"`
	Available  uint64 `json:"available"`
}

// VolumeState is one volume as libvirt has it.
type VolumeState struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	Capacity   uint64 `json:"capacity"`
	Allocation uint64 `json:"allocation"`
}

// DomainState is one domain that is either named like one of the plan's VMs
// or carries hpcvm metadata naming this cluster.
type DomainState struct {
	Name      string `json:"name"`
	VM        string `json:"vm,omitempty"`   // from the metadata
	Role      string `json:"role,omitempty"` // from the metadata
	State     string `json:"state"`
	Owned     bool   `json:"owned"` // hpcvm metadata names this cluster
	MemoryMiB uint64 `json:"memory_mib"`
	VCPUs     uint   `json:"vcpus"`
}

// Running reports whether the domain has a QEMU process.
func (d DomainState) Running() bool {
	return d.State != "shut off" && d.State != "crashed" && d.State != ""
}

// Domain returns the state of the named domain.
func (inv Inventory) Domain(name string) (DomainState, bool) {
	for _, d := range inv.Domains {
		if d.Name == name {
			return d, true
		}
	}
	return DomainState{}, false
}

// InspectRequest asks for the inventory of a plan.
type InspectRequest struct {
	Plan cluster.Plan `json:"plan"`
}
