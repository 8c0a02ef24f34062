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
// request). It changes nothing (it does not even start an inactive pool),
// so it runs beside any operation without taking the cluster's lock.
func DescribeCluster(ctx workflow.Context, req Request) (Description, error) {
	o := req.Options.WithDefaults()
	name := req.Spec.Cluster.Name
	var fresh cluster.Plan
	if req.NameOnly {
		if err := cluster.ValidateTarget(name, req.Spec.Cluster.Host); err != nil {
			return Description{}, badRequest(err)
		}
	} else {
		validate, _ := specValidator(ctx)
		if err := validate(req.Spec); err != nil {
			return Description{}, badRequest(err)
		}
		var err error
		if fresh, err = cluster.NewPlan(req.Spec); err != nil {
			return Description{}, badRequest(err)
		}
	}
	if err := refuseOtherHost(ctx, req.Spec.Cluster.Host); err != nil {
		return Description{}, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: o.StepTimeout,
		// Status is interactive: fail fast when the host's worker is not
		// there rather than wait for one.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var d Description
	err := workflow.ExecuteActivity(ctx, api.ActInspectCluster, api.InspectRequest{
		Cluster: name, PlannedDomains: domainNames(fresh), LiveAddresses: true,
	}).Get(ctx, &d.Inventory)
	if err != nil || req.NameOnly {
		d.Plan = cluster.Plan{Cluster: name, Host: req.Spec.Cluster.Host}
		return d, err
	}
	// The addresses shown are those the network really gives.
	var leases []cluster.HostLease
	if d.Inventory.NetworkOwned() {
		leases = d.Inventory.Network.Leases
	}
	if d.Plan, err = cluster.NewPlanKeeping(req.Spec, leases); err != nil {
		d.Plan = fresh
	}
	return d, nil
}
