package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
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
	env.RegisterWorkflowWithOptions(DeviceLedger, workflow.RegisterOptions{Name: api.LedgerWorkflowName})
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
	claim := func(cluster, run string, addrs ...string) api.ClaimRequest {
		req := api.ClaimRequest{Host: "hv1", Cluster: cluster, RunID: run}
		for _, a := range addrs {
			req.Devices = append(req.Devices, api.DeviceClaim{Address: a, VM: "gpu-01"})
		}
		return req
	}
	var first, rival, again, freeRun, freeAll updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.LedgerUpdateClaim, "1", claim("a", "r1", "0000:01:00.0"), &first)
		update(env, api.LedgerUpdateClaim, "2", claim("b", "r9", "0000:01:00.0", "0000:03:00.0"), &rival)
		update(env, api.LedgerUpdateClaim, "3", claim("a", "r2", "0000:01:00.0", "0000:03:00.0"), &again)
		update(env, api.LedgerUpdateFree, "4", api.ReleaseRequest{Cluster: "a", RunID: "r2"}, &freeRun)
		update(env, api.LedgerUpdateFree, "5", api.ReleaseRequest{Cluster: "a"}, &freeAll)
		env.CancelWorkflow()
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, api.LedgerState{})

	require.NoError(t, first.rejected)
	require.NoError(t, first.err)
	assert.Equal(t, api.ClaimResult{Added: []string{"0000:01:00.0"}}, first.value)
	require.Error(t, rival.rejected, "a device another cluster holds is refused, and nothing of the request is taken")
	assert.Contains(t, rival.rejected.Error(), "0000:01:00.0 is claimed by cluster a (VM gpu-01) since")
	assert.Equal(t, api.ClaimResult{Added: []string{"0000:03:00.0"}}, again.value, "what the cluster holds already is not claimed again")
	assert.Equal(t, api.ReleaseResult{Released: []string{"0000:03:00.0"}}, freeRun.value, "a run's compensation frees what that run claimed")
	assert.Equal(t, api.ReleaseResult{Released: []string{"0000:01:00.0"}}, freeAll.value, "the first run's claim stayed until the cluster's were freed")
	v, err := env.QueryWorkflow(api.LedgerQueryClaims)
	require.NoError(t, err)
	var left []api.DeviceClaim
	require.NoError(t, v.Get(&left))
	assert.Empty(t, left)
}

func TestDeviceLedgerCarriesItsClaimsIntoTheNextRun(t *testing.T) {
	defer func(n int) { ledgerUpdatesPerRun = n }(ledgerUpdatesPerRun)
	ledgerUpdatesPerRun = 1
	env := ledgerEnv(t)
	var first updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.LedgerUpdateClaim, "1", api.ClaimRequest{Cluster: "a", RunID: "r1",
			Devices: []api.DeviceClaim{{Address: "0000:01:00.0", VM: "gpu-01"}}}, &first)
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, api.LedgerState{})
	require.NoError(t, first.err)
	var cont *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &cont), "%v", env.GetWorkflowError())
	assert.Equal(t, api.LedgerWorkflowName, cont.WorkflowType.Name)
}

// A device moved from one VM of a cluster to another in cluster.yaml is
// named by both domains until the old one is destroyed: `destroy --vm`
// of the old VM must not free a GPU the new one uses.
func TestDeviceLedgerKeepsAMovedDeviceUntilNoVMNamesIt(t *testing.T) {
	env := ledgerEnv(t)
	claim := func(vm, run string) api.ClaimRequest {
		return api.ClaimRequest{Host: "hv1", Cluster: "a", RunID: run, Devices: []api.DeviceClaim{{Address: "0000:01:00.0", VM: vm}}}
	}
	var first, moved, freeOld, rival, failedRun, freeNew updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.LedgerUpdateClaim, "1", claim("gpu-01", "r1"), &first)
		update(env, api.LedgerUpdateClaim, "2", claim("gpu-02", "r2"), &moved)
		update(env, api.LedgerUpdateFree, "3", api.ReleaseRequest{Cluster: "a", VM: "gpu-01"}, &freeOld)
		update(env, api.LedgerUpdateClaim, "4", api.ClaimRequest{Host: "hv1", Cluster: "b", RunID: "r9",
			Devices: []api.DeviceClaim{{Address: "0000:01:00.0", VM: "x"}}}, &rival)
		update(env, api.LedgerUpdateFree, "5", api.ReleaseRequest{Cluster: "a", RunID: "r1"}, &failedRun)
		update(env, api.LedgerUpdateFree, "6", api.ReleaseRequest{Cluster: "a", VM: "gpu-02"}, &freeNew)
		env.CancelWorkflow()
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, api.LedgerState{})

	require.NoError(t, moved.err)
	assert.Equal(t, api.ClaimResult{}, moved.value, "the cluster held it already: nothing is claimed anew")
	assert.Equal(t, api.ReleaseResult{}, freeOld.value, "the old VM's destroy frees nothing: the new VM names the device")
	require.Error(t, rival.rejected, "another cluster still cannot take it")
	assert.Contains(t, rival.rejected.Error(), "claimed by cluster a (VM gpu-0")
	assert.Equal(t, api.ReleaseResult{}, failedRun.value, "r1's holder is gone already")
	assert.Equal(t, api.ReleaseResult{Released: []string{"0000:01:00.0"}}, freeNew.value, "free once no VM names it")
}

