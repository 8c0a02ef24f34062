package api

import (
	"time"

	"github.com/hpcvm/hpcvm/cluster"
)

// ImageInfo describes the operator's base image as found on the host.
type ImageInfo struct {
	Path        string `json:"path"`
	Format      string `json:"format"` // qcow2 or raw
	VirtualSize uint64 `json:"virtual_size"`
	FileSize    int64  `json:"file_size"`
	// Allocated is what the file takes on disk (holes excluded): what a
	// sparse upload writes into the pool.
	Allocated int64 `json:"allocated,omitempty"`
}

// NetworkRef names a network and the UUID that proves it is ours.
type NetworkRef struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

// PoolRef names a pool and the UUID that proves it is ours.
type PoolRef struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

// VolumeRef names a volume in a pool; the pool must carry PoolUUID, since a
// volume is ours only inside a pool that is ours.
type VolumeRef struct {
	Pool     string `json:"pool"`
	PoolUUID string `json:"pool_uuid"`
	Name     string `json:"name"`
}

// VolumeRequest is a volume to ensure in a pool of ours.
type VolumeRequest struct {
	Pool     string `json:"pool"`
	PoolUUID string `json:"pool_uuid"`
	XML      string `json:"xml"`
}

// DHCPHostRequest is one static lease to ensure in (or remove from) a
// network of ours.
type DHCPHostRequest struct {
	Network NetworkRef        `json:"network"`
	Lease   cluster.HostLease `json:"lease"`
}

// UploadRequest streams Source into the pool volume described by XML.
type UploadRequest struct {
	Pool     string `json:"pool"`
	PoolUUID string `json:"pool_uuid"`
	Volume   string `json:"volume"`
	XML      string `json:"xml"`
	Source   string `json:"source"`
	// Existed says the volume was there before this run began: it is then
	// verified against Source instead of uploaded.
	Existed bool `json:"existed"`
}

// UploadResult says what the upload did.
type UploadResult struct {
	Bytes       int64 `json:"bytes"`        // bytes sent by this activity
	ResumedFrom int64 `json:"resumed_from"` // offset a retry resumed at
	AlreadyDone bool  `json:"already_done"` // a complete volume was found
	// Notes are for the operator: e.g. the source changed since the base
	// volume was made from it, which is kept.
	Notes []string `json:"notes,omitempty"`
}

// DomainRef names a domain and the cluster that must own it.
type DomainRef struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster"`
}

// ShutdownRequest asks for the ACPI power button of a domain of the
// cluster to be pressed.
type ShutdownRequest struct {
	DomainRef
	// AwaitBoot, when set, is how long at most to wait first for a guest
	// that booted moments ago to answer (its guest agent connects, or it
	// takes a fresh DHCP lease): a guest still booting has no one
	// listening to the power button, and would ignore the press. Once it
	// has passed, the button is pressed whatever the guest shows.
	AwaitBoot time.Duration `json:"await_boot,omitempty"`
	// AwaitUntil, when set, ends that wait at this time whatever attempt
	// of the step is waiting: a retried step does not begin the wait anew
	// (AwaitBoot alone bounds it for a run recorded before AwaitUntil).
	AwaitUntil time.Time `json:"await_until,omitempty"`
	// BootedAt is when the domain's QEMU started (DomainState.StartedAt):
	// a DHCP lease taken before it is from an earlier boot.
	BootedAt time.Time `json:"booted_at,omitempty"`
}

// ShutdownResult says how the power button was pressed.
type ShutdownResult struct {
	// Waited is how long the guest was waited for before the press.
	Waited time.Duration `json:"waited,omitempty"`
	// Answer is how the guest showed it was up ("its guest agent is
	// connected"), or "" when the press did not wait or the guest did not
	// answer within AwaitBoot.
	Answer string `json:"answer,omitempty"`
}

// EnsureResult says whether the object was created by this call.
type EnsureResult struct {
	Created bool `json:"created"`
	// Kept, for an existing domain, names what of it differs from this
	// hpcvm's template though no cluster.yaml key sets it (changed by hand,
	// or defined by another version of hpcvm): it is kept as it is.
	Kept string `json:"kept,omitempty"`
}

