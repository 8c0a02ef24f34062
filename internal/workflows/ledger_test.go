package workflows

import (
	"errors"
	"testing"

	"github.com/hpcvm/hpcvm/internal/activities"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

type updateOutcome struct {
	rejected error
	err      error
	value    any
}

func ledgerEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	env.RegisterWorkflowWithOptions(DeviceLedger, workflow.RegisterOptions{Name: activities.LedgerWorkflowName})
	return env
}

// update sends one update and records how it ended.
func update(env *testsuite.TestWorkflowEnvironment, name, id string, arg any, out *updateOutcome) {
	env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { out.rejected = err },
		OnComplete: func(v interface{}, err error) { out.value, out.err = v, err },
	}, arg)
}

func TestDeviceLedgerGrantsEachDeviceToOneCluster(t *testing.T) {
	env := ledgerEnv(t)
	claim := func(cluster, run string, addrs ...string) activities.ClaimRequest {
		req := activities.ClaimRequest{Host: "hv1", Cluster: cluster, RunID: run}
		for _, a := range addrs {
			req.Devices = append(req.Devices, activities.DeviceClaim{Address: a, VM: "gpu-01"})
		}
		return req
	}
	var first, rival, again, freeRun, freeAll updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, activities.LedgerUpdateClaim, "1", claim("a", "r1", "0000:01:00.0"), &first)
		update(env, activities.LedgerUpdateClaim, "2", claim("b", "r9", "0000:01:00.0", "0000:03:00.0"), &rival)
		update(env, activities.LedgerUpdateClaim, "3", claim("a", "r2", "0000:01:00.0", "0000:03:00.0"), &again)
		update(env, activities.LedgerUpdateFree, "4", activities.ReleaseRequest{Cluster: "a", RunID: "r2"}, &freeRun)
		update(env, activities.LedgerUpdateFree, "5", activities.ReleaseRequest{Cluster: "a"}, &freeAll)
		env.CancelWorkflow()
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, activities.LedgerState{})

	require.NoError(t, first.rejected)
	require.NoError(t, first.err)
	assert.Equal(t, activities.ClaimResult{Added: []string{"0000:01:00.0"}}, first.value)
	require.Error(t, rival.rejected, "a device another cluster holds is refused, and nothing of the request is taken")
	assert.Contains(t, rival.rejected.Error(), "0000:01:00.0 is claimed by cluster a (VM gpu-01) since")
	assert.Equal(t, activities.ClaimResult{Added: []string{"0000:03:00.0"}}, again.value, "what the cluster holds already is not claimed again")
	assert.Equal(t, activities.ReleaseResult{Released: []string{"0000:03:00.0"}}, freeRun.value, "a run's compensation frees what that run claimed")
	assert.Equal(t, activities.ReleaseResult{Released: []string{"0000:01:00.0"}}, freeAll.value, "the first run's claim stayed until the cluster's were freed")
	v, err := env.QueryWorkflow(activities.LedgerQueryClaims)
	require.NoError(t, err)
	var left []activities.DeviceClaim
	require.NoError(t, v.Get(&left))
	assert.Empty(t, left)
}

func TestDeviceLedgerCarriesItsClaimsIntoTheNextRun(t *testing.T) {
	defer func(n int) { ledgerUpdatesPerRun = n }(ledgerUpdatesPerRun)
	ledgerUpdatesPerRun = 1
	env := ledgerEnv(t)
	var first updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, activities.LedgerUpdateClaim, "1", activities.ClaimRequest{Cluster: "a", RunID: "r1",
			Devices: []activities.DeviceClaim{{Address: "0000:01:00.0", VM: "gpu-01"}}}, &first)
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, activities.LedgerState{})
	require.NoError(t, first.err)
	var cont *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &cont), "%v", env.GetWorkflowError())
	assert.Equal(t, activities.LedgerWorkflowName, cont.WorkflowType.Name)
}

// A device moved from one VM of a cluster to another in cluster.yaml is
// named by both domains until the old one is destroyed: `destroy --vm`
// of the old VM must not free a GPU the new one uses.
func TestDeviceLedgerKeepsAMovedDeviceUntilNoVMNamesIt(t *testing.T) {
	env := ledgerEnv(t)
	claim := func(vm, run string) activities.ClaimRequest {
		return activities.ClaimRequest{Host: "hv1", Cluster: "a", RunID: run, Devices: []activities.DeviceClaim{{Address: "0000:01:00.0", VM: vm}}}
	}
	var first, moved, freeOld, rival, failedRun, freeNew updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, activities.LedgerUpdateClaim, "1", claim("gpu-01", "r1"), &first)
		update(env, activities.LedgerUpdateClaim, "2", claim("gpu-02", "r2"), &moved)
		update(env, activities.LedgerUpdateFree, "3", activities.ReleaseRequest{Cluster: "a", VM: "gpu-01"}, &freeOld)
		update(env, activities.LedgerUpdateClaim, "4", activities.ClaimRequest{Host: "hv1", Cluster: "b", RunID: "r9",
			Devices: []activities.DeviceClaim{{Address: "0000:01:00.0", VM: "x"}}}, &rival)
		update(env, activities.LedgerUpdateFree, "5", activities.ReleaseRequest{Cluster: "a", RunID: "r1"}, &failedRun)
		update(env, activities.LedgerUpdateFree, "6", activities.ReleaseRequest{Cluster: "a", VM: "gpu-02"}, &freeNew)
		env.CancelWorkflow()
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, activities.LedgerState{})

	require.NoError(t, moved.err)
	assert.Equal(t, activities.ClaimResult{}, moved.value, "the cluster held it already: nothing is claimed anew")
	assert.Equal(t, activities.ReleaseResult{}, freeOld.value, "the old VM's destroy frees nothing: the new VM names the device")
	require.Error(t, rival.rejected, "another cluster still cannot take it")
	assert.Contains(t, rival.rejected.Error(), "claimed by cluster a (VM gpu-0")
	assert.Equal(t, activities.ReleaseResult{}, failedRun.value, "r1's holder is gone already")
	assert.Equal(t, activities.ReleaseResult{Released: []string{"0000:01:00.0"}}, freeNew.value, "free once no VM names it")
}

// Claims recorded before a claim had holders keep their one holder.
func TestDeviceClaimsRecordedBeforeHoldersKeepTheirVM(t *testing.T) {
	old := activities.DeviceClaim{Address: "0000:01:00.0", Cluster: "a", VM: "gpu-01", RunID: "r1"}
	left, free := old.WithoutHolders("gpu-02", "")
	assert.False(t, free)
	assert.Equal(t, "gpu-01", left.VM)
	_, free = old.WithoutHolders("gpu-01", "")
	assert.True(t, free)
	assert.Equal(t, "gpu-01, gpu-02", old.WithHolder("gpu-02", "r2").HolderNames())
}
