package workflows

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DescribeCluster reads what exists of the cluster on its host, found by
// hpcvm's marks, and the plan of the current file (none for a NameOnly
// request): one activity on the host (Describe) validates, inspects and
// plans. It changes nothing (it does not even start an inactive pool), so
// it runs beside any operation without taking the cluster's lock.
func DescribeCluster(ctx workflow.Context, req api.Request) (api.Description, error) {
	o := req.Options.WithDefaults()
	ctx, err := bindHost(ctx, req.Spec.Cluster.Host, o)
	if err != nil {
		return api.Description{}, err
	}
	ctx = workflow.WithActivityOptions(ctx, routed(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.StepTimeout,
		// Status is interactive: fail fast when the host's worker is not
		// there rather than wait for one.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3, NonRetryableErrorTypes: []string{api.ErrTypeBadInput}},
	}))
	var d api.Description
	err = workflow.ExecuteActivity(ctx, api.ActDescribe, req).Get(ctx, &d)
	if err != nil && d.Plan.Cluster == "" {
		d.Plan = cluster.Plan{Cluster: req.Spec.Cluster.Name, Host: req.Spec.Cluster.Host}
	}
	return d, err
}