// Inventory is what exists in libvirt of one cluster: the network and pool
// named like the cluster's (owned or not: a look-alike is reported, never
// touched), the volumes of the pool if it is ours, and the domains that
// carry hpcvm's metadata for the cluster or have a planned domain's name.
type Inventory struct {
	// BoundTo are the hosts the cluster registry binds the cluster to,
	// when asked (InspectRequest.Binding).
	BoundTo []string      `json:"bound_to,omitempty"`
	Network *NetworkState `json:"network,omitempty"`
	Pool    *PoolState    `json:"pool,omitempty"`
	// Volumes of the owned pool by name; nil when the pool is absent, not
	// ours, or inactive and not activated by the inspection.
	Volumes map[string]VolumeState `json:"volumes"`
	// VolumesListed says Volumes is the pool's full list (an empty pool
	// too); false when the pool is absent, not ours, or could not be read.
	VolumesListed bool          `json:"volumes_listed"`
	Domains       []DomainState `json:"domains,omitempty"`
	// ForeignDisks are files inside the pool's directory that domains
	// outside this cluster use: never deleted, whoever made them.
	ForeignDisks []string `json:"foreign_disks,omitempty"`
	// NetworkUsers are domains outside this cluster attached to its network
	// (or directly to its bridge).
	NetworkUsers []string `json:"network_users,omitempty"`
	// Unreadable are domains outside this cluster whose definition could
	// not be read: they may use anything of it.
	Unreadable []string `json:"unreadable,omitempty"`
	// LiveAddresses are the addresses the cluster's guests hold now, when
	// asked (InspectRequest.LiveAddresses): from the network's DHCP server
	// and from the guest agents that answer.
	LiveAddresses []LiveAddress `json:"live_addresses,omitempty"`
	// Routing is the cluster's membership of the host's routed clusters
	// (dns_mode routed), from its tagged firewall rules; nil if it has none.
	Routing *RoutingState `json:"routing,omitempty"`
	// AddressesInUse are the IPv4 subnets the host's other networks and
	// routes hold (InspectRequest.AddressesInUse): what a new cluster
	// network's range must not overlap.
	AddressesInUse []AddressInUse `json:"addresses_in_use,omitempty"`
	// AddressesListed says the inspection listed them (they may be none):
	// an inspection recorded before did not, and its check passed unsaid.
	AddressesListed bool `json:"addresses_listed,omitempty"`
}

// RoutingState is a routed cluster's place on the host.
type RoutingState struct {
	Member bool     `json:"member"`
	With   []string `json:"with,omitempty"` // the other routed clusters
	// Problem: the rules could not be read (membership unknown).
	Problem string `json:"problem,omitempty"`
	// Busy: they could not be read in time (the xtables lock is held),
	// rather than not at all.
	Busy bool `json:"busy,omitempty"`
}

// LiveAddress is an address a guest holds, by its interface's MAC.
type LiveAddress struct {
	MAC      string `json:"mac"`
	IP       string `json:"ip"`
	Source   string `json:"source"` // dhcp (the network's lease table) or agent (the QEMU guest agent)
	Hostname string `json:"hostname,omitempty"`
	// Expiry is when a DHCP lease runs out: the server's lease time after
	// the guest last asked for it.
	Expiry time.Time `json:"expiry,omitempty"`
}

// NetworkState is the network named like the cluster's, as libvirt has it.
type NetworkState struct {
	Name      string              `json:"name"`
	UUID      string              `json:"uuid"`
	Owned     bool                `json:"owned"` // carries the cluster's network UUID
	Bridge    string              `json:"bridge"`
	Address   string              `json:"address"`    // gateway/prefix
	DHCPRange string              `json:"dhcp_range"` // start-end
	Active    bool                `json:"active"`
	Leases    []cluster.HostLease `json:"leases,omitempty"` // static DHCP hosts
	// Forward is the network's forward mode: "nat", "none" (no <forward>),
	// or another libvirt mode on a network made by hand. Empty in the
	// results of runs recorded before it was read: unknown.
	Forward string `json:"forward,omitempty"`
	// DNSForwarders are the network's DNS forwarders, in order.
	DNSForwarders []cluster.DNSForwarder `json:"dns_forwarders,omitempty"`
}

