package workflows

import (
	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Search attributes of the cluster operations, so runs can be filtered by
// cluster, operation and host in the Temporal Web UI and with
// `temporal workflow list --query 'HpcvmCluster = "lab"'`. The CLI sets them
// when it starts a run; a namespace without them still runs everything
// (the CLI says how to add them).
var (
	ClusterAttribute   = temporal.NewSearchAttributeKeyKeyword("HpcvmCluster")
	OperationAttribute = temporal.NewSearchAttributeKeyKeyword("HpcvmOperation")
	HostAttribute      = temporal.NewSearchAttributeKeyKeyword("HpcvmHost")
)

// SearchAttributeTypes are the attributes as a namespace registers them.
func SearchAttributeTypes() map[string]enums.IndexedValueType {
	return map[string]enums.IndexedValueType{
		ClusterAttribute.GetName():   enums.INDEXED_VALUE_TYPE_KEYWORD,
		OperationAttribute.GetName(): enums.INDEXED_VALUE_TYPE_KEYWORD,
		HostAttribute.GetName():      enums.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// OperationWord is the operator's word for a workflow: start, stop, destroy.
func OperationWord(workflowType string) string {
	switch workflowType {
	case api.StartClusterName:
		return "start"
	case api.StopClusterName:
		return "stop"
	case api.DestroyClusterName:
		return "destroy"
	}
	return workflowType
}
