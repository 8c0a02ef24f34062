package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// PlanCluster runs every check start runs before it creates anything (the
// same activity, Preflight, in its plan mode), and says what start would
// create or change, without changing anything: the inspection does not
// even start an inactive pool. It takes no lock, so it runs beside any
// operation. A check that fails is reported, not raised; the workflow
// fails only when the host cannot be asked at all.
func PlanCluster(ctx workflow.Context, req api.Request) (api.PlanReport, error) {
	o := req.Options.WithDefaults()
	ctx, err := bindHost(ctx, req.Spec.Cluster.Host, o)
	if err != nil {
		return api.PlanReport{}, err
	}
	actx := workflow.WithActivityOptions(ctx, routed(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.StepTimeout,
		// Interactive: fail fast when the host's worker is not there.
		ScheduleToCloseTimeout: 30 * time.Second,
		HeartbeatTimeout:       o.HeartbeatTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	}))
	var cp api.ClusterPlan
	err = workflow.ExecuteActivity(actx, api.ActPreflight, api.PreflightRequest{Request: req, Mode: api.PreflightPlan}).Get(ctx, &cp)
	return cp.Report(), err
}