// PoolState is the pool named like the cluster's, as libvirt has it.
type PoolState struct {
	Name       string `json:"name"`
	UUID       string `json:"uuid"`
	Owned      bool   `json:"owned"` // carries the cluster's pool UUID
	Path       string `json:"path"`
	Active     bool   `json:"active"`
	Capacity   uint64 `json:"capacity"`
	Allocation uint64 `json:"allocation"`
	Available  uint64 `json:"available"`
	// Problem says why an owned, inactive pool could not be started.
	Problem string `json:"problem,omitempty"`
	// DirMissing says the pool's directory does not exist: nothing is left
	// in it to lose, only the pool's definition.
	DirMissing bool `json:"dir_missing,omitempty"`
}

// VolumeState is one volume as libvirt has it.
//
// The base volume's Format is read from its own header as hpcvm reads a
// base image (qcow2 magic or raw), not taken from libvirt's probe, which
// may call a raw image whose bytes look like ISO, LUKS or QED by another
// format that no VM disk of hpcvm's can use.
type VolumeState struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Format      string `json:"format,omitempty"`
	Capacity    uint64 `json:"capacity"`
	Allocation  uint64 `json:"allocation"`
	BackingPath string `json:"backing_path,omitempty"`
	// Problem, set for the cluster's base volume only, says why no VM may
	// start on it (a backing or data file its header names, encryption, a
	// header that cannot be read): what the start's upload step would
	// refuse, so that validate can say it too.
	Problem string `json:"problem,omitempty"`
}

