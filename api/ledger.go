package api

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// The host ledger (workflow DeviceLedger, one per host, ID
// LedgerWorkflowID) holds what each cluster takes from its host for the
// cluster's whole life: exclusive PCI functions (DeviceClaim), and per VM
// its pinned host CPUs, its hugepages per size and host NUMA cell, and its
// memory (ResourceClaim). Claims are taken by a start before any domain
// exists, given back by its rollback and by destroy; while they are held,
// no other cluster gets the same CPUs, pages or devices, whatever a probe
// of the host saw. The workflow keeps its name and ID from the time it
// held devices only, so ledgers running before an upgrade carry on.

// ResourceClaim is what one VM of a cluster holds of its host besides PCI
// functions.
type ResourceClaim struct {
	Cluster string    `json:"cluster"`
	VM      string    `json:"vm"`
	RunID   string    `json:"run_id,omitempty"` // the start that claimed it ("" when adopted from libvirt)
	Since   time.Time `json:"since"`
	// CPUs are the host CPUs its vCPUs are pinned to (cpu_pinning).
	CPUs []int `json:"cpus,omitempty"`
	// Hugepages are the pages its memory is backed by.
	Hugepages []HugepageClaim `json:"hugepages,omitempty"`
	// MemoryMiB is its memory. Memory not backed by hugepages is counted,
	// not refused: overcommit is the operator's choice, and plan says it.
	MemoryMiB int `json:"memory_mib"`
	// Adopted: read from the VM's domain on the host (the ledger was lost,
	// or the domain is older than the ledger's resource claims).
	Adopted bool `json:"adopted,omitempty"`
}

// HugepageClaim is a number of pages of one size, on one host NUMA cell
// (Cell -1: wherever the kernel gives them).
type HugepageClaim struct {
	SizeKiB uint64 `json:"size_kib"`
	Cell    int    `json:"cell"`
	Pages   uint64 `json:"pages"`
}

// HugepagePool is how many pages of a size a host cell has reserved in
// all (nr_hugepages), used or not.
type HugepagePool struct {
	SizeKiB uint64 `json:"size_kib"`
	Cell    int    `json:"cell"`
	Pages   uint64 `json:"pages"`
}

// ResourceKey is a VM's key in the ledger.
func ResourceKey(cluster, vm string) string { return cluster + "/" + vm }

// SortedResources is the claims in cluster, VM order.
func SortedResources(m map[string]ResourceClaim) []ResourceClaim {
	out := make([]ResourceClaim, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].VM < out[j].VM
	})
	return out
}

// LedgerView is the whole ledger, as the query LedgerQueryAll returns it.
type LedgerView struct {
	Host      string          `json:"host,omitempty"`
	Devices   []DeviceClaim   `json:"devices,omitempty"`
	Resources []ResourceClaim `json:"resources,omitempty"`
	// Capacity is the hugepages the host reserves, read by the host's
	// worker (not part of the ledger's state).
	Capacity []HugepagePool `json:"capacity,omitempty"`
	// Rebuilt: the ledger does not exist; the claims are what the host's
	// libvirt shows, as a ledger started now would take them in.
	Rebuilt bool `json:"rebuilt,omitempty"`
}

// Totals sums the view per cluster: CPUs, pages and memory.
func (v LedgerView) Totals() map[string]LedgerTotals {
	out := map[string]LedgerTotals{}
	for _, r := range v.Resources {
		out[r.Cluster] = out[r.Cluster].Add(r)
	}
	for _, d := range v.Devices {
		t := out[d.Cluster]
		t.Devices++
		out[d.Cluster] = t
	}
	return out
}

// LedgerTotals is what one cluster (or several) holds of a host.
type LedgerTotals struct {
	VMs         int `json:"vms"`
	CPUs        int `json:"pinned_cpus"`
	HugepageMiB int `json:"hugepage_mib"`
	MemoryMiB   int `json:"memory_mib"`
	Devices     int `json:"devices"`
}

