package workflows

// The history recorder: a tool, not a test. It runs the real workflows on a
// real in-process Temporal server (temporaltest) against fake activities,
// drives every scenario of historyScenarios, and writes each run's history
// to testdata/histories as JSON, for TestReplayRecordedHistories.
//
//	HPCVM_RECORD_HISTORIES=v2 go test -tags record -count=1 -run 'TestRecordHistories$' ./internal/workflows/
//
// The value names the recording set: the files are
// testdata/histories/<scenario>.<set>.json. A set is never overwritten: the
// histories of older code must keep replaying, so a new recording gets a new
// set name and the old files stay.

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/activities"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/hpcvm/hpcvm/internal/preflight"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

const (
	// recordHistoriesEnv names the recording set (record_tool_test.go).
	recordHistoriesEnv = "HPCVM_RECORD_HISTORIES"
	historiesDir       = "testdata/histories"
	// baselineSet is the set recorded when the version ladders were
	// retired (the plan became data): every history before it was
	// dropped with them. See README.md, "Upgrading a worker".
	baselineSet      = "base"
	recorderIdentity = "hpcvm-history-recorder"
)

var recordingSetName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// historyScenario is one recorded run: how to record it, and what its
// history must show (TestReplayRecordedHistories checks that too, so a file
// cannot silently stop being the scenario it is named after).
type historyScenario struct {
	name     string
	workflow string
	// closed is the history's last event.
	closed enumspb.EventType
	// failureType is the application error type of a failed run.
	failureType string
	// scheduled are activity types the history must schedule, and
	// notScheduled ones it must not.
	scheduled, notScheduled []string
	// events are event types the history must hold.
	events []enumspb.EventType

	// Recording.
	// questions, if set, makes the run a host's questions workflow
	// started with this state instead of an operation on a cluster: drive
	// asks the questions, and the run ends by continuing as new.
	questions *api.HostQuestionsState
	request   func(t *testing.T) api.Request
	script    func(t *testing.T) *fakeScript
	// drive, if set, acts on the run while it is under way (cancel).
	drive func(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, s *fakeScript)
	// check asserts the run's outcome: the recording is of what it says.
	check func(t *testing.T, run client.WorkflowRun, err error)
}

