package workflows

import (
	"sort"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ledgerUpdatesPerRun bounds one run's history: after this many updates
// (or when the server suggests it) the ledger continues as new with its
// claims.
var ledgerUpdatesPerRun = 500

// DeviceLedger holds which cluster claims which host PCI function on one
// host (exclusive_mode). Claims and releases are updates: the workflow
// runs them one at a time against its state, so of two clusters claiming
// one device at once exactly one gets it, and the state is durable.
func DeviceLedger(ctx workflow.Context, st api.LedgerState) error {
	if st.Claims == nil {
		st.Claims = map[string]api.DeviceClaim{}
	}
	updates := 0
	if err := workflow.SetQueryHandler(ctx, api.LedgerQueryClaims, func() ([]api.DeviceClaim, error) {
		out := make([]api.DeviceClaim, 0, len(st.Claims))
		for _, c := range st.Claims {
			out = append(out, c)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
		return out, nil
	}); err != nil {
		return err
	}
	conflict := func(req api.ClaimRequest) error {
		if msg := api.ClaimConflicts(st.Claims, req); msg != "" {
			return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeDeviceClaimed, nil)
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, api.LedgerUpdateClaim,
		func(ctx workflow.Context, req api.ClaimRequest) (api.ClaimResult, error) {
			updates++
			// Checked again here: the validator saw the state before any
			// update queued ahead of this one ran.
			if err := conflict(req); err != nil {
				return api.ClaimResult{}, err
			}
			var res api.ClaimResult
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
			sort.Strings(res.Released)
			return res, nil
		},
	); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool {
		return updates >= ledgerUpdatesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
	}); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, api.LedgerWorkflowName, st)
}
