package workflows

import (
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

// A node added to a running cluster gets its lease in place; when it fails,
// only what this run made for it is undone, never the running cluster.
func TestScaleOutRollsBackTheFailedNodeAlone(t *testing.T) {
	req := testRequest(t)
	running, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	inv := existingInventory(running)
	req.Spec.ComputeNodes = append(req.Spec.ComputeNodes,
		cluster.NodeSpec{Name: "compute-03", MemoryMB: 128, CPUCores: 1, DiskSizeGB: 1},
		cluster.NodeSpec{Name: "compute-04", MemoryMB: 128, CPUCores: 1, DiskSizeGB: 1})
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: inv, failAt: "StartDomain lab-compute-04"}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, req)
	err = env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "node(s) compute-04 rolled back alone")
	assert.Equal(t, []string{"ForceOffDomain lab-compute-04", "DeleteDomain lab-compute-04", "DeleteVolume compute-04.qcow2", "DeleteDHCPHost compute-04"}, r.undo)
	assert.Contains(t, r.calls, "EnsureDHCPHost compute-03")
	assert.NotContains(t, r.calls, "EnsureDHCPHost compute-01", "a node with its lease gets none")
}

func TestScaleOutKeepsEveryAddress(t *testing.T) {
	req := testRequest(t)
	running, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	inv := existingInventory(running)
	// compute-01 leaves the file, compute-00 joins, sorting before the rest.
	req.Spec.ComputeNodes = []cluster.NodeSpec{
		{Name: "compute-00", MemoryMB: 128, CPUCores: 1, DiskSizeGB: 1},
		req.Spec.ComputeNodes[1],
	}
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: inv}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, req)
	require.NoError(t, env.GetWorkflowError())
	var res api.StartResult
	require.NoError(t, env.GetWorkflowResult(&res))
	old := map[string]string{}
	for _, vm := range running.VMs {
		old[vm.Name] = vm.IP
	}
	for _, vm := range res.Plan.VMs {
		if ip, ok := old[vm.Name]; ok {
			assert.Equal(t, ip, vm.IP, "%s keeps its address", vm.Name)
		}
		for name, ip := range old {
			if name != vm.Name {
				assert.NotEqual(t, ip, vm.IP, "%s does not take %s's address", vm.Name, name)
			}
		}
	}
	assert.Equal(t, []string{"compute-01"}, res.NotInFile)
	assert.Equal(t, []string{"volume compute-00.qcow2", "domain lab-compute-00"}, res.Created)
	assert.Contains(t, r.calls, "EnsureDHCPHost compute-00")
	assert.Equal(t, []string{"lab-compute-00"}, res.Started)
}

func TestStartRefusesLookalikesBeforeCreatingAnything(t *testing.T) {
	inv := api.Inventory{
		Network: &api.NetworkState{Name: "lab-network", UUID: "0f4b7c1e-0000-4000-8000-000000000001", Bridge: "br-lab"},
		Pool:    &api.PoolState{Name: "lab-pool", UUID: "0f4b7c1e-0000-4000-8000-000000000002", Path: "/srv/pools/lab"},
	}
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: inv}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, testRequest(t))
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "network lab-network exists but was not created by hpcvm")
	assert.Contains(t, err.Error(), "pool lab-pool (at /srv/pools/lab) exists but was not created by hpcvm")
	assert.Equal(t, []string{"InspectCluster"}, r.calls)
	assert.Empty(t, r.undo)
}

// The workflow refuses a bad request itself, before any activity.
func TestWorkflowsValidateTheirRequest(t *testing.T) {
	bad := testRequest(t)
	bad.Spec.Controller.CPUCores = 0
	for name, wf := range map[string]any{"start": StartCluster, "describe": DescribeCluster} {
		t.Run(name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := onHost(&s, "hv1")
			r := &recorder{}
			r.install(env)
			env.ExecuteWorkflow(wf, bad)
			err := env.GetWorkflowError()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "controller.cpu_cores")
			assert.Empty(t, r.calls)
		})
	}
	noName := api.Request{Spec: cluster.Spec{Cluster: cluster.ClusterSpec{Name: "../x", Host: "hv1"}}}
	for name, wf := range map[string]any{"stop": StopCluster, "destroy": DestroyCluster} {
		t.Run(name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := onHost(&s, "hv1")
			r := &recorder{}
			r.install(env)
			env.ExecuteWorkflow(wf, noName)
			err := env.GetWorkflowError()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "cluster.name")
			assert.Empty(t, r.calls)
		})
	}
}