// Add is t with one VM's claim added.
func (t LedgerTotals) Add(r ResourceClaim) LedgerTotals {
	t.VMs++
	t.CPUs += len(r.CPUs)
	t.MemoryMiB += r.MemoryMiB
	for _, h := range r.Hugepages {
		t.HugepageMiB += int(h.Pages * h.SizeKiB >> 10)
	}
	return t
}

// ResourceConflicts says why the request's resource claims cannot be
// held beside the others (claims is the ledger's state), or "" when they
// can: a pinned CPU another cluster holds, or more hugepages of a size on
// a cell (or on the host) than it reserves. The request's own cluster's
// claims for the VMs it names are replaced, not added.
func ResourceConflicts(claims map[string]ResourceClaim, req ClaimRequest) string {
	var problems []string
	replaced := map[string]bool{}
	for _, r := range req.Resources {
		replaced[ResourceKey(req.Cluster, r.VM)] = true
	}
	cpuHolder := map[int]ResourceClaim{}
	for k, c := range claims {
		if replaced[k] {
			continue
		}
		for _, cpu := range c.CPUs {
			cpuHolder[cpu] = c
		}
	}
	for _, r := range req.Resources {
		var taken []string
		for _, cpu := range r.CPUs {
			if c, ok := cpuHolder[cpu]; ok && c.Cluster != req.Cluster {
				taken = append(taken, fmt.Sprintf("CPU %d (cluster %s, VM %s, since %s)", cpu, c.Cluster, c.VM, c.Since.UTC().Format(time.RFC3339)))
			}
		}
		if len(taken) > 0 {
			problems = append(problems, fmt.Sprintf("VM %s would be pinned to %s", r.VM, strings.Join(taken, ", ")))
		}
	}
	if len(req.Capacity) > 0 {
		type key struct {
			size uint64
			cell int
		}
		used := map[key]uint64{}
		usedBy := map[key][]string{}
		add := func(c ResourceClaim, mine bool) {
			for _, h := range c.Hugepages {
				k := key{h.SizeKiB, h.Cell}
				used[k] += h.Pages
				if !mine {
					usedBy[k] = append(usedBy[k], fmt.Sprintf("%s/%s %d", c.Cluster, c.VM, h.Pages))
				}
			}
		}
		for k, c := range claims {
			if !replaced[k] {
				add(c, c.Cluster == req.Cluster)
			}
		}
		asked := map[key]bool{}
		for _, r := range req.Resources {
			r.Cluster = req.Cluster
			add(r, true)
			for _, h := range r.Hugepages {
				// A cell's pages count against the cell and the host.
				asked[key{h.SizeKiB, h.Cell}] = true
				asked[key{h.SizeKiB, -1}] = true
			}
		}
		reserved := map[key]uint64{}
		for _, p := range req.Capacity {
			if p.Cell >= 0 {
				reserved[key{p.SizeKiB, p.Cell}] += p.Pages
			}
			reserved[key{p.SizeKiB, -1}] += p.Pages
		}
		var keys []key
		for k := range asked {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].size != keys[j].size {
				return keys[i].size < keys[j].size
			}
			return keys[i].cell < keys[j].cell
		})
		for _, k := range keys {
			var n uint64
			var holders []string
			if k.cell >= 0 {
				n, holders = used[k], usedBy[k]
			} else {
				// Pages asked for on no cell in particular compete
				// with every cell's.
				for uk, u := range used {
					if uk.size == k.size {
						n += u
						holders = append(holders, usedBy[uk]...)
					}
				}
			}
			if n <= reserved[k] {
				continue
			}
			where := "the host"
			if k.cell >= 0 {
				where = fmt.Sprintf("host NUMA cell %d", k.cell)
			}
			held := "no other cluster holds any"
			if len(holders) > 0 {
				sort.Strings(holders)
				held = "other clusters hold " + strings.Join(holders, ", ")
			}
			problems = append(problems, fmt.Sprintf("%d %s hugepages would be claimed on %s, which reserves %d (%s)", n, pageSizeName(k.size), where, reserved[k], held))
		}
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("host %s cannot give cluster %s what it asks: %s; the host's ledger holds these claims until their clusters are destroyed (hpcvm ledger --host %s shows them)",
		req.Host, req.Cluster, strings.Join(problems, "; "), req.Host)
}

