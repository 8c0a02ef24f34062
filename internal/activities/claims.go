package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// ClaimDevices claims devices, CPUs, hugepages and memory in the host's
// ledger, starting the ledger if it is not running (rebuilt from what the
// host's libvirt shows). A device, CPU or page another cluster holds
// fails the step, not retryably, naming the holder.
func (a *Activities) ClaimDevices(ctx context.Context, req api.ClaimRequest) (api.ClaimResult, error) {
	var res api.ClaimResult
	// What the domains on the host hold: taken in by a ledger that lacks
	// it, and the whole of a ledger started now.
	adopt, devices, err := a.hostClaims(req.Host)
	if err != nil {
		return res, classify(err)
	}
	req.Adopt = adopt
	for _, r := range req.Resources {
		if len(r.Hugepages) > 0 {
			if req.Capacity, err = hugepageCapacity(a.sysfs()); err != nil {
				return res, err
			}
			break
		}
	}
	seed := api.LedgerState{Claims: map[string]api.DeviceClaim{}}
	for _, d := range devices {
		seed.Claims[d.Address] = d
	}
	err = a.ledgerUpdate(ctx, req.Host, req.Queue, api.LedgerUpdateClaim, req, seed, &res)
	return res, err
}

// ReleaseDevices frees claims in the host's ledger. Freeing what is not
// held is not an error; a host without a ledger holds nothing (it is not
// started for this).
func (a *Activities) ReleaseDevices(ctx context.Context, req api.ReleaseRequest) (api.ReleaseResult, error) {
	var res api.ReleaseResult
	err := a.updateRecord(ctx, ledgerRecord(req.Host, req.Queue, api.LedgerState{}), api.LedgerUpdateFree, req, &res, false)
	return res, err
}

func (a *Activities) ledgerUpdate(ctx context.Context, host, queue, update string, arg any, seed api.LedgerState, result any) error {
	return a.updateRecord(ctx, ledgerRecord(host, queue, seed), update, arg, result, true)
}

func ledgerRecord(host, queue string, seed api.LedgerState) durableRecord {
	return durableRecord{id: api.LedgerWorkflowID(host), queue: queue, workflow: api.LedgerWorkflowName, seed: seed,
		summary:  "ledger of host " + host + ": the CPUs, hugepages, memory and devices each cluster holds",
		what:     "ledger of host " + host,
		refusals: []string{api.ErrTypeDeviceClaimed, api.ErrTypeResourcesClaimed}}
}

// durableRecord is a long-running workflow the activities update one
// update at a time: a host's ledger, the cluster registry.
type durableRecord struct {
	id, queue, workflow string
	seed                any    // its input, when an update starts it
	summary, what       string // in the Web UI; in errors
	// refusals are the error types of its refusals, passed on not
	// retryably.
	refusals []string
}

// updateRecord runs an update of r and waits for its result. With start,
// a record that is not running is started (from r.seed); without, a
// record that does not exist holds nothing, and the update is a no-op.
func (a *Activities) updateRecord(ctx context.Context, r durableRecord, update string, arg, result any, start bool) error {
	if a.Temporal == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the "+r.what, api.ErrTypeLibvirt, nil)
	}
	opts := client.UpdateWorkflowOptions{WorkflowID: r.id, UpdateName: update, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted}
	var h client.WorkflowUpdateHandle
	var err error
	if start {
		op := a.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID:                       r.id,
			TaskQueue:                r.queue,
			WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:            r.summary,
		}, r.workflow, r.seed)
		opts.WorkflowID = ""
		h, err = a.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: op, UpdateOptions: opts})
	} else {
		h, err = a.Temporal.UpdateWorkflow(ctx, opts)
	}
	if err == nil {
		err = h.Get(ctx, result)
	}
	var notFound *serviceerror.NotFound
	if !start && errors.As(err, &notFound) {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && slices.Contains(r.refusals, appErr.Type()) {
		return temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), nil)
	}
	if err != nil {
		return fmt.Errorf("%s (workflow %s): %w", r.what, r.id, err)
	}
	return nil
}
