package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/registry"
	"github.com/hpcvm/hpcvm/internal/templates"
	"go.temporal.io/sdk/temporal"
)

// hostClaims reads from libvirt what the clusters' domains made for host
// hold (hpcvm's metadata names cluster, VM and host): per VM its pinned CPUs,
// hugepages and memory, and the PCI functions the domains of exactly one
// cluster pass through. It is how the ledger is rebuilt when it was lost,
// and how it learns of domains older than its resource claims. A device
// two clusters' domains name is shared (exclusive_mode: false), so no
// claim; one cluster's device is taken as claimed, which is what
// exclusive_mode, the default, means.
func (a *Activities) hostClaims(host string) ([]api.ResourceClaim, []api.DeviceClaim, error) {
	domains, err := a.Libvirt.ListDomains(templates.MetadataNamespace)
	if err != nil {
		return nil, nil, err
	}
	res, devs := claimsOfDomains(domains, host)
	return res, devs, nil
}

// claimsOfDomains is hostClaims of a domain list. A domain whose
// metadata names no host (made before hpcvm wrote it) counts as host's.
func claimsOfDomains(domains []libvirt.DomainSummary, host string) ([]api.ResourceClaim, []api.DeviceClaim) {
	var res []api.ResourceClaim
	deviceHolders := map[string]map[string]string{} // address → cluster → VM
	for _, d := range domains {
		if d.Metadata == "" {
			continue
		}
		owner, err := templates.ParseOwner(d.Metadata)
		if err != nil || owner.VM == "" || owner.Host != "" && !strings.EqualFold(owner.Host, host) {
			continue
		}
		r := api.ResourceClaim{Cluster: owner.Cluster, VM: owner.VM, CPUs: d.VCPUPins, MemoryMiB: int(d.MemoryKiB >> 10)}
		if d.HugepageKiB > 0 {
			if len(d.HugepageCells) > 0 {
				var cells []int
				for c := range d.HugepageCells {
					cells = append(cells, c)
				}
				sort.Ints(cells)
				for _, c := range cells {
					r.Hugepages = append(r.Hugepages, api.HugepageClaim{SizeKiB: d.HugepageKiB, Cell: c, Pages: d.HugepageCells[c] / d.HugepageKiB})
				}
			} else {
				r.Hugepages = []api.HugepageClaim{{SizeKiB: d.HugepageKiB, Cell: -1, Pages: d.MemoryKiB / d.HugepageKiB}}
			}
		}
		res = append(res, r)
		for _, addr := range d.PCIHostdevs {
			if deviceHolders[addr] == nil {
				deviceHolders[addr] = map[string]string{}
			}
			deviceHolders[addr][owner.Cluster] = owner.VM
		}
	}
	var devs []api.DeviceClaim
	for addr, holders := range deviceHolders {
		if len(holders) != 1 {
			continue
		}
		for c, vm := range holders {
			devs = append(devs, api.DeviceClaim{Address: addr, Cluster: c, VM: vm, Holders: []api.ClaimHolder{{VM: vm}}})
		}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Address < devs[j].Address })
	return res, devs
}

// hugepageCapacity reads how many pages of each size every host NUMA cell
// reserves (nr_hugepages in sysfs), used or free. A kernel without
// per-node files gives the host's totals, as cell -1.
func hugepageCapacity(sysfs string) ([]api.HugepagePool, error) {
	var out []api.HugepagePool
	nodes, _ := filepath.Glob(filepath.Join(sysfs, "devices", "system", "node", "node[0-9]*"))
	for _, n := range nodes {
		cell, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(n), "node"))
		if err != nil {
			continue
		}
		pools, err := readHugepagePools(filepath.Join(n, "hugepages"), cell)
		if err != nil {
			return nil, err
		}
		out = append(out, pools...)
	}
	if len(nodes) == 0 {
		return readHugepagePools(filepath.Join(sysfs, "kernel", "mm", "hugepages"), -1)
	}
	return out, nil
}

func readHugepagePools(dir string, cell int) ([]api.HugepagePool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.HugepagePool
	for _, e := range entries {
		size, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kib, err := strconv.ParseUint(strings.TrimSuffix(size, "kB"), 10, 64)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "nr_hugepages"))
		if err != nil {
			return nil, fmt.Errorf("read the host's reserved hugepages: %w", err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read the host's reserved hugepages (%s): %w", filepath.Join(dir, e.Name(), "nr_hugepages"), err)
		}
		out = append(out, api.HugepagePool{SizeKiB: kib, Cell: cell, Pages: n})
	}
	return out, nil
}

// ReadLedger returns the host's ledger for the preflight and `hpcvm
// ledger`. A host whose ledger does not exist (never started, or lost)
// shows what its libvirt holds, as the ledger would once rebuilt.
func (a *Activities) ReadLedger(ctx context.Context, host string) (api.LedgerView, error) {
	view := api.LedgerView{Host: host}
	if a.Temporal == nil {
		return view, temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the host ledger", api.ErrTypeLibvirt, nil)
	}
	capacity, err := hugepageCapacity(a.sysfs())
	if err != nil {
		return view, err
	}
	view, found, err := registry.Ledger(ctx, a.Temporal, host)
	view.Capacity = capacity
	if err != nil || found {
		return view, err
	}
	res, devs, err := a.hostClaims(host)
	if err != nil {
		return view, classify(err)
	}
	for i := range res {
		res[i].Adopted = true
	}
	view.Resources, view.Devices, view.Rebuilt = res, devs, true
	return view, nil
}

// ClusterBindings reads the cluster registry (none when it does not
// exist yet).
func (a *Activities) ClusterBindings(ctx context.Context) ([]api.Binding, error) {
	if a.Temporal == nil {
		return nil, temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the cluster registry", api.ErrTypeLibvirt, nil)
	}
	b, _, err := registry.Bindings(ctx, a.Temporal)
	return b, err
}

// BindCluster binds the cluster to this host in the cluster registry,
// starting the registry if it is not running. A cluster bound to another
// host fails the step, not retryably, naming the host.
func (a *Activities) BindCluster(ctx context.Context, req api.BindRequest) (api.BindResult, error) {
	var res api.BindResult
	err := a.updateRecord(ctx, clusterRegistry, api.RegistryUpdateBind, req, &res, true)
	return res, err
}

// UnbindCluster removes the cluster's binding to a host; a registry that
// does not exist binds nothing.
func (a *Activities) UnbindCluster(ctx context.Context, req api.UnbindRequest) (api.UnbindResult, error) {
	var res api.UnbindResult
	err := a.updateRecord(ctx, clusterRegistry, api.RegistryUpdateUnbind, req, &res, false)
	return res, err
}

var clusterRegistry = durableRecord{id: api.RegistryWorkflowID, queue: api.ControlQueue, workflow: api.RegistryWorkflowName,
	seed: api.RegistryState{}, summary: "cluster registry: which host each cluster lives on", what: "cluster registry",
	refusals: []string{api.ErrTypeClusterBound}}
