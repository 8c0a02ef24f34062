package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DescribeCluster reads what exists of the cluster on its host. It changes
// nothing, so it runs beside any operation without taking the cluster's lock.
func DescribeCluster(ctx workflow.Context, req Request) (Description, error) {
	o := req.Options.withDefaults()
	plan, err := cluster.NewPlan(req.Spec)
	if err != nil {
		return Description{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBadInput, err)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.StepTimeout,
		// Status is interactive: fail fast when the host's worker is not
		// there rather than wait for one.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	d := Description{Plan: plan}
	err = workflow.ExecuteActivity(ctx, a.InspectCluster, activities.InspectRequest{Plan: plan}).Get(ctx, &d.Inventory)
	return d, err
}
