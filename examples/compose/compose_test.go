package compose

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

const labYAML = `
cluster:
  name: lab
  host: hv1
  storage:
    base_image: /var/lib/hpcvm/images/base.qcow2
network:
  network_range: 192.168.151.0/24
controller:
  count: 1
compute_nodes:
  - name: compute-01
`

// BuildLab starts StartCluster as a child on the cluster host's queue,
// under hpcvm's workflow ID, and reports the VMs' addresses.
func TestBuildLabComposesStartCluster(t *testing.T) {
	spec, err := cluster.Parse([]byte(labYAML))
	require.NoError(t, err)
	plan, err := cluster.NewPlan(spec)
	require.NoError(t, err)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(BuildLab)
	var asked api.Request
	var info workflow.Info
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, req api.Request) (api.StartResult, error) {
		asked, info = req, *workflow.GetInfo(ctx)
		return api.StartResult{Plan: plan}, nil
	}, workflow.RegisterOptions{Name: api.StartClusterName})
	env.ExecuteWorkflow(BuildLab, LabRequest{Cluster: api.Request{Spec: spec}, Then: "run the MPI tests"})
	require.NoError(t, env.GetWorkflowError())
	var ready LabReady
	require.NoError(t, env.GetWorkflowResult(&ready))
	assert.Equal(t, "lab", asked.Spec.Cluster.Name)
	assert.Equal(t, api.WorkflowID("lab"), info.WorkflowExecution.ID)
	assert.Equal(t, api.ControlQueue, info.TaskQueueName, "on the control queue; its steps go to hv1")
	assert.Equal(t, "hv1", ready.Host)
	assert.Len(t, ready.IPs, 2)
	assert.True(t, strings.HasPrefix(ready.IPs["compute-01"], "192.168.151."), ready.IPs["compute-01"])
}

// The composing workflow needs neither cgo nor libvirt nor viper: it
// builds with CGO_ENABLED=0, and nothing of hpcvm's host side is linked.
func TestComposingWorkflowBuildsWithoutCgo(t *testing.T) {
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "CGO_ENABLED=0 go build: %s", out)

	cmd = exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err = cmd.Output()
	require.NoError(t, err)
	// Nor do the workflows (they name activities, not import them) and
	// the CLI: only the worker needs libvirt's headers.
	for _, pkg := range []string{"../../internal/workflows", "../../cmd/hpcvm"} {
		cmd := exec.Command("go", "build", "-o", os.DevNull, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "CGO_ENABLED=0 go build %s: %s", pkg, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"libvirt.org/go/libvirt", "github.com/spf13/viper", "github.com/hpcvm/hpcvm/internal/activities", "github.com/hpcvm/hpcvm/internal/workflows", "github.com/hpcvm/hpcvm/internal/libvirt"} {
			assert.NotEqual(t, banned, dep, "the composing workflow links %s", dep)
		}
	}
}