// Claims recorded before a claim had holders keep their one holder.
func TestDeviceClaimsRecordedBeforeHoldersKeepTheirVM(t *testing.T) {
	old := api.DeviceClaim{Address: "0000:01:00.0", Cluster: "a", VM: "gpu-01", RunID: "r1"}
	left, free := old.WithoutHolders("gpu-02", "")
	assert.False(t, free)
	assert.Equal(t, "gpu-01", left.VM)
	_, free = old.WithoutHolders("gpu-01", "")
	assert.True(t, free)
	assert.Equal(t, "gpu-01, gpu-02", old.WithHolder("gpu-02", "r2").HolderNames())
}

func TestHostLedgerGivesEachCPUAndPageToOneCluster(t *testing.T) {
	env := ledgerEnv(t)
	pages := func(cell int, n uint64) []api.HugepageClaim {
		return []api.HugepageClaim{{SizeKiB: 2048, Cell: cell, Pages: n}}
	}
	capacity := []api.HugepagePool{{SizeKiB: 2048, Cell: 0, Pages: 100}, {SizeKiB: 2048, Cell: 1, Pages: 100}}
	claim := func(cluster, run string, rs ...api.ResourceClaim) api.ClaimRequest {
		return api.ClaimRequest{Host: "hv1", Cluster: cluster, RunID: run, Resources: rs, Capacity: capacity}
	}
	var first, rivalCPU, rivalPages, rivalAny, fits, adopted, again, freeRun, freeVM updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.LedgerUpdateClaim, "1", claim("a", "r1",
			api.ResourceClaim{VM: "a-1", CPUs: []int{0, 1}, Hugepages: pages(0, 60), MemoryMiB: 120},
			api.ResourceClaim{VM: "a-2", CPUs: []int{2, 3}, MemoryMiB: 512}), &first)
		// Another cluster's start planned from the same probe: CPU 1.
		update(env, api.LedgerUpdateClaim, "2", claim("b", "r2", api.ResourceClaim{VM: "b-1", CPUs: []int{1, 4}}), &rivalCPU)
		// 60 + 50 pages on cell 0, which reserves 100.
		update(env, api.LedgerUpdateClaim, "3", claim("b", "r2", api.ResourceClaim{VM: "b-1", Hugepages: pages(0, 50)}), &rivalPages)
		// 60 + 150 pages anywhere, where the host reserves 200.
		update(env, api.LedgerUpdateClaim, "4", claim("b", "r2", api.ResourceClaim{VM: "b-1", Hugepages: pages(-1, 150)}), &rivalAny)
		update(env, api.LedgerUpdateClaim, "5", claim("b", "r2", api.ResourceClaim{VM: "b-1", CPUs: []int{4, 5}, Hugepages: pages(1, 100)}), &fits)
		// A domain of cluster c the ledger never heard of pins CPU 6:
		// taken in, so d cannot have it.
		req := claim("d", "r4", api.ResourceClaim{VM: "d-1", CPUs: []int{6}})
		req.Adopt = []api.ResourceClaim{{Cluster: "c", VM: "c-1", CPUs: []int{6}, MemoryMiB: 64}, {Cluster: "a", VM: "a-1", CPUs: []int{9}}}
		update(env, api.LedgerUpdateClaim, "6", req, &adopted)
		// The same claims again (a start of a stopped cluster): nothing new.
		update(env, api.LedgerUpdateClaim, "7", claim("a", "r5",
			api.ResourceClaim{VM: "a-1", CPUs: []int{0, 1}, Hugepages: pages(0, 60), MemoryMiB: 120}), &again)
		update(env, api.LedgerUpdateFree, "8", api.ReleaseRequest{Cluster: "a", RunID: "r5"}, &freeRun)
		update(env, api.LedgerUpdateFree, "9", api.ReleaseRequest{Cluster: "a", VM: "a-2"}, &freeVM)
		env.CancelWorkflow()
	}, 0)
	env.ExecuteWorkflow(DeviceLedger, api.LedgerState{})

	require.NoError(t, first.rejected)
	assert.Equal(t, api.ClaimResult{ResourcesAdded: []string{"a-1", "a-2"}}, first.value)
	require.Error(t, rivalCPU.rejected)
	assert.Contains(t, rivalCPU.rejected.Error(), "VM b-1 would be pinned to CPU 1 (cluster a, VM a-1, since")
	require.Error(t, rivalPages.rejected)
	assert.Contains(t, rivalPages.rejected.Error(), "110 2M hugepages would be claimed on host NUMA cell 0, which reserves 100 (other clusters hold a/a-1 60)")
	require.Error(t, rivalAny.rejected)
	assert.Contains(t, rivalAny.rejected.Error(), "210 2M hugepages would be claimed on the host, which reserves 200")
	require.NoError(t, fits.rejected, "other CPUs, and pages on the other cell, fit")
	require.NoError(t, fits.err)
	require.NoError(t, adopted.rejected, "the validator does not see what the handler adopts")
	require.Error(t, adopted.err)
	assert.Contains(t, adopted.err.Error(), "CPU 6 (cluster c, VM c-1")
	assert.Nil(t, again.value.(api.ClaimResult).ResourcesAdded, "claims the cluster holds already are not made again")
	assert.Empty(t, freeRun.value.(api.ReleaseResult).ResourcesReleased, "a run that claimed nothing new gives nothing back")
	assert.Equal(t, []string{"a-2"}, freeVM.value.(api.ReleaseResult).ResourcesReleased)

	v, err := env.QueryWorkflow(api.LedgerQueryAll)
	require.NoError(t, err)
	var view api.LedgerView
	require.NoError(t, v.Get(&view))
	var held []string
	for _, r := range view.Resources {
		held = append(held, fmt.Sprintf("%s/%s %v adopted=%v", r.Cluster, r.VM, r.CPUs, r.Adopted))
	}
	assert.Equal(t, []string{"a/a-1 [0 1] adopted=false", "b/b-1 [4 5] adopted=false", "c/c-1 [6] adopted=true"}, held,
		"a-1's own claim wins over what libvirt showed of it; c's domain was taken in")
}

