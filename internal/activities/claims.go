package activities

import (
	"context"
	"errors"
	"fmt"

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
func (a *Activities) ClaimDevices(ctx context.Context, req ClaimRequest) (ClaimResult, error) {
	var res ClaimResult
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
	seed := LedgerState{Claims: map[string]DeviceClaim{}}
	for _, d := range devices {
		seed.Claims[d.Address] = d
	}
	err = a.ledgerUpdate(ctx, req.Host, req.Queue, LedgerUpdateClaim, req, seed, &res)
	return res, err
}

// ReleaseDevices frees claims in the host's ledger. Freeing what is not
// held is not an error; a host without a ledger holds nothing (it is not
// started for this).
func (a *Activities) ReleaseDevices(ctx context.Context, req ReleaseRequest) (ReleaseResult, error) {
	var res ReleaseResult
	if a.Temporal == nil {
		return res, temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the host ledger", ErrTypeLibvirt, nil)
	}
	h, err := a.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   api.LedgerWorkflowID(req.Host),
		UpdateName:   LedgerUpdateFree,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &res)
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return ReleaseResult{}, nil
	}
	if err != nil {
		return res, fmt.Errorf("ledger of host %s (workflow %s): %w", req.Host, api.LedgerWorkflowID(req.Host), err)
	}
	return res, nil
}

func (a *Activities) ledgerUpdate(ctx context.Context, host, queue, update string, arg any, seed LedgerState, result any) error {
	if a.Temporal == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the host ledger", ErrTypeLibvirt, nil)
	}
	start := a.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       api.LedgerWorkflowID(host),
		TaskQueue:                queue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "ledger of host " + host + ": the CPUs, hugepages, memory and devices each cluster holds",
	}, LedgerWorkflowName, seed)
	h, err := a.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   update,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = h.Get(ctx, result)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && (appErr.Type() == ErrTypeDeviceClaimed || appErr.Type() == api.ErrTypeResourcesClaimed) {
		return temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), nil)
	}
	if err != nil {
		return fmt.Errorf("ledger of host %s (workflow %s): %w", host, api.LedgerWorkflowID(host), err)
	}
	return nil
}
