// Package registry reads the two durable records of what exists: the
// cluster registry (which host each cluster lives on) and a host's ledger
// (what each cluster holds of that host). Both are workflows (package
// workflows); this reads them with queries, for the CLI and the workers.
// It needs no cgo.
package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// running says the workflow's newest run is running. A closed one (ended
// by hand, or by a namespace reset) is lost: it still answers queries
// with its last state, but the next claim or bind starts a new one,
// rebuilt from what the hosts hold, and that is what counts.
func running(ctx context.Context, c client.Client, id string) (bool, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read workflow %s: %w", id, err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Bindings reads the cluster registry; found says it exists (a namespace
// where no start ran since it was introduced has none).
func Bindings(ctx context.Context, c client.Client) (bindings []api.Binding, found bool, err error) {
	if live, err := running(ctx, c, api.RegistryWorkflowID); err != nil || !live {
		return nil, false, err
	}
	v, err := c.QueryWorkflow(ctx, api.RegistryWorkflowID, "", api.RegistryQueryAll)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the cluster registry (workflow %s): %w", api.RegistryWorkflowID, err)
	}
	if err := v.Get(&bindings); err != nil {
		return nil, false, err
	}
	return bindings, true, nil
}

// Ledger reads a host's ledger; found says it exists.
func Ledger(ctx context.Context, c client.Client, host string) (view api.LedgerView, found bool, err error) {
	view.Host = host
	if live, err := running(ctx, c, api.LedgerWorkflowID(host)); err != nil || !live {
		return view, false, err
	}
	v, err := c.QueryWorkflow(ctx, api.LedgerWorkflowID(host), "", api.LedgerQueryAll)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return view, false, nil
	}
	if err != nil {
		return view, false, fmt.Errorf("read the ledger of host %s (workflow %s): %w", host, api.LedgerWorkflowID(host), err)
	}
	if err := v.Get(&view); err != nil {
		return view, false, err
	}
	view.Host = host
	return view, true, nil
}