func historyScenarios() []historyScenario {
	running := func(t *testing.T) api.Inventory {
		plan, err := cluster.NewPlan(testRequest(t).Spec)
		require.NoError(t, err)
		return existingInventory(plan)
	}
	startResult := func(t *testing.T, run client.WorkflowRun, err error) api.StartResult {
		require.NoError(t, err)
		var res api.StartResult
		require.NoError(t, run.Get(context.Background(), &res))
		return res
	}
	startFailure := func(t *testing.T, err error, wantType string) api.Failure {
		var appErr *temporal.ApplicationError
		require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
		require.Equal(t, wantType, appErr.Type(), "%v", err)
		var f api.Failure
		require.NoError(t, appErr.Details(&f))
		return f
	}
	stopResult := func(t *testing.T, run client.WorkflowRun, err error) api.StopResult {
		require.NoError(t, err)
		var res api.StopResult
		require.NoError(t, run.Get(context.Background(), &res))
		return res
	}
	const (
		completed = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
		failed    = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
		canceled  = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
	)
	rollback := []string{"ForceOffDomain", "DeleteDomain", "DeleteVolume", "DeletePool", "DeleteNetwork"}

	return []historyScenario{{
		name: "start-success", workflow: api.StartClusterName, closed: completed,
		scheduled: []string{"Preflight", "EnsureNetwork",
			"EnsurePool", "UploadBaseImage", "EnsureVolume", "EnsureDomain", "StartDomain"},
		notScheduled: rollback,
		request:      testRequest,
		script:       func(*testing.T) *fakeScript { return newFakeScript() },
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			res := startResult(t, run, err)
			assert.Len(t, res.Started, 3)
		},
	}, {
		// The last domain fails to start: every VM's start, domain and
		// volume, then base, pool and network are undone.
		name: "start-failure-rollback", workflow: api.StartClusterName, closed: failed, failureType: "StartFailed",
		scheduled: append([]string{"StartDomain"}, rollback...),
		request:   testRequest,
		script: func(*testing.T) *fakeScript {
			s := newFakeScript()
			s.failAt = "StartDomain lab-compute-02"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			f := startFailure(t, err, "StartFailed")
			assert.Equal(t, "start lab-compute-02", f.FailedStep)
			assert.Contains(t, f.RolledBack, "network lab-network")
			assert.Empty(t, f.NotUndone)
		},
	}, {
		// Cancelled while the VMs' volumes are being created: the run
		// waits for the cancelled steps, then rolls back.
		name: "start-cancelled", workflow: api.StartClusterName, closed: canceled,
		scheduled: []string{"EnsureVolume", "DeleteVolume", "DeletePool", "DeleteNetwork"},
		events: []enumspb.EventType{enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			// A cancelled step learns of it from its next heartbeat.
			req.Options.HeartbeatTimeout = 2 * time.Second
			return req
		},
		script: func(*testing.T) *fakeScript {
			s := newFakeScript()
			s.block = "EnsureVolume "
			return s
		},
		drive: func(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, s *fakeScript) {
			s.waitBlocked(t, 3) // every VM's volume step is under way
			require.NoError(t, c.CancelWorkflow(ctx, run.GetID(), run.GetRunID()))
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			var canceledErr *temporal.CanceledError
			require.True(t, errors.As(err, &canceledErr), "want cancelled, got %v", err)
		},
	}, {
		// Two nodes join a running cluster; compute-04 fails to start and
		// is rolled back alone (its start, domain, volume and lease).
		name: "start-scale-out-node-fails", workflow: api.StartClusterName, closed: failed, failureType: "StartFailed",
		scheduled:    []string{"EnsureDHCPHost", "ForceOffDomain", "DeleteDomain", "DeleteVolume", "DeleteDHCPHost"},
		notScheduled: []string{"DeletePool", "DeleteNetwork"},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.Spec.ComputeNodes = append(req.Spec.ComputeNodes,
				cluster.NodeSpec{Name: "compute-03", MemoryMB: 128, CPUCores: 1, DiskSizeGB: 1},
				cluster.NodeSpec{Name: "compute-04", MemoryMB: 128, CPUCores: 1, DiskSizeGB: 1})
			return req
		},
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			s.failAt = "StartDomain lab-compute-04"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			require.ErrorContains(t, err, "node(s) compute-04 rolled back alone")
			f := startFailure(t, err, "StartFailed")
			assert.Equal(t, []string{"start lab-compute-04", "domain lab-compute-04", "volume compute-04.qcow2", "DHCP lease compute-04"}, f.RolledBack)
		},
	}, {
		// The guests power off after the ACPI button, before the timer.
		name: "stop-guests-power-off", workflow: api.StopClusterName, closed: completed,
		scheduled: []string{"InspectCluster", "ShutdownDomain", "WaitDomainsOff", "ForceOffDomain"},
		events:    []enumspb.EventType{enumspb.EVENT_TYPE_TIMER_STARTED, enumspb.EVENT_TYPE_TIMER_CANCELED},
		request:   testRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			res := stopResult(t, run, err)
			assert.False(t, res.TimerEnded)
			assert.Len(t, res.ShutDown, 3)
			assert.Empty(t, res.ForcedOff)
		},
	}, {
		// The guests ignore the button: the durable timer wins, the wait
		// is cancelled and the guests are forced off.
		name: "stop-timer-forces-off", workflow: api.StopClusterName, closed: completed,
		scheduled: []string{"InspectCluster", "ShutdownDomain", "WaitDomainsOff", "ForceOffDomain"},
		events: []enumspb.EventType{enumspb.EVENT_TYPE_TIMER_STARTED, enumspb.EVENT_TYPE_TIMER_FIRED,
			enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.Options.ShutdownTimeout = 3 * time.Second
			req.Options.HeartbeatTimeout = 2 * time.Second
			return req
		},
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			s.block = "WaitDomainsOff"
			s.stillRunning = true
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			res := stopResult(t, run, err)
			assert.True(t, res.TimerEnded)
			assert.Len(t, res.ForcedOff, 3)
		},
	}, {
		name: "destroy-success", workflow: api.DestroyClusterName, closed: completed,
		scheduled: []string{"InspectCluster", "DeleteDomain", "DeleteVolume", "DeletePool", "DeleteNetwork"},
		request:   testRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
			var res api.DestroyResult
			require.NoError(t, run.Get(context.Background(), &res))
			assert.Empty(t, res.Kept)
			assert.Contains(t, res.Deleted, "pool lab-pool")
		},
	}, {
		// compute-02's domain cannot be deleted: it, its disk, the base
		// under that disk, the pool and the network (the domain may still
		// use it) are kept; destroy fails incomplete.
		name: "destroy-incomplete", workflow: api.DestroyClusterName, closed: failed, failureType: api.ErrTypeDestroyIncomplete,
		scheduled:    []string{"InspectCluster", "DeleteDomain", "DeleteVolume"},
		notScheduled: []string{"DeletePool", "DeleteNetwork"},
		request:      testRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			s.failAt = "DeleteDomain lab-compute-02"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "want an application error, got %v", err)
			require.Equal(t, api.ErrTypeDestroyIncomplete, appErr.Type())
			var res api.DestroyResult
			require.NoError(t, appErr.Details(&res))
			assert.Contains(t, strings.Join(res.Kept, "\n"), "volume compute-02.qcow2")
			assert.Contains(t, strings.Join(res.Kept, "\n"), "pool lab-pool")
			assert.Contains(t, strings.Join(res.Kept, "\n"), "network lab-network")
		},
	}, {
		// `hpcvm destroy --vm compute-02`: one node, its disk and lease.
		name: "destroy-vm", workflow: api.DestroyClusterName, closed: completed,
		scheduled:    []string{"InspectCluster", "DeleteDomain", "DeleteVolume", "DeleteDHCPHost"},
		notScheduled: []string{"DeletePool", "DeleteNetwork"},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.VMs = []string{"compute-02"}
			return req
		},
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
			var res api.DestroyResult
			require.NoError(t, run.Get(context.Background(), &res))
			assert.Contains(t, res.Deleted, "domain lab-compute-02")
		},
	}, {
		// `hpcvm destroy --vm compute-02,compue-09`: a name the cluster
		// does not have; nothing is deleted.
		name: "destroy-vm-missing", workflow: api.DestroyClusterName, closed: failed, failureType: api.ErrTypeBadInput,
		scheduled:    []string{"InspectCluster"},
		notScheduled: []string{"DeleteDomain", "DeleteVolume", "DeleteDHCPHost", "DeletePool", "DeleteNetwork"},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.VMs = []string{"compute-02", "compue-09"}
			return req
		},
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.Error(t, err)
			assert.Contains(t, err.Error(), "has no VM compue-09")
		},
	}, {
		// A host's questions workflow answers one question of each kind
		// as updates of one run, then continues as new.
		name: "host-questions", workflow: api.HostQuestionsName, closed: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
		scheduled: []string{"Describe", "Preflight", "ReadAuditLog", "PendingHostChanges"},
		events:    []enumspb.EventType{enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED},
		questions: &api.HostQuestionsState{Host: "hv1", PerRun: 4},
		request:   testRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		drive: func(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, _ *fakeScript) {
			ask := func(question string, arg, result any) {
				h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
					WorkflowID: run.GetID(), RunID: run.GetRunID(), UpdateName: question,
					Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
				})
				require.NoError(t, err)
				require.NoError(t, h.Get(ctx, result), question)
			}
			var d api.Description
			ask(api.QuestionDescribe, testRequest(t), &d)
			assert.Len(t, d.Inventory.Domains, 3)
			var r api.PlanReport
			ask(api.QuestionPlan, testRequest(t), &r)
			assert.NotEmpty(t, r.Checks)
			var log api.AuditLog
			ask(api.QuestionAudit, api.AuditRequest{Cluster: "lab"}, &log)
			var pending api.PendingChanges
			ask(api.QuestionPendingHostChanges, api.PendingRequest{}, &pending)
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
		},
	}, {
		name: "describe", workflow: api.DescribeClusterName, closed: completed,
		scheduled: []string{"Describe"},
		request:   testRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
			var d api.Description
			require.NoError(t, run.Get(context.Background(), &d))
			assert.Len(t, d.Inventory.Domains, 3)
		},
	}, {
		// A GPU node: its function is validated and claimed before
		// anything is created; a failed start gives the claim back last.
		name: "start-gpu-rollback", workflow: api.StartClusterName, closed: failed, failureType: "StartFailed",
		scheduled: append([]string{"Preflight", "ClaimDevices", "StartDomain", "ReleaseDevices"}, rollback...),
		request:   gpuRequest,
		script: func(*testing.T) *fakeScript {
			s := newFakeScript()
			s.failAt = "StartDomain lab-compute-02"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			f := startFailure(t, err, "StartFailed")
			assert.Equal(t, "device claims", f.RolledBack[len(f.RolledBack)-1])
		},
	}, {
		// A GPU node joins a running cluster and fails: it is rolled back
		// alone, and the device this run claimed for it is given back.
		name: "start-gpu-node-scale-out-fails", workflow: api.StartClusterName, closed: failed, failureType: "StartFailed",
		scheduled:    []string{"Preflight", "ClaimDevices", "EnsureDHCPHost", "DeleteDomain", "DeleteVolume", "DeleteDHCPHost", "ReleaseDevices"},
		notScheduled: []string{"DeletePool", "DeleteNetwork"},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.Spec.ComputeNodes = append(req.Spec.ComputeNodes, cluster.NodeSpec{Name: "gpu-01", MemoryMB: 128, CPUCores: 1, DiskSizeGB: 1,
				PCIePassthrough: &cluster.PCIePassthroughSpec{Enabled: true, Devices: []cluster.PCIDeviceSpec{{PCIAddress: "0000:01:00.0", DeviceType: "gpu"}}}})
			return req
		},
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			s.failAt = "StartDomain lab-gpu-01"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			require.ErrorContains(t, err, "node(s) gpu-01 rolled back alone")
			f := startFailure(t, err, "StartFailed")
			assert.Contains(t, f.RolledBack, "device claims of gpu-01")
			assert.NotContains(t, f.RolledBack, "device claims", "the cluster's other claims stay")
		},
	}, {
		// dns_mode routed with the host change allowed and confirmed: the
		// cluster joins the host's routing after its network; a failed
		// start leaves the routing again, before the network goes.
		name: "start-routed-rollback", workflow: api.StartClusterName, closed: failed, failureType: "StartFailed",
		scheduled: append([]string{"EnsureNetwork", "RoutedClusters", "JoinRouting", "StartDomain", "LeaveRouting"}, rollback...),
		request:   routedRequest,
		script: func(*testing.T) *fakeScript {
			s := newFakeScript()
			s.failAt = "StartDomain lab-compute-02"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			f := startFailure(t, err, "StartFailed")
			assert.Contains(t, f.RolledBack, "host routing br-lab")
		},
	}, {
		// dns_mode service_discovery allowed: the record is written once
		// the VMs run.
		name: "start-discovery", workflow: api.StartClusterName, closed: completed,
		scheduled: []string{"Preflight", "StartDomain", "WriteDiscoveryRecord"},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.Spec.Network.DNSMode = "service_discovery"
			req.Spec.HostConfiguration = map[string]any{"network": map[string]any{"enable_service_discovery": true}, "require_confirmation": false}
			return req
		},
		script: func(*testing.T) *fakeScript { return newFakeScript() },
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			startResult(t, run, err)
		},
	}, {
		// dns_mode shared_dns with host DNS integration: the host's
		// resolver learns the domain after the network; a failed start
		// takes the entry back before the network goes.
		name: "start-shared-dns-rollback", workflow: api.StartClusterName, closed: failed, failureType: "StartFailed",
		scheduled: append([]string{"Preflight", "EnsureNetwork", "WriteResolverEntry", "StartDomain", "RemoveResolverEntry"}, rollback...),
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.Spec.Network.DNSMode = "shared_dns"
			req.Spec.HostConfiguration = map[string]any{"network": map[string]any{"enable_host_dns_integration": true}}
			req.ConfirmedHostChanges = true
			return req
		},
		script: func(*testing.T) *fakeScript {
			s := newFakeScript()
			s.failAt = "StartDomain lab-compute-02"
			return s
		},
		check: func(t *testing.T, _ client.WorkflowRun, err error) {
			f := startFailure(t, err, "StartFailed")
			assert.Contains(t, f.RolledBack, "host resolver lab.local")
		},
	}, {
		// A routed cluster started again without a yes: its routing is in
		// place, so there is nothing to confirm and the run goes on.
		name: "start-routed-in-place", workflow: api.StartClusterName, closed: completed,
		scheduled: []string{"Preflight", "EnsureNetwork", "RoutedClusters", "JoinRouting", "StartDomain"},
		request: func(t *testing.T) api.Request {
			req := routedRequest(t)
			req.ConfirmedHostChanges = false
			return req
		},
		script: func(*testing.T) *fakeScript { return newFakeScript() },
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			startResult(t, run, err)
		},
	}, {
		// Every destroy of a whole cluster leaves the host's routing.
		name: "destroy-routed", workflow: api.DestroyClusterName, closed: completed,
		scheduled: []string{"InspectCluster", "LeaveRouting", "RemoveDiscoveryRecord", "DeleteDomain", "DeleteNetwork"},
		request:   routedRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
		},
	}, {
		// ... and takes back every host change: the registry record and
		// the host resolver's entry too.
		name: "destroy-host-changes", workflow: api.DestroyClusterName, closed: completed,
		scheduled: []string{"InspectCluster", "LeaveRouting", "RemoveDiscoveryRecord", "RemoveResolverEntry", "DeleteDomain", "DeleteNetwork"},
		request:   routedRequest,
		script: func(t *testing.T) *fakeScript {
			s := newFakeScript()
			s.inv = running(t)
			return s
		},
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
		},
	}, {
		name: "plan", workflow: api.PlanClusterName, closed: completed,
		scheduled:    []string{"Preflight"},
		notScheduled: []string{"EnsureNetwork", "ClaimDevices"},
		request:      gpuRequest,
		script:       func(*testing.T) *fakeScript { return newFakeScript() },
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
			var r api.PlanReport
			require.NoError(t, run.Get(context.Background(), &r))
			assert.True(t, r.OK(), "%+v", r.Checks)
			assert.NotEmpty(t, r.Documents)
		},
	}, {
		// validate runs start's preflight: with host DNS integration
		// allowed it looks at the resolver entry too.
		name: "plan-host-changes", workflow: api.PlanClusterName, closed: completed,
		scheduled:    []string{"Preflight"},
		notScheduled: []string{"EnsureNetwork", "WriteResolverEntry", "WriteDiscoveryRecord"},
		request: func(t *testing.T) api.Request {
			req := testRequest(t)
			req.Spec.Network.DNSMode = "shared_dns"
			req.Spec.HostConfiguration = map[string]any{"network": map[string]any{"enable_host_dns_integration": true}}
			return req
		},
		script: func(*testing.T) *fakeScript { return newFakeScript() },
		check: func(t *testing.T, run client.WorkflowRun, err error) {
			require.NoError(t, err)
			var r api.PlanReport
			require.NoError(t, run.Get(context.Background(), &r))
			assert.True(t, r.OK(), "%+v", r.Checks)
		},
	}}
}