// DomainState is one domain that is either named like one of the plan's VMs
// or carries hpcvm metadata naming this cluster.
type DomainState struct {
	Name  string `json:"name"`
	VM    string `json:"vm,omitempty"`   // from the metadata
	Role  string `json:"role,omitempty"` // from the metadata
	State string `json:"state"`
	// Type is the domain type it really has: kvm, or qemu (TCG emulation).
	Type      string   `json:"type,omitempty"`
	Owned     bool     `json:"owned"` // hpcvm metadata names this cluster
	MemoryMiB uint64   `json:"memory_mib"`
	VCPUs     uint     `json:"vcpus"`
	Disks     []string `json:"disks,omitempty"`    // source files of its disks
	Networks  []string `json:"networks,omitempty"` // networks it is attached to
	// AgentConnected: a QEMU guest agent answers in the running guest.
	AgentConnected bool `json:"agent_connected,omitempty"`
	// StartedAt is when a running domain's QEMU started (zero when off or
	// not known): stop gives a guest that booted moments ago time to come
	// up before it presses the power button.
	StartedAt time.Time `json:"started_at,omitempty"`
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

// InspectRequest asks for the inventory of a cluster.
type InspectRequest struct {
	Cluster string `json:"cluster"`
	// PlannedDomains are domain names the current file plans: a domain of
	// such a name without the cluster's metadata is reported as a look-alike.
	PlannedDomains []string `json:"planned_domains,omitempty"`
	// LookalikePrefix, if set, reports as look-alikes too the domains
	// whose names start with it and that carry no hpcvm metadata at all:
	// destroy, which may have no file to plan from, names them as left
	// alone ("<cluster>-").
	LookalikePrefix string `json:"lookalike_prefix,omitempty"`
	// AddressesInUse asks for Inventory.AddressesInUse (start, validate).
	AddressesInUse bool `json:"addresses_in_use,omitempty"`
	// Activate starts the cluster's pool if it is ours and inactive, so its
	// volumes can be listed; start and destroy act on them, status does not.
	Activate bool `json:"activate,omitempty"`
	// LiveAddresses asks for the addresses the guests hold now (status).
	LiveAddresses bool `json:"live_addresses,omitempty"`
	// Binding asks for Inventory.BoundTo (destroy).
	Binding bool `json:"binding,omitempty"`
}

// Volume returns the named volume of the owned pool.
func (inv Inventory) Volume(name string) (VolumeState, bool) {
	v, ok := inv.Volumes[name]
	return v, ok
}

// NetworkOwned and PoolOwned say whether the cluster's network and pool
// exist and carry its mark.
func (inv Inventory) NetworkOwned() bool { return inv.Network != nil && inv.Network.Owned }

func (inv Inventory) PoolOwned() bool { return inv.Pool != nil && inv.Pool.Owned }

// AddressInUse is a subnet in use on the host and who holds it.
type AddressInUse struct {
	Subnet string `json:"subnet"` // address/prefix; "" for a network with no IPv4 address (its bridge is still taken)
	Owner  string `json:"owner"`  // "libvirt network X (bridge Y)", "route via dev Z"
	Bridge string `json:"bridge,omitempty"`
	// Network is the libvirt network holding it ("" for a route).
	Network string `json:"network,omitempty"`
}

// SpaceInfo is the free space of the file system a directory is (or would
// be) on.
type SpaceInfo struct {
	Measured  string `json:"measured"` // the existing directory measured
	Available uint64 `json:"available"`
	Total     uint64 `json:"total"`
}

// PCIRequest names the host PCI functions a cluster passes through.
type PCIRequest struct {
	Host      string   `json:"host,omitempty"` // whose device ledger to read
	Cluster   string   `json:"cluster"`
	Addresses []string `json:"addresses"`
}

// PathsRequest names the host paths a start would use.
type PathsRequest struct {
	BaseImage string `json:"base_image,omitempty"` // "" when the base volume exists already
	PoolDir   string `json:"pool_dir"`
	// SharedDirs are the host directories VMs share (virtio_fs_mounts),
	// by where cluster.yaml names them.
	SharedDirs []SharedDir `json:"shared_dirs,omitempty"`
	// DiscoveryDir is where the cluster's service discovery record goes.
	DiscoveryDir string `json:"discovery_dir,omitempty"`
	// ResolverDir is where the host resolver's entry of the cluster goes.
	ResolverDir string `json:"resolver_dir,omitempty"`
}

// SharedDir is one host directory a VM shares, and where it is written.
type SharedDir struct {
	Field string `json:"field"` // "compute_nodes[0].virtio_fs_mounts[1].host_path"
	Path  string `json:"path"`
}

// Empty says there is nothing to check.
func (r PathsRequest) Empty() bool {
	return r.BaseImage == "" && r.PoolDir == "" && len(r.SharedDirs) == 0 && r.DiscoveryDir == "" && r.ResolverDir == ""
}

// UploadProgress is the upload's heartbeat detail: where a retry resumes,
// and which source it was. (Heartbeats of hpcvm before 0.6 also carry a
// digest state; it is ignored.)
// UploadProgress is what the base image upload heartbeats: where a retry
// resumes, and how far the stream has gone (the CLI draws its bar from it).
type UploadProgress struct {
	Offset int64 `json:"offset"`
	// Sent is how many bytes of the image the stream has handed libvirtd.
	Sent   int64      `json:"sent,omitempty"`
	Source SourceStat `json:"source"`
	// StartOver asks the next attempt to recreate the volume and upload
	// from the first byte (a resumed upload did not verify).
	StartOver bool `json:"start_over,omitempty"`
}

// SourceStat identifies one version of the source file: a rewrite in place
// that keeps the size and the modification time still changes the inode
// change time.
type SourceStat struct {
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
	CTime int64  `json:"ctime_ns"`
	Inode uint64 `json:"inode"`
}

// KeptPrefix starts a DomainDifferences entry of a domain start keeps
// although it differs from this hpcvm's template (EnsureResult.Kept).
const KeptPrefix = "kept: "

// DHCPLeaseTime is how long the DHCP server of an hpcvm network leases an
// address: libvirt's default, as hpcvm's networks set none. A lease was
// taken (or renewed) DHCPLeaseTime before it runs out.
const DHCPLeaseTime = time.Hour

// LeaseTakenSince says a DHCP lease that runs out at expiry was taken (or
// renewed) at since or later, give or take slack (clocks that differ): a
// lease from a guest's earlier boot lingers in the table until it runs
// out, and proves nothing about the guest now. Without an expiry or a
// since, it proves nothing either.
func LeaseTakenSince(expiry, since time.Time, slack time.Duration) bool {
	if expiry.IsZero() || since.IsZero() {
		return false
	}
	return !expiry.Add(-DHCPLeaseTime).Before(since.Add(-slack))
}
