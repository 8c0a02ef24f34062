package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// The device ledger: one long-running workflow per host (DeviceLedger in
// package workflows) holds which cluster claims which host PCI function.
// Its updates run one at a time in the workflow, so two clusters that
// claim one device at the same moment cannot both get it; its state is
// durable, so a claim outlives every process.
const (
	LedgerWorkflowName = "DeviceLedger"
	LedgerUpdateClaim  = "claim"
	LedgerUpdateFree   = "release"
	LedgerQueryClaims  = "claims"
	// ErrTypeDeviceClaimed: another cluster holds a device.
	ErrTypeDeviceClaimed = "DeviceClaimed"
)

// LedgerWorkflowID is the ID of a host's device ledger.
func LedgerWorkflowID(host string) string { return "hpcvm-devices-" + host }

// ClaimDevices claims devices in the host's ledger, starting the ledger if
// it is not running. A device another cluster holds fails the step, not
// retryably, naming the holder.
func (a *Activities) ClaimDevices(ctx context.Context, req ClaimRequest) (ClaimResult, error) {
	var res ClaimResult
	err := a.ledgerUpdate(ctx, req.Host, req.Queue, LedgerUpdateClaim, req, &res)
	return res, err
}

// ReleaseDevices frees claims in the host's ledger. Freeing what is not
// held is not an error; a host without a ledger holds nothing (it is not
// started for this).
func (a *Activities) ReleaseDevices(ctx context.Context, req ReleaseRequest) (ReleaseResult, error) {
	var res ReleaseResult
	if a.Temporal == nil {
		return res, temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the device ledger", ErrTypeLibvirt, nil)
	}
	h, err := a.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   LedgerWorkflowID(req.Host),
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
		return res, fmt.Errorf("device ledger of host %s (workflow %s): %w", req.Host, LedgerWorkflowID(req.Host), err)
	}
	return res, nil
}

func (a *Activities) ledgerUpdate(ctx context.Context, host, queue, update string, arg, result any) error {
	if a.Temporal == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no Temporal client for the device ledger", ErrTypeLibvirt, nil)
	}
	start := a.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       LedgerWorkflowID(host),
		TaskQueue:                queue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "device ledger of host " + host,
	}, LedgerWorkflowName, LedgerState{})
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
	if errors.As(err, &appErr) && appErr.Type() == ErrTypeDeviceClaimed {
		return temporal.NewNonRetryableApplicationError(appErr.Message(), ErrTypeDeviceClaimed, nil)
	}
	if err != nil {
		return fmt.Errorf("device ledger of host %s (workflow %s): %w", host, LedgerWorkflowID(host), err)
	}
	return nil
}

// ClaimConflicts says which requested devices another cluster holds, or
// "" when none does. The ledger uses it in its validator and its handler.
func ClaimConflicts(claims map[string]DeviceClaim, req ClaimRequest) string {
	var held []string
	for _, d := range req.Devices {
		if c, ok := claims[d.Address]; ok && c.Cluster != req.Cluster {
			held = append(held, fmt.Sprintf("%s is claimed by cluster %s (VM %s) since %s", d.Address, c.Cluster, c.HolderNames(), c.Since.UTC().Format(time.RFC3339)))
		}
	}
	if len(held) == 0 {
		return ""
	}
	return fmt.Sprintf("exclusive_mode: %s on host %s; destroy that cluster (which frees its devices), or set exclusive_mode: false in both to share them one running cluster at a time",
		strings.Join(held, "; "), req.Host)
}