// routedRequest is testRequest in dns_mode routed, with the routing
// allowed and confirmed.
func routedRequest(t *testing.T) api.Request {
	req := testRequest(t)
	req.Spec.Network.DNSMode = "routed"
	req.Spec.HostConfiguration = map[string]any{"network": map[string]any{"enable_cross_cluster_routing": true}}
	req.ConfirmedHostChanges = true
	req.RequestedBy = "ops@console"
	return req
}

// gpuRequest is testRequest with a GPU passed through to compute-01.
func gpuRequest(t *testing.T) api.Request {
	req := testRequest(t)
	req.Spec.ComputeNodes[0].PCIePassthrough = &cluster.PCIePassthroughSpec{Enabled: true,
		Devices: []cluster.PCIDeviceSpec{{PCIAddress: "0000:01:00.0", DeviceType: "gpu"}}}
	return req
}

func historyFile(scenario, set string) string {
	return filepath.Join(historiesDir, scenario+"."+set+".json")
}

// fakeActivities stands for *activities.Activities: methods of the same
// names and signatures, registered under the names the real worker uses,
// that do what the current fakeScript says instead of calling libvirt.
type fakeActivities struct {
	mu sync.Mutex
	s  *fakeScript
}

// fakeScript is what the fakes do in one scenario. Calls are named as in
// the workflow tests' recorder: "StartDomain lab-compute-02".
type fakeScript struct {
	inv api.Inventory
	// failAt is the call that fails, not retryably, as libvirt would.
	failAt string
	// block: calls starting with it heartbeat until cancelled.
	block   string
	blocked chan string
	// stillRunning is what ForceOffDomain answers: the domain was running.
	stillRunning bool
}

