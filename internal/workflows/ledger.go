package workflows

import (
	"slices"
	"sort"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ledgerUpdatesPerRun bounds one run's history: after this many updates
// (or when the server suggests it) the ledger continues as new with its
// claims.
var ledgerUpdatesPerRun = 500

// DeviceLedger is the host ledger: what each cluster takes from one host,
// for the cluster's life. Exclusive PCI functions (exclusive_mode), and
// per VM its pinned CPUs, hugepages and memory (api.ResourceClaim).
// Claims and releases are updates: the workflow runs them one at a time
// against its state, so of two clusters claiming one device, CPU or the
// last free pages at once exactly one gets them, and the state is
// durable. (The name is from the time it held devices only: ledgers that
// run keep running across an upgrade.)
func DeviceLedger(ctx workflow.Context, st api.LedgerState) error {
	if st.Claims == nil {
		st.Claims = map[string]api.DeviceClaim{}
	}
	if st.Resources == nil {
		st.Resources = map[string]api.ResourceClaim{}
	}
	updates := 0
	devices := func() []api.DeviceClaim {
		out := make([]api.DeviceClaim, 0, len(st.Claims))
		for _, c := range st.Claims {
			out = append(out, c)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
		return out
	}
	if err := workflow.SetQueryHandler(ctx, api.LedgerQueryClaims, func() ([]api.DeviceClaim, error) {
		return devices(), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(ctx, api.LedgerQueryAll, func() (api.LedgerView, error) {
		return api.LedgerView{Devices: devices(), Resources: api.SortedResources(st.Resources)}, nil
	}); err != nil {
		return err
	}
	conflict := func(req api.ClaimRequest) error {
		if msg := api.ClaimConflicts(st.Claims, req); msg != "" {
			return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeDeviceClaimed, nil)
		}
		if msg := api.ResourceConflicts(st.Resources, req); msg != "" {
			return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeResourcesClaimed, nil)
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, api.LedgerUpdateClaim,
		func(ctx workflow.Context, req api.ClaimRequest) (api.ClaimResult, error) {
			updates++
			now := workflow.Now(ctx)
			// What libvirt shows of clusters the ledger has no claim
			// for is held whatever the ledger says: taken in first.
			for _, a := range req.Adopt {
				k := api.ResourceKey(a.Cluster, a.VM)
				if _, held := st.Resources[k]; !held {
					a.Adopted, a.RunID, a.Since = true, "", now
					st.Resources[k] = a
				}
			}
			// Checked again here: the validator saw the state before any
			// update queued ahead of this one ran.
			if err := conflict(req); err != nil {
				return api.ClaimResult{}, err
			}
			var res api.ClaimResult
			for _, r := range req.Resources {
				k := api.ResourceKey(req.Cluster, r.VM)
				r.Cluster, r.RunID, r.Since, r.Adopted = req.Cluster, req.RunID, now, false
				if old, held := st.Resources[k]; held {
					if sameResources(old, r) {
						continue
					}
					// A claim an earlier run made stays that run's:
					// this run's rollback must not give it back.
					r.RunID, r.Since = old.RunID, old.Since
				}
				st.Resources[k] = r
				res.ResourcesAdded = append(res.ResourcesAdded, r.VM)
			}
			for _, d := range req.Devices {
				if c, held := st.Claims[d.Address]; held {
					// This cluster's already; the VM is one more holder
					// when the device moved to it in cluster.yaml.
					st.Claims[d.Address] = c.WithHolder(d.VM, req.RunID)
					continue
				}
				st.Claims[d.Address] = api.NewDeviceClaim(d.Address, req.Cluster, d.VM, req.RunID, workflow.Now(ctx))
				res.Added = append(res.Added, d.Address)
			}
			return res, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req api.ClaimRequest) error { return conflict(req) }},
	); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, api.LedgerUpdateFree,
		func(ctx workflow.Context, req api.ReleaseRequest) (api.ReleaseResult, error) {
			updates++
			var res api.ReleaseResult
			for addr, c := range st.Claims {
				if c.Cluster != req.Cluster {
					continue
				}
				// A device stays claimed while another VM of the
				// cluster still names it.
				left, free := c.WithoutHolders(req.VM, req.RunID)
				if free {
					delete(st.Claims, addr)
					res.Released = append(res.Released, addr)
				} else {
					st.Claims[addr] = left
				}
			}
			for k, c := range st.Resources {
				if c.Cluster != req.Cluster || (req.VM != "" && c.VM != req.VM) || (req.RunID != "" && c.RunID != req.RunID) {
					continue
				}
				delete(st.Resources, k)
				res.ResourcesReleased = append(res.ResourcesReleased, c.VM)
			}
			sort.Strings(res.Released)
			sort.Strings(res.ResourcesReleased)
			return res, nil
		},
	); err != nil {
		return err
	}
	return continueWhenLong(ctx, &updates, api.LedgerWorkflowName, &st)
}

// sameResources says two claims of one VM hold the same CPUs, pages and
// memory.
func sameResources(a, b api.ResourceClaim) bool {
	return a.MemoryMiB == b.MemoryMiB && slices.Equal(a.CPUs, b.CPUs) && slices.Equal(a.Hugepages, b.Hugepages)
}

// continueWhenLong waits until a long-running record (a ledger, the
// registry) has run ledgerUpdatesPerRun updates or the server suggests it,
// lets the running ones finish, and continues as new with its state.
func continueWhenLong(ctx workflow.Context, updates *int, name string, st any) error {
	if err := workflow.Await(ctx, func() bool {
		return *updates >= ledgerUpdatesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	}); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, name, st)
}