func TestDecideDestroy(t *testing.T) {
	plan, err := cluster.NewPlan(testRequest(t).Spec)
	require.NoError(t, err)
	base := func() api.Inventory { return existingInventory(plan) }
	cases := []struct {
		name  string
		inv   func() api.Inventory
		only  []string
		check func(t *testing.T, d destroyDecision)
	}{
		{"everything owned goes", base, nil, func(t *testing.T, d destroyDecision) {
			assert.Len(t, d.Domains, 3)
			assert.Equal(t, []string{"lab-base.qcow2"}, d.Bases)
			assert.True(t, d.Pool)
			assert.True(t, d.Network)
			assert.Empty(t, d.Kept)
			assert.Empty(t, d.LeftAlone)
		}},
		{"hand-made network and pool with our names: nothing of them is touched", func() api.Inventory {
			return api.Inventory{
				Network: &api.NetworkState{Name: "lab-network", UUID: "u1", Bridge: "br-lab"},
				Pool:    &api.PoolState{Name: "lab-pool", UUID: "u2", Path: "/srv/pools/lab"},
			}
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.Empty(t, d.Domains)
			assert.Empty(t, d.LooseVolumes)
			assert.Empty(t, d.Bases)
			assert.False(t, d.Pool)
			assert.False(t, d.Network)
			assert.Len(t, d.LeftAlone, 2)
			assert.Contains(t, d.LeftAlone[0], "not created by hpcvm")
		}},
		{"a file hpcvm did not make keeps the pool", func() api.Inventory {
			inv := base()
			inv.Volumes["notes.txt"] = api.VolumeState{Name: "notes.txt", Path: "/srv/pools/lab/notes.txt"}
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.True(t, d.Pool, "DeletePool is tried and keeps the pool, since the file stays")
			require.Len(t, d.Kept, 1)
			assert.Contains(t, d.Kept[0], "notes.txt")
		}},
		{"a disk another domain uses stays", func() api.Inventory {
			inv := base()
			inv.ForeignDisks = []string{"/srv/pools/lab/compute-01.qcow2"}
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			for _, td := range d.Domains {
				assert.NotContains(t, td.Volumes, "compute-01.qcow2")
			}
			assert.Contains(t, strings.Join(d.Kept, "\n"), "compute-01.qcow2")
		}},
		{"an inactive pool that cannot start is kept, the rest goes", func() api.Inventory {
			inv := base()
			inv.Volumes, inv.VolumesListed = nil, false
			inv.Pool.Active, inv.Pool.Problem = false, "cannot access /srv/pools/lab"
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.Len(t, d.Domains, 3)
			assert.False(t, d.Pool)
			assert.True(t, d.Network)
			assert.Contains(t, strings.Join(d.Kept, "\n"), "cannot access")
		}},
		{"a foreign domain on our network keeps it", func() api.Inventory {
			inv := base()
			inv.NetworkUsers = []string{"someone-else"}
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.False(t, d.Network)
			assert.Contains(t, strings.Join(d.Kept, "\n"), "someone-else")
		}},
		{"an empty pool goes", func() api.Inventory {
			inv := base()
			inv.Domains = nil
			inv.Volumes = map[string]api.VolumeState{}
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.True(t, d.Pool)
			assert.Empty(t, d.Kept)
		}},
		{"a pool whose directory is gone is undefined", func() api.Inventory {
			inv := base()
			inv.Volumes, inv.VolumesListed = nil, false
			inv.Pool.Active, inv.Pool.Problem, inv.Pool.DirMissing = false, "no such directory", true
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.True(t, d.Pool)
			assert.Empty(t, d.Kept)
		}},
		{"a disk layered on another VM's disk keeps the whole chain", func() api.Inventory {
			inv := base()
			inv.Volumes["snap.qcow2"] = api.VolumeState{Name: "snap.qcow2", Path: "/srv/pools/lab/snap.qcow2", BackingPath: "/srv/pools/lab/compute-01.qcow2"}
			inv.ForeignDisks = []string{"/srv/pools/lab/snap.qcow2"}
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			kept := strings.Join(d.Kept, "\n")
			assert.Contains(t, kept, "volume snap.qcow2")
			assert.Contains(t, kept, "volume compute-01.qcow2 (snap.qcow2 stands on it)")
			assert.Contains(t, kept, "volume lab-base.qcow2 (snap.qcow2 stands on it)")
			assert.Empty(t, d.Bases)
			for _, td := range d.Domains {
				assert.NotContains(t, td.Volumes, "compute-01.qcow2")
			}
		}},
		{"a foreign domain that cannot be read keeps pool and network", func() api.Inventory {
			inv := base()
			inv.Unreadable = []string{"odd-vm"}
			return inv
		}, nil, func(t *testing.T, d destroyDecision) {
			assert.Len(t, d.Domains, 3, "the cluster's own domains still go")
			for _, td := range d.Domains {
				assert.Empty(t, td.Volumes)
			}
			assert.Empty(t, d.Bases)
			assert.False(t, d.Pool)
			assert.False(t, d.Network)
			assert.Contains(t, strings.Join(d.Kept, "\n"), "odd-vm")
		}},
		{"--vm removes one node and its lease only", base, []string{"compute-01", "ghost"}, func(t *testing.T, d destroyDecision) {
			require.Len(t, d.Domains, 1)
			assert.Equal(t, "lab-compute-01", d.Domains[0].Name)
			assert.Equal(t, []string{"compute-01.qcow2"}, d.Domains[0].Volumes)
			require.Len(t, d.Leases, 1)
			assert.Equal(t, "compute-01", d.Leases[0].Name)
			assert.Empty(t, d.Bases)
			assert.False(t, d.Pool)
			assert.False(t, d.Network)
			assert.Equal(t, []string{"ghost"}, d.Missing)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, decideDestroy("lab", tc.inv(), tc.only)) })
	}
}

// A typo among the --vm names deletes nothing, and says which VMs exist.
func TestDestroyVMWithATypoDeletesNothing(t *testing.T) {
	req := testRequest(t)
	plan, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	req.VMs = []string{"compute-01", "compue-02"}
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: existingInventory(plan)}
	r.install(env)
	env.ExecuteWorkflow(DestroyCluster, req)
	err = env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no VM compue-02")
	assert.Contains(t, err.Error(), "its VMs are: compute-01, compute-02, controller-01")
	assert.Empty(t, r.undo)
}