func TestClusterRegistryBindsANameToItsHost(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(ClusterRegistry, workflow.RegisterOptions{Name: api.RegistryWorkflowName})
	var first, again, elsewhere, adopt, unbindOther, unbindRun, unbind, rebind updateOutcome
	env.RegisterDelayedCallback(func() {
		update(env, api.RegistryUpdateBind, "1", api.BindRequest{Cluster: "lab", Host: "hv1", RunID: "r1"}, &first)
		update(env, api.RegistryUpdateBind, "2", api.BindRequest{Cluster: "lab", Host: "hv1", RunID: "r2"}, &again)
		update(env, api.RegistryUpdateBind, "3", api.BindRequest{Cluster: "lab", Host: "hv2", RunID: "r3"}, &elsewhere)
		update(env, api.RegistryUpdateBind, "4", api.BindRequest{Cluster: "lab", Host: "hv3", Adopt: true}, &adopt)
		update(env, api.RegistryUpdateUnbind, "5", api.UnbindRequest{Cluster: "lab", Host: "hv1", RunID: "r2"}, &unbindRun)
		update(env, api.RegistryUpdateUnbind, "6", api.UnbindRequest{Cluster: "lab", Host: "hv3"}, &unbindOther)
		update(env, api.RegistryUpdateUnbind, "7", api.UnbindRequest{Cluster: "lab", Host: "hv1"}, &unbind)
	}, 0)
	// Validators judge an update when it arrives: this one after the
	// unbinds ran.
	env.RegisterDelayedCallback(func() {
		update(env, api.RegistryUpdateBind, "8", api.BindRequest{Cluster: "lab", Host: "hv2", RunID: "r4"}, &rebind)
		env.CancelWorkflow()
	}, time.Second)
	env.ExecuteWorkflow(ClusterRegistry, api.RegistryState{})
	assert.Equal(t, api.BindResult{Added: true}, first.value)
	assert.Equal(t, api.BindResult{}, again.value, "a cluster bound to the host stays bound")
	require.Error(t, elsewhere.rejected)
	assert.Contains(t, elsewhere.rejected.Error(), "cluster lab lives on host hv1")
	assert.Equal(t, api.BindResult{Added: true}, adopt.value, "a worker that finds the cluster on its host binds it there too")
	assert.Equal(t, api.UnbindResult{}, unbindRun.value, "a start's rollback does not remove a binding an earlier start made")
	assert.Equal(t, api.UnbindResult{Removed: true}, unbindOther.value)
	assert.Equal(t, api.UnbindResult{Removed: true}, unbind.value)
	assert.Equal(t, api.BindResult{Added: true}, rebind.value, "once destroyed, the name is free for any host")
}