func pageSizeName(kib uint64) string {
	if kib >= 1<<20 && kib%(1<<20) == 0 {
		return fmt.Sprintf("%dG", kib>>20)
	}
	if kib >= 1<<10 && kib%(1<<10) == 0 {
		return fmt.Sprintf("%dM", kib>>10)
	}
	return fmt.Sprintf("%dK", kib)
}

// ErrTypeResourcesClaimed: CPUs or hugepages the preflight chose were
// claimed by another cluster meanwhile (two starts at once); the start
// runs its preflight again, which sees the claims.
const ErrTypeResourcesClaimed = "ResourcesClaimed"

// LedgerQueryAll returns the whole ledger (LedgerView).
const LedgerQueryAll = "ledger"

// The cluster registry: one long-running workflow per namespace
// (ClusterRegistry in package workflows, ID RegistryWorkflowID) binds each
// cluster name to the host(s) it lives on, from its first start to the
// destroy that removes it. A start on another host is refused while the
// binding lasts, and `hpcvm list` reads the registry, so a cluster is
// listed for as long as it exists, not as long as its runs are retained.
const (
	RegistryWorkflowName = "ClusterRegistry"
	RegistryWorkflowID   = "hpcvm-clusters"
	RegistryUpdateBind   = "bind"
	RegistryUpdateUnbind = "unbind"
	RegistryQueryAll     = "clusters"
	// ErrTypeClusterBound: the cluster lives on another host.
	ErrTypeClusterBound = "ClusterBound"
)

// Binding is one cluster's entry in the registry.
type Binding struct {
	Cluster string    `json:"cluster"`
	Hosts   []string  `json:"hosts"`
	Since   time.Time `json:"since"`
	RunID   string    `json:"run_id,omitempty"` // the start that bound it ("" when adopted)
	// Adopted: a worker found the cluster on its host and bound it (the
	// registry was lost, or the cluster is older than the registry).
	Adopted bool `json:"adopted,omitempty"`
}

// HasHost says the binding names host.
func (b Binding) HasHost(host string) bool { return slices.Contains(b.Hosts, host) }

// BindRequest binds a cluster to a host. Adopt: a worker found the
// cluster on its host; a binding to other hosts gains this one instead of
// refusing (what exists exists).
type BindRequest struct {
	Cluster string `json:"cluster"`
	Host    string `json:"host"`
	RunID   string `json:"run_id,omitempty"`
	Adopt   bool   `json:"adopt,omitempty"`
}

// BindResult says whether this request made the binding.
type BindResult struct {
	Added bool `json:"added,omitempty"`
}

// UnbindRequest removes a cluster's binding to a host; with RunID, only a
// binding that run made (a failed start's compensation).
type UnbindRequest struct {
	Cluster string `json:"cluster"`
	Host    string `json:"host"`
	RunID   string `json:"run_id,omitempty"`
}

// UnbindResult says whether the binding was removed.
type UnbindResult struct {
	Removed bool `json:"removed,omitempty"`
}

// RegistryState is the registry workflow's input, carried over a
// continue-as-new.
type RegistryState struct {
	Clusters map[string]Binding `json:"clusters"`
}

// BindConflict says why req cannot bind, or "".
func BindConflict(clusters map[string]Binding, req BindRequest) string {
	b, ok := clusters[req.Cluster]
	if !ok || req.Adopt || b.HasHost(req.Host) {
		return ""
	}
	return fmt.Sprintf("cluster %s lives on host %s (bound since %s): a cluster name stays bound to its host until destroy removes it there; set cluster.host: %s to act on it, or run `hpcvm destroy` with that host first, or choose another cluster.name",
		req.Cluster, strings.Join(b.Hosts, ", "), b.Since.UTC().Format(time.RFC3339), b.Hosts[0])
}
