// Package compose shows how a workflow of another team composes cluster
// creation: it starts hpcvm's StartCluster as a child workflow on the
// control queue (its steps go to the cluster's host), by name, with the
// contract's types only. It builds
// with CGO_ENABLED=0: nothing of libvirt is needed to drive hpcvm.
package compose

import (
	"fmt"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"
)

// LabRequest is what the composing workflow is asked for: the cluster, as
// its starter read it (cluster.Parse of a cluster.yaml, outside workflow
// code: parsing fills in defaults such as the host from the machine it
// runs on), and the step that follows its creation.
type LabRequest struct {
	Cluster api.Request `json:"cluster"`
	// Then names what the lab is for, reported with the cluster's
	// addresses (a stand-in for the composing team's own next step).
	Then string `json:"then"`
}

// LabReady is what it returns: the cluster's VMs and their addresses.
type LabReady struct {
	Cluster string            `json:"cluster"`
	Host    string            `json:"host"`
	IPs     map[string]string `json:"ips"`
	Then    string            `json:"then"`
}

// BuildLab creates the cluster with hpcvm (a child workflow: one per
// cluster at a time, as hpcvm's own workflow ID ensures) and reports its
// VMs' addresses. A cluster hpcvm refuses fails here, before anything is
// created, with hpcvm's error.
func BuildLab(ctx workflow.Context, req LabRequest) (LabReady, error) {
	spec := req.Cluster.Spec
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            api.WorkflowID(spec.Cluster.Name),
		TaskQueue:             api.ControlQueue,
		Memo:                  map[string]any{api.RunHostMemo: spec.Cluster.Host},
		WorkflowTaskTimeout:   api.WorkflowTaskTimeout,
		ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation:   true,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	})
	var res api.StartResult
	if err := workflow.ExecuteChildWorkflow(ctx, api.StartClusterName, req.Cluster).Get(ctx, &res); err != nil {
		return LabReady{}, fmt.Errorf("hpcvm could not start cluster %s: %w", spec.Cluster.Name, err)
	}
	ready := LabReady{Cluster: res.Plan.Cluster, Host: res.Plan.Host, IPs: map[string]string{}, Then: req.Then}
	for _, vm := range res.Plan.VMs {
		ready.IPs[vm.Name] = vm.IP
	}
	return ready, nil
}
