package preflight

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/temporal"
)

// binding refuses a cluster the registry binds to another host: a cluster
// name lives on its host from its first start to its destroy.
func (r *run) binding() error {
	bindings, err := r.host.ClusterBindings(r.ctx)
	if err != nil {
		return err
	}
	m := map[string]api.Binding{}
	for _, b := range bindings {
		m[b.Cluster] = b
	}
	detail := "the cluster is not bound to a host yet: this start binds it to " + r.fresh.Host
	if b, ok := m[r.fresh.Cluster]; ok {
		detail = fmt.Sprintf("bound to host %s since %s", strings.Join(b.Hosts, ", "), b.Since.UTC().Format("2006-01-02 15:04:05Z"))
	}
	var refusal error
	if msg := api.BindConflict(m, api.BindRequest{Cluster: r.fresh.Cluster, Host: r.fresh.Host}); msg != "" {
		refusal = temporal.NewNonRetryableApplicationError(msg, api.ErrTypeClusterBound, nil)
	}
	return r.shortCheck(CheckBinding, refusal, detail, "the cluster lives on another host")
}

// readLedger reads the host's ledger and marks the CPUs other clusters
// hold as pinned, so the plan pins this cluster's vCPUs elsewhere even
// where those clusters' domains do not exist yet (a start running now).
func (r *run) readLedger() error {
	view, err := r.host.ReadLedger(r.ctx, r.fresh.Host)
	if err != nil {
		return err
	}
	r.ledger = view
	for _, c := range view.Resources {
		if c.Cluster == r.fresh.Cluster || len(c.CPUs) == 0 {
			continue
		}
		if r.caps.PinnedCPUs == nil {
			r.caps.PinnedCPUs = map[string][]int{}
		}
		r.caps.PinnedCPUs[fmt.Sprintf("%s (cluster %s, in the host's ledger)", c.VM, c.Cluster)] = c.CPUs
	}
	return nil
}

// ledgerCheck judges the plan's claims against the host's ledger, as the
// start's claim step will: CPUs another cluster holds, hugepages beyond
// what the host reserves. (The claim step judges again, one claim at a
// time: two starts at once cannot both pass it.)
func (r *run) ledgerCheck() error {
	claims := ResourceClaims(r.plan)
	held := map[string]api.ResourceClaim{}
	for _, c := range r.ledger.Resources {
		held[api.ResourceKey(c.Cluster, c.VM)] = c
	}
	var refusal error
	if msg := api.ResourceConflicts(held, api.ClaimRequest{Host: r.fresh.Host, Cluster: r.fresh.Cluster, Resources: claims, Capacity: r.ledger.Capacity}); msg != "" {
		refusal = temporal.NewNonRetryableApplicationError(msg, api.ErrTypeResourcesClaimed, nil)
	}
	var mine, others api.LedgerTotals
	for _, c := range claims {
		mine = mine.Add(c)
	}
	clusters := map[string]bool{}
	for _, c := range r.ledger.Resources {
		if c.Cluster != r.fresh.Cluster {
			clusters[c.Cluster] = true
			others = others.Add(c)
		}
	}
	detail := fmt.Sprintf("this cluster claims %d pinned CPU(s), %d MiB of hugepages, %d MiB of memory; %d other cluster(s) hold %d CPU(s), %d MiB of hugepages, %d MiB of memory",
		mine.CPUs, mine.HugepageMiB, mine.MemoryMiB, len(clusters), others.CPUs, others.HugepageMiB, others.MemoryMiB)
	if hostMiB := int(r.caps.MemoryKiB >> 10); refusal == nil && hostMiB > 0 && mine.MemoryMiB+others.MemoryMiB > hostMiB && len(clusters) > 0 {
		r.plan.Machine.Notes = append(r.plan.Machine.Notes, fmt.Sprintf("overcommit: the clusters on host %s claim %d MiB of memory in all with this one, the host has %d MiB; they run together only while their guests leave part of theirs untouched",
			r.fresh.Host, mine.MemoryMiB+others.MemoryMiB, hostMiB))
	}
	return r.shortCheck(CheckLedger, refusal, detail, "the host's ledger cannot give the cluster its CPUs or hugepages")
}

// ResourceClaims are what the plan's VMs take from the host: their pinned
// CPUs, their hugepages (per host cell where their cells are bound) and
// their memory.
func ResourceClaims(p cluster.Plan) []api.ResourceClaim {
	var out []api.ResourceClaim
	pageKiB := p.Machine.HugepageKiB
	for _, vm := range p.VMs {
		c := api.ResourceClaim{VM: vm.Name, CPUs: append([]int(nil), vm.VCPUPins...), MemoryMiB: vm.MemoryMiB}
		if pageKiB > 0 {
			perCell := map[int]uint64{}
			bound := len(vm.NUMACells) > 0 && vm.NUMACells[0].HostCell >= 0
			if bound {
				for _, cell := range vm.NUMACells {
					perCell[cell.HostCell] += uint64(cell.MemoryMiB) << 10 / pageKiB
				}
			} else {
				perCell[-1] = uint64(vm.MemoryMiB) << 10 / pageKiB
			}
			var cells []int
			for cell := range perCell {
				cells = append(cells, cell)
			}
			sort.Ints(cells)
			for _, cell := range cells {
				c.Hugepages = append(c.Hugepages, api.HugepageClaim{SizeKiB: pageKiB, Cell: cell, Pages: perCell[cell]})
			}
		}
		out = append(out, c)
	}
	return out
}
