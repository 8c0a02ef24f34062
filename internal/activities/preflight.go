package activities

import (
	"context"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/preflight"
)

// Preflight runs the whole preflight of a start, validate or plan on this
// host: every read and check, the negotiated plan, the documents, and for
// a start the saga as data (package preflight). It changes nothing but,
// for a start, activates the cluster's inactive pool to read its volumes.
func (a *Activities) Preflight(ctx context.Context, req api.PreflightRequest) (api.ClusterPlan, error) {
	var plan api.ClusterPlan
	err := a.heartbeating(ctx, func() error {
		var err error
		plan, err = preflight.Run(ctx, a, req)
		return err
	})
	return plan, err
}

// Describe reads what exists of a cluster and the plan of its file, for
// status (package preflight). It changes nothing.
func (a *Activities) Describe(ctx context.Context, req api.Request) (api.Description, error) {
	return preflight.Describe(ctx, a, req)
}
