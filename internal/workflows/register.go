package workflows

import (
	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/workflow"
)

// Registrar is the part of a Temporal worker that registers workflows.
type Registrar interface {
	RegisterWorkflowWithOptions(w interface{}, options workflow.RegisterOptions)
}

// startCluster is what the worker registers as StartCluster: the upgrade
// drill's build (tag upgradedrill) registers a changed one, as a new
// release of hpcvm would.
var startCluster = StartCluster

// Register registers every hpcvm workflow under its stable name.
func Register(w Registrar) {
	w.RegisterWorkflowWithOptions(startCluster, workflow.RegisterOptions{Name: api.StartClusterName})
	w.RegisterWorkflowWithOptions(StopCluster, workflow.RegisterOptions{Name: api.StopClusterName})
	w.RegisterWorkflowWithOptions(DestroyCluster, workflow.RegisterOptions{Name: api.DestroyClusterName})
	w.RegisterWorkflowWithOptions(DescribeCluster, workflow.RegisterOptions{Name: api.DescribeClusterName})
	w.RegisterWorkflowWithOptions(PlanCluster, workflow.RegisterOptions{Name: api.PlanClusterName})
	w.RegisterWorkflowWithOptions(HostAudit, workflow.RegisterOptions{Name: api.HostAuditName})
	w.RegisterWorkflowWithOptions(PendingHostChanges, workflow.RegisterOptions{Name: api.PendingHostChangesName})
	w.RegisterWorkflowWithOptions(HostQuestions, workflow.RegisterOptions{Name: api.HostQuestionsName})
	w.RegisterWorkflowWithOptions(DeviceLedger, workflow.RegisterOptions{Name: api.LedgerWorkflowName})
	w.RegisterWorkflowWithOptions(ClusterRegistry, workflow.RegisterOptions{Name: api.RegistryWorkflowName})
}