func newFakeScript() *fakeScript { return &fakeScript{blocked: make(chan string, 64)} }

func (f *fakeActivities) use(s *fakeScript) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = s
}

func (f *fakeActivities) script() *fakeScript {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

// step plays one call: blocks it, fails it, or lets it succeed.
func (s *fakeScript) step(ctx context.Context, call string) error {
	if s.block != "" && strings.HasPrefix(call, s.block) {
		s.blocked <- call
		return heartbeatUntilCancelled(ctx)
	}
	if call == s.failAt {
		return temporal.NewNonRetryableApplicationError("injected failure at "+call+" (history recorder)", api.ErrTypeLibvirt, nil)
	}
	return nil
}

// waitBlocked waits until n calls are blocked.
func (s *fakeScript) waitBlocked(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(time.Minute)
	for i := 0; i < n; i++ {
		select {
		case <-s.blocked:
		case <-timeout:
			t.Fatalf("only %d of %d calls blocked", i, n)
		}
	}
}

func heartbeatUntilCancelled(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Preflight runs the real preflight against the fake host, as a worker
// runs it against its own.
func (f *fakeActivities) Preflight(ctx context.Context, req api.PreflightRequest) (api.ClusterPlan, error) {
	return preflight.Run(ctx, f, req)
}

func (f *fakeActivities) Describe(ctx context.Context, req api.Request) (api.Description, error) {
	return preflight.Describe(ctx, f, req)
}

func (f *fakeActivities) ProbeHost(ctx context.Context) (cluster.HostCapabilities, error) {
	if err := f.script().step(ctx, "ProbeHost"); err != nil {
		return cluster.HostCapabilities{}, err
	}
	return hostCaps, nil
}

// ValidatePCI reports every requested function present, alone in an IOMMU
// group of its own.
func (f *fakeActivities) ValidatePCI(ctx context.Context, req api.PCIRequest) (cluster.PCIFacts, error) {
	if err := f.script().step(ctx, "ValidatePCI"); err != nil {
		return cluster.PCIFacts{}, err
	}
	facts := cluster.PCIFacts{Source: "recorder", IOMMU: true, Devices: map[string]cluster.HostPCIDevice{}}
	for i, addr := range req.Addresses {
		group := i + 1
		facts.Devices[addr] = cluster.HostPCIDevice{Address: addr, Vendor: "10de", Device: "2805", Class: "030000", IOMMUGroup: &group, GroupMembers: []string{addr}}
	}
	return facts, nil
}

func (f *fakeActivities) ClaimDevices(ctx context.Context, req api.ClaimRequest) (api.ClaimResult, error) {
	if err := f.script().step(ctx, "ClaimDevices"); err != nil {
		return api.ClaimResult{}, err
	}
	var res api.ClaimResult
	for _, d := range req.Devices {
		res.Added = append(res.Added, d.Address)
	}
	return res, nil
}

func (f *fakeActivities) ReleaseDevices(ctx context.Context, req api.ReleaseRequest) (api.ReleaseResult, error) {
	return api.ReleaseResult{}, f.script().step(ctx, "ReleaseDevices")
}

func (f *fakeActivities) JoinRouting(ctx context.Context, req api.RoutingRequest) (api.HostChangeResult, error) {
	if err := f.script().step(ctx, "JoinRouting "+req.Cluster); err != nil {
		return api.HostChangeResult{}, err
	}
	return api.HostChangeResult{Records: []hostchange.Record{{Cluster: req.Cluster, Action: hostchange.ActionApply,
		Change: "add filter rule of cluster " + req.Cluster, Outcome: hostchange.OutcomeDone}}}, nil
}

func (f *fakeActivities) LeaveRouting(ctx context.Context, req api.RoutingRequest) (api.HostChangeResult, error) {
	if err := f.script().step(ctx, "LeaveRouting "+req.Cluster); err != nil {
		return api.HostChangeResult{}, err
	}
	return api.HostChangeResult{}, nil
}

func (f *fakeActivities) RoutedClusters(ctx context.Context) ([]hostchange.Member, error) {
	return nil, f.script().step(ctx, "RoutedClusters")
}

func (f *fakeActivities) ReadAuditLog(ctx context.Context, req api.AuditRequest) (api.AuditLog, error) {
	return api.AuditLog{}, f.script().step(ctx, "ReadAuditLog")
}

func (f *fakeActivities) DiscoveryRecordExists(ctx context.Context, req api.DiscoveryRequest) (bool, error) {
	return false, f.script().step(ctx, "DiscoveryRecordExists")
}

func (f *fakeActivities) WriteDiscoveryRecord(ctx context.Context, req api.DiscoveryRequest) (api.HostChangeResult, error) {
	return api.HostChangeResult{}, f.script().step(ctx, "WriteDiscoveryRecord "+req.Cluster)
}

func (f *fakeActivities) RemoveDiscoveryRecord(ctx context.Context, req api.DiscoveryRequest) (api.HostChangeResult, error) {
	return api.HostChangeResult{}, f.script().step(ctx, "RemoveDiscoveryRecord "+req.Cluster)
}

// PendingHostChanges: every host change is in place (a routed cluster
// started again).
func (f *fakeActivities) PendingHostChanges(ctx context.Context, req api.PendingRequest) (api.PendingChanges, error) {
	return api.PendingChanges{}, f.script().step(ctx, "PendingHostChanges")
}

func (f *fakeActivities) PruneDiscoveryRecord(ctx context.Context, req api.DiscoveryRequest) (api.HostChangeResult, error) {
	return api.HostChangeResult{}, f.script().step(ctx, "PruneDiscoveryRecord "+req.Cluster)
}

func (f *fakeActivities) ResolverEntryExists(ctx context.Context, req api.ResolverRequest) (bool, error) {
	return false, f.script().step(ctx, "ResolverEntryExists")
}

func (f *fakeActivities) WriteResolverEntry(ctx context.Context, req api.ResolverRequest) (api.HostChangeResult, error) {
	return api.HostChangeResult{}, f.script().step(ctx, "WriteResolverEntry "+req.Cluster)
}

func (f *fakeActivities) RemoveResolverEntry(ctx context.Context, req api.ResolverRequest) (api.HostChangeResult, error) {
	return api.HostChangeResult{}, f.script().step(ctx, "RemoveResolverEntry "+req.Cluster)
}

func (f *fakeActivities) ReadLedger(ctx context.Context, host string) (api.LedgerView, error) {
	return api.LedgerView{Host: host}, f.script().step(ctx, "ReadLedger")
}

func (f *fakeActivities) ClusterBindings(ctx context.Context) ([]api.Binding, error) {
	return nil, f.script().step(ctx, "ClusterBindings")
}

func (f *fakeActivities) BindCluster(ctx context.Context, req api.BindRequest) (api.BindResult, error) {
	return api.BindResult{Added: true}, f.script().step(ctx, "BindCluster "+req.Cluster)
}

func (f *fakeActivities) UnbindCluster(ctx context.Context, req api.UnbindRequest) (api.UnbindResult, error) {
	return api.UnbindResult{Removed: true}, f.script().step(ctx, "UnbindCluster "+req.Cluster)
}

func (f *fakeActivities) DomainDifferences(ctx context.Context, xmls []string) ([]string, error) {
	return make([]string, len(xmls)), f.script().step(ctx, "DomainDifferences")
}

func (f *fakeActivities) PoolSpace(ctx context.Context, dir string) (api.SpaceInfo, error) {
	if err := f.script().step(ctx, "PoolSpace"); err != nil {
		return api.SpaceInfo{}, err
	}
	return api.SpaceInfo{Measured: "/srv", Available: 1 << 40, Total: 1 << 41}, nil
}

func (f *fakeActivities) InspectBaseImage(ctx context.Context, path string) (api.ImageInfo, error) {
	if err := f.script().step(ctx, "InspectBaseImage"); err != nil {
		return api.ImageInfo{}, err
	}
	return api.ImageInfo{Path: path, Format: "qcow2", VirtualSize: 1 << 28, FileSize: 1 << 24}, nil
}

func (f *fakeActivities) CheckHostPaths(ctx context.Context, req api.PathsRequest) error {
	return f.script().step(ctx, "CheckHostPaths")
}

func (f *fakeActivities) InspectCluster(ctx context.Context, req api.InspectRequest) (api.Inventory, error) {
	s := f.script()
	if err := s.step(ctx, "InspectCluster"); err != nil {
		return api.Inventory{}, err
	}
	return s.inv, nil
}

func (f *fakeActivities) ensure(ctx context.Context, call string) (api.EnsureResult, error) {
	if err := f.script().step(ctx, call); err != nil {
		return api.EnsureResult{}, err
	}
	return api.EnsureResult{Created: true}, nil
}

func (f *fakeActivities) EnsureNetwork(ctx context.Context, xml string) (api.EnsureResult, error) {
	return f.ensure(ctx, "EnsureNetwork")
}

func (f *fakeActivities) DeleteNetwork(ctx context.Context, ref api.NetworkRef) error {
	return f.script().step(ctx, "DeleteNetwork "+ref.Name)
}

func (f *fakeActivities) EnsureDHCPHost(ctx context.Context, req api.DHCPHostRequest) (api.EnsureResult, error) {
	return f.ensure(ctx, "EnsureDHCPHost "+req.Lease.Name)
}

func (f *fakeActivities) DeleteDHCPHost(ctx context.Context, req api.DHCPHostRequest) error {
	return f.script().step(ctx, "DeleteDHCPHost "+req.Lease.Name)
}

func (f *fakeActivities) EnsurePool(ctx context.Context, xml string) (api.EnsureResult, error) {
	return f.ensure(ctx, "EnsurePool")
}

func (f *fakeActivities) DeletePool(ctx context.Context, ref api.PoolRef) error {
	return f.script().step(ctx, "DeletePool "+ref.Name)
}

func (f *fakeActivities) UploadBaseImage(ctx context.Context, req api.UploadRequest) (api.UploadResult, error) {
	if err := f.script().step(ctx, "UploadBaseImage"); err != nil {
		return api.UploadResult{}, err
	}
	if req.Existed {
		return api.UploadResult{AlreadyDone: true}, nil
	}
	return api.UploadResult{Bytes: 1 << 24}, nil
}

func (f *fakeActivities) EnsureVolume(ctx context.Context, req api.VolumeRequest) (api.EnsureResult, error) {
	return f.ensure(ctx, "EnsureVolume "+volumeName(req.XML))
}

func (f *fakeActivities) DeleteVolume(ctx context.Context, ref api.VolumeRef) error {
	return f.script().step(ctx, "DeleteVolume "+ref.Name)
}

func (f *fakeActivities) EnsureDomain(ctx context.Context, xml string) (api.EnsureResult, error) {
	return f.ensure(ctx, "EnsureDomain "+domainName(xml))
}

func (f *fakeActivities) StartDomain(ctx context.Context, ref api.DomainRef) (bool, error) {
	if err := f.script().step(ctx, "StartDomain "+ref.Name); err != nil {
		return false, err
	}
	return true, nil
}

func (f *fakeActivities) ShutdownDomain(ctx context.Context, req api.ShutdownRequest) (api.ShutdownResult, error) {
	return api.ShutdownResult{}, f.script().step(ctx, "ShutdownDomain "+req.Name)
}

func (f *fakeActivities) ForceOffDomain(ctx context.Context, ref api.DomainRef) (bool, error) {
	s := f.script()
	if err := s.step(ctx, "ForceOffDomain "+ref.Name); err != nil {
		return false, err
	}
	return s.stillRunning, nil
}

func (f *fakeActivities) WaitDomainsOff(ctx context.Context, names []string) error {
	if err := f.script().step(ctx, "WaitDomainsOff"); err != nil {
		return err
	}
	// The guests take a moment to power off.
	activity.RecordHeartbeat(ctx, names)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(300 * time.Millisecond):
		return nil
	}
}

func (f *fakeActivities) DeleteDomain(ctx context.Context, ref api.DomainRef) error {
	return f.script().step(ctx, "DeleteDomain "+ref.Name)
}

// activityNames are the names the real worker registers its activities
// under (RegisterActivity of *activities.Activities: the method names).
func activityNames() []string {
	typ := reflect.TypeOf(&activities.Activities{})
	names := make([]string, 0, typ.NumMethod())
	for i := 0; i < typ.NumMethod(); i++ {
		names = append(names, typ.Method(i).Name)
	}
	return names
}

// registerFakeActivities registers the fake of every activity of
// *activities.Activities under its exact name, and fails if a fake is
// missing or its signature differs from the real one.
func registerFakeActivities(t *testing.T, w activityRegistrar, fake *fakeActivities) {
	t.Helper()
	actual := reflect.ValueOf(&activities.Activities{})
	fv := reflect.ValueOf(fake)
	for _, name := range activityNames() {
		m := fv.MethodByName(name)
		require.True(t, m.IsValid(), "no fake for activity %s", name)
		require.Equal(t, actual.MethodByName(name).Type(), m.Type(), "the fake %s differs from the real activity", name)
		w.RegisterActivityWithOptions(m.Interface(), activity.RegisterOptions{Name: name})
	}
}

// The recorder's fakes must keep matching the real activities, even when
// nobody records: this one always runs.
func TestRecorderFakesMatchTheActivities(t *testing.T) {
	var names []string
	registerFakeActivities(t, recordingRegistry{&names}, &fakeActivities{})
	assert.ElementsMatch(t, activityNames(), names)
	assert.Contains(t, names, "EnsureNetwork", "activities are registered under their method names")
	// And nothing else is exported by the fake that the workflows could
	// not call for real.
	ft := reflect.TypeOf(&fakeActivities{})
	for i := 0; i < ft.NumMethod(); i++ {
		assert.Contains(t, names, ft.Method(i).Name, "the fake has %s, the real activities do not", ft.Method(i).Name)
	}
}

// activityRegistrar is the part of a worker that registers activities.
type activityRegistrar interface {
	RegisterActivityWithOptions(a interface{}, options activity.RegisterOptions)
}

// recordingRegistry notes the names activities are registered under.
type recordingRegistry struct{ names *[]string }

func (r recordingRegistry) RegisterActivityWithOptions(_ interface{}, o activity.RegisterOptions) {
	*r.names = append(*r.names, o.Name)
}
