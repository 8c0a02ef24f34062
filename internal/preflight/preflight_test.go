package preflight

import (
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testSpec = `
cluster:
  name: lab
  host: hv1
  storage: {pool_path: /srv/pools, base_image: /srv/base.qcow2}
controller: {memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}
compute_nodes:
  - {name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}
  - {name: compute-02, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}
`

func testPlan(t *testing.T) cluster.Plan {
	t.Helper()
	s, err := cluster.Parse([]byte(testSpec))
	require.NoError(t, err)
	plan, err := cluster.NewPlan(s)
	require.NoError(t, err)
	return plan
}

func TestJudgeSpaceRefusesABaseThatDoesNotFitAndNotesThinDisks(t *testing.T) {
	plan := testPlan(t)
	img := api.ImageInfo{Path: "/srv/base.qcow2", Format: "qcow2", VirtualSize: 2 << 30, FileSize: 3 << 30, Allocated: 1 << 30}
	space := api.SpaceInfo{Measured: "/srv", Available: 512 << 20}

	_, err := judgeSpace(plan, api.Inventory{}, img, false, space)
	require.Error(t, err)
	assert.Equal(t, "the pool's file system (at /srv) has 512.0 MiB free, and the base image /srv/base.qcow2 needs 1.0 GiB: free space there, or choose another cluster.storage.pool_path", err.Error(), "what the image allocates counts, not its apparent size")

	note, err := judgeSpace(plan, api.Inventory{}, img, true, space)
	require.NoError(t, err, "a base already in the pool needs no space")
	assert.Contains(t, note, "thin volumes: the 3 new VM disk(s) may grow to")
	assert.Contains(t, note, "has 512.0 MiB free once the base image is in")

	space.Available = 1 << 50
	note, err = judgeSpace(plan, api.Inventory{}, img, false, space)
	require.NoError(t, err)
	assert.Empty(t, note)
}

// The new network's bridge is checked too: libvirt refuses a network whose
// bridge another network or a host interface holds.
func TestRangeClashNamesWhoHoldsTheBridge(t *testing.T) {
	plan := testPlan(t)
	foreign := api.AddressInUse{Owner: "libvirt network isolated (bridge " + plan.Network.Bridge + ")", Bridge: plan.Network.Bridge, Network: "isolated"}
	err := rangeClash(plan, []api.AddressInUse{foreign})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the cluster network's bridge "+plan.Network.Bridge+" is taken on host hv1 by libvirt network isolated")
	assert.Contains(t, err.Error(), "network.bridge_name")

	route := api.AddressInUse{Subnet: "10.99.0.0/16", Owner: "a route of the host (dev " + plan.Network.Bridge + ")", Bridge: plan.Network.Bridge}
	err = rangeClash(plan, []api.AddressInUse{route})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is taken on host hv1 by a route of the host (dev "+plan.Network.Bridge+")")
	assert.NotContains(t, err.Error(), "overlaps", "10.99.0.0/16 is outside the cluster's range")
}
