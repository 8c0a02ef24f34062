package workflows

import (
	"context"
	"errors"
	"slices"
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
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
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

func testRequest(t *testing.T) api.Request {
	t.Helper()
	s, err := cluster.Parse([]byte(testSpec))
	require.NoError(t, err)
	return api.Request{Spec: s, Options: api.Options{ShutdownTimeout: time.Minute}}
}

var hostCaps = cluster.HostCapabilities{Arch: "x86_64", KVMUsable: true, Emulator: "/usr/bin/qemu-system-x86_64", MachineTypes: []string{"pc-q35-7.2"}}

// recorder mocks every activity, fails the one named in failAt, and
// records the compensating calls in the order they happened.
type recorder struct {
	mu     sync.Mutex
	undo   []string
	calls  []string
	failAt string
	inv    api.Inventory
	// volumeDelay holds every EnsureVolume for that long (real time).
	volumeDelay time.Duration
	// failUndo names a compensating call that fails.
	failUndo string
	// inPlace lists the host changes already made (PendingHostChanges).
	inPlace api.PendingChanges
	// kept is what EnsureDomain says of an existing domain that differs
	// from the template in what no cluster.yaml key sets, by domain.
	kept map[string]string
	// badInput makes the failure at failAt a refusal of the input (a
	// check that fails), not a libvirt error.
	badInput bool
	// silent makes the failure at failAt a step no worker of the host
	// took in time (ScheduleToStart timeout).
	silent bool
	// resolverExisted is what ResolverEntryExists answers.
	resolverExisted bool
	// bindings is the cluster registry the preflight reads.
	bindings []api.Binding
	// claimRefusals: the first this many ClaimDevices calls are refused,
	// as a ledger that another start's claim reached first refuses.
	claimRefusals int
}

// fakeHost answers the preflight's reads of the host from the recorder,
// noting each as a call.
type fakeHost struct{ r *recorder }

func (h fakeHost) ProbeHost(context.Context) (cluster.HostCapabilities, error) {
	h.r.note(&h.r.calls, "ProbeHost")
	return hostCaps, h.r.fail("ProbeHost")
}

func (h fakeHost) InspectBaseImage(_ context.Context, p string) (api.ImageInfo, error) {
	h.r.note(&h.r.calls, "InspectBaseImage")
	return api.ImageInfo{Path: p, Format: "qcow2", VirtualSize: 1 << 28, FileSize: 1 << 24}, h.r.fail("InspectBaseImage")
}

func (h fakeHost) CheckHostPaths(context.Context, api.PathsRequest) error {
	h.r.note(&h.r.calls, "CheckHostPaths")
	return h.r.fail("CheckHostPaths")
}

func (h fakeHost) PendingHostChanges(_ context.Context, req api.PendingRequest) (api.PendingChanges, error) {
	h.r.note(&h.r.calls, "PendingHostChanges")
	return api.PendingChanges{Routing: req.Routing != nil && !h.r.inPlace.Routing, Discovery: req.Discovery != nil && !h.r.inPlace.Discovery,
		Resolver: req.Resolver != nil && !h.r.inPlace.Resolver}, h.r.fail("PendingHostChanges")
}

func (h fakeHost) InspectCluster(context.Context, api.InspectRequest) (api.Inventory, error) {
	h.r.note(&h.r.calls, "InspectCluster")
	return h.r.inv, h.r.fail("InspectCluster")
}

func (h fakeHost) PoolSpace(context.Context, string) (api.SpaceInfo, error) {
	h.r.note(&h.r.calls, "PoolSpace")
	return api.SpaceInfo{Measured: "/srv", Available: 1 << 40, Total: 1 << 41}, h.r.fail("PoolSpace")
}

func (h fakeHost) ValidatePCI(context.Context, api.PCIRequest) (cluster.PCIFacts, error) {
	return cluster.PCIFacts{}, errors.New("the workflow tests have no PCI functions")
}

func (h fakeHost) DiscoveryRecordExists(context.Context, api.DiscoveryRequest) (bool, error) {
	h.r.note(&h.r.calls, "DiscoveryRecordExists")
	return false, h.r.fail("DiscoveryRecordExists")
}

func (h fakeHost) ResolverEntryExists(_ context.Context, req api.ResolverRequest) (bool, error) {
	h.r.note(&h.r.calls, "ResolverEntryExists "+req.Dir)
	return h.r.resolverExisted, h.r.fail("ResolverEntryExists")
}

func (h fakeHost) DomainDifferences(_ context.Context, xmls []string) ([]string, error) {
	return make([]string, len(xmls)), nil
}

// ReadLedger: no other cluster holds anything of the host.
func (h fakeHost) ReadLedger(_ context.Context, host string) (api.LedgerView, error) {
	return api.LedgerView{Host: host}, nil
}

// ClusterBindings: the recorder's registry.
func (h fakeHost) ClusterBindings(context.Context) ([]api.Binding, error) {
	return h.r.bindings, nil
}

func (r *recorder) note(list *[]string, s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, s)
}

func (r *recorder) fail(call string) error {
	if call == r.failAt {
		if r.silent {
			return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		if r.badInput {
			return temporal.NewNonRetryableApplicationError("injected refusal at "+call, api.ErrTypeBadInput, nil)
		}
		return temporal.NewNonRetryableApplicationError("injected failure at "+call, api.ErrTypeLibvirt, nil)
	}
	return nil
}

func (r *recorder) install(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivity(&activities.Activities{})
	// The preflight runs as on a host, against the recorder's answers.
	env.OnActivity(a.Preflight, mock.Anything, mock.Anything).Return(func(ctx context.Context, req api.PreflightRequest) (api.ClusterPlan, error) {
		return preflight.Run(ctx, fakeHost{r}, req)
	})
	// Stop and destroy inspect the cluster themselves.
	env.OnActivity(a.InspectCluster, mock.Anything, mock.Anything).Return(func(ctx context.Context, req api.InspectRequest) (api.Inventory, error) {
		return fakeHost{r}.InspectCluster(ctx, req)
	})
	env.OnActivity(a.PendingHostChanges, mock.Anything, mock.Anything).Return(func(ctx context.Context, req api.PendingRequest) (api.PendingChanges, error) {
		return fakeHost{r}.PendingHostChanges(ctx, req)
	})
	env.OnActivity(a.Describe, mock.Anything, mock.Anything).Return(func(ctx context.Context, req api.Request) (api.Description, error) {
		return preflight.Describe(ctx, fakeHost{r}, req)
	})
	ensure := func(name string) func(context.Context, string) (api.EnsureResult, error) {
		return func(context.Context, string) (api.EnsureResult, error) {
			r.note(&r.calls, name)
			if err := r.fail(name); err != nil {
				return api.EnsureResult{}, err
			}
			return api.EnsureResult{Created: true}, nil
		}
	}
	env.OnActivity(a.ReleaseDevices, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.ReleaseRequest) (api.ReleaseResult, error) {
		r.note(&r.calls, "ReleaseDevices "+req.Cluster+"/"+req.VM)
		return api.ReleaseResult{}, r.fail("ReleaseDevices")
	})
	env.OnActivity(a.ClaimDevices, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.ClaimRequest) (api.ClaimResult, error) {
		r.note(&r.calls, "ClaimDevices")
		r.mu.Lock()
		refuse := r.claimRefusals > 0
		r.claimRefusals--
		r.mu.Unlock()
		if refuse {
			return api.ClaimResult{}, temporal.NewNonRetryableApplicationError("CPU 1 is claimed by cluster other", api.ErrTypeResourcesClaimed, nil)
		}
		return api.ClaimResult{}, r.fail("ClaimDevices")
	})
	env.OnActivity(a.BindCluster, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.BindRequest) (api.BindResult, error) {
		r.note(&r.calls, "BindCluster")
		return api.BindResult{Added: true}, r.fail("BindCluster")
	})
	env.OnActivity(a.UnbindCluster, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.UnbindRequest) (api.UnbindResult, error) {
		r.note(&r.undo, "UnbindCluster "+req.Cluster)
		return api.UnbindResult{Removed: true}, nil
	})
	env.OnActivity(a.EnsureNetwork, mock.Anything, mock.Anything).Return(ensure("EnsureNetwork"))
	env.OnActivity(a.EnsureDHCPHost, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.DHCPHostRequest) (api.EnsureResult, error) {
		return ensure("EnsureDHCPHost "+req.Lease.Name)(nil, "")
	})
	env.OnActivity(a.DeleteDHCPHost, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.DHCPHostRequest) error {
		r.note(&r.undo, "DeleteDHCPHost "+req.Lease.Name)
		return nil
	})
	env.OnActivity(a.EnsurePool, mock.Anything, mock.Anything).Return(ensure("EnsurePool"))
	env.OnActivity(a.UploadBaseImage, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.UploadRequest) (api.UploadResult, error) {
		r.note(&r.calls, "UploadBaseImage")
		return api.UploadResult{Bytes: 1 << 24}, r.fail("UploadBaseImage")
	})
	env.OnActivity(a.EnsureVolume, mock.Anything, mock.Anything).After(r.volumeDelay).Return(func(_ context.Context, req api.VolumeRequest) (api.EnsureResult, error) {
		name := "EnsureVolume " + volumeName(req.XML)
		return ensure(name)(nil, "")
	})
	env.OnActivity(a.EnsureDomain, mock.Anything, mock.Anything).Return(func(_ context.Context, xml string) (api.EnsureResult, error) {
		res, err := ensure("EnsureDomain "+domainName(xml))(nil, "")
		if _, existed := r.inv.Domain(domainName(xml)); existed {
			res.Created, res.Kept = false, r.kept[domainName(xml)]
		}
		return res, err
	})
	env.OnActivity(a.StartDomain, mock.Anything, mock.Anything).Return(func(_ context.Context, ref api.DomainRef) (bool, error) {
		name := ref.Name
		r.note(&r.calls, "StartDomain "+name)
		return r.fail("StartDomain "+name) == nil, r.fail("StartDomain " + name)
	})
	// Compensations.
	env.OnActivity(a.DeleteNetwork, mock.Anything, mock.Anything).Return(func(_ context.Context, ref api.NetworkRef) error {
		r.note(&r.undo, "DeleteNetwork "+ref.Name)
		return nil
	})
	env.OnActivity(a.DeletePool, mock.Anything, mock.Anything).Return(func(_ context.Context, ref api.PoolRef) error {
		r.note(&r.undo, "DeletePool "+ref.Name)
		return nil
	})
	env.OnActivity(a.DeleteVolume, mock.Anything, mock.Anything).Return(func(_ context.Context, ref api.VolumeRef) error {
		r.note(&r.undo, "DeleteVolume "+ref.Name)
		return nil
	})
	env.OnActivity(a.DeleteDomain, mock.Anything, mock.Anything).Return(func(_ context.Context, ref api.DomainRef) error {
		r.note(&r.undo, "DeleteDomain "+ref.Name)
		if r.failUndo == "DeleteDomain "+ref.Name {
			return temporal.NewNonRetryableApplicationError("injected undo failure", api.ErrTypeLibvirt, nil)
		}
		return nil
	})
	env.OnActivity(a.ForceOffDomain, mock.Anything, mock.Anything).Return(func(_ context.Context, ref api.DomainRef) (bool, error) {
		name := ref.Name
		r.note(&r.undo, "ForceOffDomain "+name)
		return true, nil
	})
}

func volumeName(xml string) string { return between(xml, "<name>", "</name>") }
func domainName(xml string) string { return between(xml, "<name>", "</name>") }
func between(s, a, b string) string {
	i := indexOf(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	return s[:indexOf(s, b)]
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// vmUndo is the compensation chain of one VM that got as far as `reached`.
func vmUndo(vm string, reached int) []string {
	chain := []string{"DeleteVolume " + vm + ".qcow2", "DeleteDomain lab-" + vm, "ForceOffDomain lab-" + vm}
	out := []string{}
	for i := reached - 1; i >= 0; i-- {
		out = append(out, chain[i])
	}
	return out
}

// sharedUndo ends with the cluster binding's removal; the ledger claims'
// release, after it, is a call (ReleaseDevices).
var sharedUndo = []string{"DeleteVolume lab-base.qcow2", "DeletePool lab-pool", "DeleteNetwork lab-network", "UnbindCluster lab"}

func TestStartClusterCompensatesEachFailedStepInReverse(t *testing.T) {
	cases := []struct {
		failAt string
		// perVM: how many of (volume, domain, start) each VM registered.
		perVM  map[string]int
		shared int // how many of (base, pool, network), counted from the end
	}{
		{failAt: "ProbeHost"},
		{failAt: "CheckHostPaths"},
		{failAt: "InspectBaseImage"},
		{failAt: "InspectCluster"},
		{failAt: "ClaimDevices"},
		{failAt: "BindCluster", shared: 1},
		{failAt: "EnsureNetwork", shared: 2},
		{failAt: "EnsurePool", shared: 3},
		{failAt: "UploadBaseImage", shared: 4},
		{failAt: "EnsureVolume compute-02.qcow2", shared: 4, perVM: map[string]int{"controller-01": 3, "compute-01": 3, "compute-02": 1}},
		{failAt: "EnsureDomain lab-compute-02", shared: 4, perVM: map[string]int{"controller-01": 3, "compute-01": 3, "compute-02": 2}},
		{failAt: "StartDomain lab-compute-02", shared: 4, perVM: map[string]int{"controller-01": 3, "compute-01": 3, "compute-02": 3}},
	}
	for _, tc := range cases {
		t.Run(tc.failAt, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := onHost(&s, "hv1")
			r := &recorder{failAt: tc.failAt}
			r.install(env)
			env.ExecuteWorkflow(StartCluster, testRequest(t))
			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "injected failure at "+tc.failAt)
			assert.Contains(t, r.calls, tc.failAt, "the failing step ran")

			// Shared compensations come last, exactly in reverse order.
			wantShared := sharedUndo[len(sharedUndo)-tc.shared:]
			require.GreaterOrEqual(t, len(r.undo), len(wantShared))
			if len(wantShared) > 0 {
				assert.Equal(t, wantShared, r.undo[len(r.undo)-len(wantShared):])
			}
			vmPart := r.undo[:len(r.undo)-len(wantShared)]
			total := 0
			for vm, reached := range tc.perVM {
				var got []string
				for _, u := range vmPart {
					if indexOf(u, vm) >= 0 {
						got = append(got, u)
					}
				}
				assert.Equal(t, vmUndo(vm, reached), got, "compensations of %s", vm)
				total += reached
			}
			assert.Len(t, vmPart, total, "no other compensation ran: %v", r.undo)
			if tc.shared == 0 && tc.failAt != "ClaimDevices" {
				assert.Empty(t, r.undo)
				assert.Contains(t, err.Error(), "nothing to roll back")
			} else if tc.shared == 0 {
				// A claim whose outcome is unknown is given back.
				assert.Empty(t, r.undo)
				assert.Contains(t, err.Error(), "rolled back: host ledger claims")
			} else {
				assert.Contains(t, err.Error(), "rolled back")
			}
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr))
			var f api.Failure
			require.NoError(t, appErr.Details(&f))
			releases := 0
			for _, c := range r.calls {
				if strings.HasPrefix(c, "ReleaseDevices ") {
					releases++
				}
			}
			if tc.shared > 0 || tc.failAt == "ClaimDevices" {
				assert.Equal(t, 1, releases, "the run's ledger claims were given back: %v", r.calls)
			}
			assert.Len(t, f.RolledBack, len(r.undo)+releases)
		})
	}
}

func TestStartClusterSucceedsAndReportsWhatItCreated(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, testRequest(t))
	require.NoError(t, env.GetWorkflowError())
	var res api.StartResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Empty(t, r.undo)
	assert.Len(t, res.Started, 3)
	assert.Contains(t, res.Created, "network lab-network")
	assert.Contains(t, res.Created, "domain lab-compute-02")
	assert.Equal(t, "pc-q35-7.2", res.Plan.Machine.MachineType)
}

// An existing domain that differs from the template only in what no
// cluster.yaml key sets (a hand edit, an older hpcvm) is kept and named.
func TestStartKeepsAHandEditedDomainAndSaysSo(t *testing.T) {
	req := testRequest(t)
	plan, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: existingInventory(plan), kept: map[string]string{"lab-compute-01": "lifecycle actions (the domain has preserve; this hpcvm renders destroy)"}}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, req)
	require.NoError(t, env.GetWorkflowError())
	var res api.StartResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Len(t, res.Notes, 1, "%q", res.Notes)
	assert.Contains(t, res.Notes[0], "domain lab-compute-01 was kept as it is")
	assert.Contains(t, res.Notes[0], "lifecycle actions (the domain has preserve")
	assert.Contains(t, res.Notes[0], "hpcvm destroy --vm compute-01")
}

// A second start of a running cluster changes nothing and, should it fail,
// would undo nothing: everything existed before the run.
func TestStartClusterOnExistingClusterRegistersNoCompensation(t *testing.T) {
	req := testRequest(t)
	plan, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	inv := existingInventory(plan)
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: inv, failAt: "StartDomain lab-compute-02"}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, req)
	require.Error(t, env.GetWorkflowError())
	assert.Empty(t, r.undo, "nothing of a pre-existing cluster is undone")
}

func TestStartClusterCancelledRollsBack(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	// Cancel while the VMs' volumes are being created.
	r := &recorder{volumeDelay: 2 * time.Second}
	r.install(env)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(StartCluster, testRequest(t))
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var canceled *temporal.CanceledError
	assert.True(t, errors.As(err, &canceled), "a cancelled run ends cancelled, got %v", err)
	assert.Equal(t, sharedUndo, r.undo[len(r.undo)-len(sharedUndo):], "the run's shared objects were removed after cancel")
	assert.Contains(t, r.undo, "DeleteVolume controller-01.qcow2")
}

func TestStopClusterForcesOffAfterTheDurableTimer(t *testing.T) {
	req := testRequest(t)
	req.Options.ShutdownTimeout = 30 * time.Second
	inv := api.Inventory{Domains: []api.DomainState{
		{Name: "lab-controller-01", State: "running", Owned: true},
		{Name: "lab-compute-01", State: "running", Owned: true},
		{Name: "lab-compute-02", State: "shut off", Owned: true},
		{Name: "lab-compute-03", State: "running", Owned: false},
	}}
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.InspectCluster, mock.Anything, mock.Anything).Return(inv, nil)
	var mu sync.Mutex
	var shutdown []string
	env.OnActivity(a.ShutdownDomain, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.ShutdownRequest) (api.ShutdownResult, error) {
		assert.Zero(t, req.AwaitBoot, "a guest not known to have booted just now is not waited for")
		mu.Lock()
		defer mu.Unlock()
		shutdown = append(shutdown, req.Name)
		return api.ShutdownResult{}, nil
	})
	// The guests never power off: the wait only ends when cancelled.
	env.OnActivity(a.WaitDomainsOff, mock.Anything, mock.Anything).After(time.Hour).Return(nil)
	env.OnActivity(a.ForceOffDomain, mock.Anything, api.DomainRef{Name: "lab-controller-01", Cluster: "lab"}).Return(true, nil)
	env.OnActivity(a.ForceOffDomain, mock.Anything, api.DomainRef{Name: "lab-compute-01", Cluster: "lab"}).Return(false, nil)
	env.ExecuteWorkflow(StopCluster, req)
	require.NoError(t, env.GetWorkflowError())
	var res api.StopResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.ElementsMatch(t, []string{"lab-controller-01", "lab-compute-01"}, shutdown, "ACPI only to our running domains")
	assert.Equal(t, []string{"lab-controller-01"}, res.ForcedOff)
	assert.Equal(t, []string{"lab-compute-01"}, res.ShutDown)
	assert.Equal(t, []string{"lab-compute-02"}, res.WasStopped)
}

// A guest that booted seconds ago is waited for (it would ignore the power
// button), within the one timeout: the wait is taken from the guests' time
// to power off, not added to it.
func TestStopWaitsForGuestsThatBootedMomentsAgoWithinTheTimeout(t *testing.T) {
	req := testRequest(t)
	req.Options.ShutdownTimeout = 40 * time.Second
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	began := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	env.SetStartTime(began)
	inv := api.Inventory{Domains: []api.DomainState{
		{Name: "lab-controller-01", State: "running", Owned: true, StartedAt: began.Add(-6 * time.Second)},
		{Name: "lab-compute-01", State: "running", Owned: true, StartedAt: began.Add(-50 * time.Second)},
		{Name: "lab-compute-02", State: "running", Owned: true, StartedAt: began.Add(-time.Hour)},
	}}
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.InspectCluster, mock.Anything, mock.Anything).Return(inv, nil)
	var mu sync.Mutex
	asked := map[string]api.ShutdownRequest{}
	env.OnActivity(a.ShutdownDomain, mock.Anything, mock.Anything).After(4 * time.Second).Return(func(_ context.Context, req api.ShutdownRequest) (api.ShutdownResult, error) {
		mu.Lock()
		defer mu.Unlock()
		asked[req.Name] = req
		if req.AwaitBoot == 0 {
			return api.ShutdownResult{}, nil
		}
		return api.ShutdownResult{Waited: 4 * time.Second, Answer: "its guest agent is connected"}, nil
	})
	env.OnActivity(a.WaitDomainsOff, mock.Anything, mock.Anything).After(time.Hour).Return(nil)
	env.OnActivity(a.ForceOffDomain, mock.Anything, mock.Anything).Return(true, nil)
	env.ExecuteWorkflow(StopCluster, req)
	require.NoError(t, env.GetWorkflowError())
	var res api.StopResult
	require.NoError(t, env.GetWorkflowResult(&res))

	assert.Equal(t, 20*time.Second, asked["lab-controller-01"].AwaitBoot, "54 s of grace left, but at most half the timeout")
	assert.Equal(t, began.Add(-6*time.Second), asked["lab-controller-01"].BootedAt)
	assert.Equal(t, began.Add(20*time.Second), asked["lab-controller-01"].AwaitUntil, "a retried step waits only what is left")
	assert.Equal(t, 10*time.Second, asked["lab-compute-01"].AwaitBoot, "the rest of its minute of grace")
	assert.Zero(t, asked["lab-compute-02"].AwaitBoot, "up for an hour: pressed at once")
	assert.Equal(t, []api.BootWait{
		{VM: "controller-01", Booted: 6 * time.Second, Waited: 4 * time.Second, Answer: "its guest agent is connected"},
		{VM: "compute-01", Booted: 50 * time.Second, Waited: 4 * time.Second, Answer: "its guest agent is connected"},
	}, res.AwaitedBoot)
	assert.True(t, res.TimerEnded)
	assert.Equal(t, 40*time.Second, env.Now().Sub(began).Truncate(time.Second), "the stop took its timeout, the wait included")
}

// existingInventory is a running cluster of the plan, all of it hpcvm's.
func existingInventory(plan cluster.Plan) api.Inventory {
	inv := api.Inventory{
		Network: &api.NetworkState{Name: "lab-network", UUID: plan.Network.UUID, Owned: true, Bridge: "br-lab", Active: true},
		Pool:    &api.PoolState{Name: "lab-pool", UUID: plan.Pool.UUID, Owned: true, Path: "/srv/pools/lab", Active: true},
		Volumes: map[string]api.VolumeState{
			"lab-base.qcow2": {Name: "lab-base.qcow2", Path: "/srv/pools/lab/lab-base.qcow2", Format: "qcow2", Capacity: 1 << 28},
		},
		VolumesListed: true,
	}
	for _, vm := range plan.VMs {
		inv.Network.Leases = append(inv.Network.Leases, cluster.HostLease{Name: vm.Name, MAC: vm.MAC, IP: vm.IP})
		inv.Volumes[vm.Volume] = api.VolumeState{Name: vm.Volume, Path: "/srv/pools/lab/" + vm.Volume, BackingPath: "/srv/pools/lab/lab-base.qcow2"}
		inv.Domains = append(inv.Domains, api.DomainState{Name: vm.Domain, VM: vm.Name, State: "running", Owned: true,
			Disks: []string{"/srv/pools/lab/" + vm.Volume}, Networks: []string{"lab-network"}})
	}
	return inv
}

func TestDestroyClusterDeletesOnlyWhatIsOurs(t *testing.T) {
	req := testRequest(t)
	plan, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	inv := existingInventory(plan)
	// compute-02's domain is a look-alike without our metadata: it and its
	// disk stay, and so do the base under that disk and the pool.
	inv.Domains[2].Owned, inv.Domains[2].VM = false, ""
	inv.ForeignDisks = []string{"/srv/pools/lab/compute-02.qcow2"}
	inv.NetworkUsers = []string{"lab-compute-02"}
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: inv}
	r.install(env)
	env.ExecuteWorkflow(DestroyCluster, req)
	err = env.GetWorkflowError()
	require.Error(t, err, "something of the cluster is left, so destroy fails")
	assert.Contains(t, err.Error(), "volume lab-base.qcow2 (compute-02.qcow2 stands on it)")
	assert.ElementsMatch(t, []string{
		"DeleteDomain lab-controller-01", "DeleteDomain lab-compute-01",
		"DeleteVolume controller-01.qcow2", "DeleteVolume compute-01.qcow2",
	}, r.undo, "the network stays: the foreign domain is attached to it")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	assert.Equal(t, api.ErrTypeDestroyIncomplete, appErr.Type())
	var res api.DestroyResult
	require.NoError(t, appErr.Details(&res))
	require.Len(t, res.LeftAlone, 1)
	assert.Contains(t, res.LeftAlone[0], "lab-compute-02")
	assert.Contains(t, strings.Join(res.Kept, "\n"), "pool lab-pool")
	assert.Contains(t, strings.Join(res.Kept, "\n"), "network lab-network (domains outside the cluster are attached to it: lab-compute-02)")
}

func TestDestroyRemovesEverythingTheClusterOwnsWhateverTheFileSays(t *testing.T) {
	req := testRequest(t)
	plan, err := cluster.NewPlan(req.Spec)
	require.NoError(t, err)
	inv := existingInventory(plan)
	// A node the file no longer names, a half-made disk, and a base of the
	// other format: all the cluster's.
	inv.Domains = append(inv.Domains, api.DomainState{Name: "lab-old", VM: "old", State: "running", Owned: true, Disks: []string{"/srv/pools/lab/old.qcow2"}})
	inv.Volumes["old.qcow2"] = api.VolumeState{Name: "old.qcow2", Path: "/srv/pools/lab/old.qcow2", BackingPath: "/srv/pools/lab/lab-base.qcow2"}
	inv.Volumes["half.qcow2"] = api.VolumeState{Name: "half.qcow2", Path: "/srv/pools/lab/half.qcow2", BackingPath: "/srv/pools/lab/lab-base.img"}
	inv.Volumes["lab-base.img"] = api.VolumeState{Name: "lab-base.img", Path: "/srv/pools/lab/lab-base.img"}
	// Only the name and host reach the workflow, as with --name.
	only := api.Request{Spec: cluster.Spec{Cluster: cluster.ClusterSpec{Name: "lab", Host: "hv1"}}, NameOnly: true}
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{inv: inv}
	r.install(env)
	env.ExecuteWorkflow(DestroyCluster, only)
	require.NoError(t, env.GetWorkflowError())
	var res api.DestroyResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.ElementsMatch(t, []string{
		"DeleteDomain lab-controller-01", "DeleteDomain lab-compute-01", "DeleteDomain lab-compute-02", "DeleteDomain lab-old",
		"DeleteVolume controller-01.qcow2", "DeleteVolume compute-01.qcow2", "DeleteVolume compute-02.qcow2", "DeleteVolume old.qcow2",
		"DeleteVolume half.qcow2", "DeleteVolume lab-base.qcow2", "DeleteVolume lab-base.img",
		"DeletePool lab-pool", "DeleteNetwork lab-network",
	}, r.undo)
	assert.Equal(t, "DeleteNetwork lab-network", r.undo[len(r.undo)-1])
	assert.Equal(t, "DeletePool lab-pool", r.undo[len(r.undo)-2])
	assert.Empty(t, res.Kept)
}

func TestDestroyOfAMissingClusterSucceeds(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{}
	r.install(env)
	env.ExecuteWorkflow(DestroyCluster, testRequest(t))
	require.NoError(t, env.GetWorkflowError())
	var res api.DestroyResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Empty(t, r.undo)
	assert.Empty(t, res.Deleted)
}

// Other workflows compose cluster creation as a child workflow, under the
// cluster's workflow ID and on its host's queue.
func buildLab(ctx workflow.Context, req api.Request) (api.StartResult, error) {
	return buildLabOn(ctx, req, api.TaskQueue(req.Spec.Cluster.Host))
}

func TestStartClusterComposesAsChildWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	Register(env)
	env.RegisterWorkflow(buildLab)
	r := &recorder{}
	r.install(env)
	env.ExecuteWorkflow(buildLab, testRequest(t))
	require.NoError(t, env.GetWorkflowError())
	var res api.StartResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Len(t, res.Started, 3)
}

// An undo that fails stops the undos that depend on it (the domain's volume,
// the base, pool and network beneath), while the other VMs still clean up.
func TestFailedUndoStopsTheUndosBeneathIt(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{failAt: "StartDomain lab-compute-02", failUndo: "DeleteDomain lab-compute-02"}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, testRequest(t))
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.NotContains(t, r.undo, "DeleteVolume compute-02.qcow2")
	for _, shared := range sharedUndo {
		assert.NotContains(t, r.undo, shared)
	}
	assert.Contains(t, r.undo, "DeleteVolume controller-01.qcow2", "another VM's branch still cleans up")
	assert.Contains(t, err.Error(), "COULD NOT UNDO")
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	var f api.Failure
	require.NoError(t, appErr.Details(&f))
	assert.Contains(t, strings.Join(f.NotUndone, "\n"), "volume compute-02.qcow2: skipped")
	assert.Contains(t, strings.Join(f.NotUndone, "\n"), "network lab-network: skipped")
}

// installRouting mocks the routing steps: members is what RoutedClusters
// answers; joins and leaves are noted as calls and undos.
func (r *recorder) installRouting(env *testsuite.TestWorkflowEnvironment, members []hostchange.Member) {
	env.OnActivity(a.RoutedClusters, mock.Anything).Return(func(context.Context) ([]hostchange.Member, error) {
		r.note(&r.calls, "RoutedClusters")
		return members, nil
	})
	env.OnActivity(a.JoinRouting, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.RoutingRequest) (api.HostChangeResult, error) {
		r.note(&r.calls, "JoinRouting "+req.Bridge+" "+req.Subnet+" by "+req.RequestedBy)
		return api.HostChangeResult{Records: []hostchange.Record{{Change: "add filter rule", Outcome: hostchange.OutcomeDone}}}, r.fail("JoinRouting")
	})
	env.OnActivity(a.LeaveRouting, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.RoutingRequest) (api.HostChangeResult, error) {
		r.note(&r.undo, "LeaveRouting "+req.Cluster)
		return api.HostChangeResult{}, nil
	})
}

// Routing is a host change: refused unconfirmed before anything exists,
// made after the network, rolled back before the network goes, and not
// rolled back when the cluster was a member before the run or the file
// says to keep host changes on failure.
func TestStartClusterJoinsRoutingAsASagaStep(t *testing.T) {
	run := func(req api.Request, members []hostchange.Member, failAt string) (*recorder, error, api.StartResult) {
		var s testsuite.WorkflowTestSuite
		env := onHost(&s, "hv1")
		r := &recorder{failAt: failAt}
		r.install(env)
		r.installRouting(env, members)
		env.ExecuteWorkflow(StartCluster, req)
		var res api.StartResult
		if env.GetWorkflowError() == nil {
			require.NoError(t, env.GetWorkflowResult(&res))
		}
		return r, env.GetWorkflowError(), res
	}
	req := routedRequest(t)
	req.ConfirmedHostChanges = false
	r, err, _ := run(req, nil, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "host_configuration asks for confirmation first")
	assert.Contains(t, err.Error(), "bridge br-lab (192.168.100.0/24)")
	assert.Equal(t, []string{"PendingHostChanges"}, r.calls, "nothing but the host changes is looked at, nothing is made unconfirmed")

	r, err, res := run(routedRequest(t), nil, "")
	require.NoError(t, err)
	assert.Contains(t, r.calls, "JoinRouting br-lab 192.168.100.0/24 by ops@console")
	assert.Less(t, slices.Index(r.calls, "EnsureNetwork"), slices.Index(r.calls, "JoinRouting br-lab 192.168.100.0/24 by ops@console"), "the bridge exists first")
	assert.Equal(t, []string{"add filter rule"}, res.HostChanges)

	r, err, _ = run(routedRequest(t), nil, "StartDomain lab-compute-02")
	require.Error(t, err)
	i := slices.Index(r.undo, "LeaveRouting lab")
	require.GreaterOrEqual(t, i, 0, "%v", r.undo)
	assert.Less(t, i, slices.Index(r.undo, "DeleteNetwork lab-network"))

	r, err, _ = run(routedRequest(t), []hostchange.Member{{Cluster: "lab"}}, "StartDomain lab-compute-02")
	require.Error(t, err)
	assert.NotContains(t, r.undo, "LeaveRouting lab", "a member before the run stays one")

	// Unconfirmed, with the routing in place already: nothing to ask,
	// the run goes on (and the join changes nothing).
	again := routedRequest(t)
	again.ConfirmedHostChanges = false
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r = &recorder{inPlace: api.PendingChanges{Routing: true}}
	r.install(env)
	r.installRouting(env, []hostchange.Member{{Cluster: "lab", Bridge: "br-lab", Subnet: "192.168.100.0/24"}})
	env.ExecuteWorkflow(StartCluster, again)
	require.NoError(t, env.GetWorkflowError())
	assert.Contains(t, r.calls, "JoinRouting br-lab 192.168.100.0/24 by ops@console")

	keep := routedRequest(t)
	keep.Spec.HostConfiguration["rollback_on_failure"] = false
	r, err, _ = run(keep, nil, "StartDomain lab-compute-02")
	require.Error(t, err)
	assert.NotContains(t, r.undo, "LeaveRouting lab", "rollback_on_failure: false keeps host changes")
	assert.Contains(t, r.undo, "DeleteNetwork lab-network")
}

// installResolver mocks the host resolver's steps: existed is what
// ResolverEntryExists answers; writes and removals are noted as calls and
// undos.
func (r *recorder) installResolver(env *testsuite.TestWorkflowEnvironment, existed bool) {
	r.resolverExisted = existed
	env.OnActivity(a.WriteResolverEntry, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.ResolverRequest) (api.HostChangeResult, error) {
		r.note(&r.calls, "WriteResolverEntry "+req.Domain+" "+req.Gateway)
		return api.HostChangeResult{Records: []hostchange.Record{{Change: "host resolver entry", Outcome: hostchange.OutcomeDone}}}, r.fail("WriteResolverEntry")
	})
	env.OnActivity(a.RemoveResolverEntry, mock.Anything, mock.Anything).Return(func(_ context.Context, req api.ResolverRequest) (api.HostChangeResult, error) {
		r.note(&r.undo, "RemoveResolverEntry "+req.Cluster+" "+req.Dir)
		return api.HostChangeResult{}, nil
	})
}

func sharedDNSRequest(t *testing.T) api.Request {
	req := testRequest(t)
	req.Spec.Network.DNSMode = "shared_dns"
	req.Spec.HostConfiguration = map[string]any{"network": map[string]any{"enable_host_dns_integration": true, "dnsmasq_address": "127.0.53.1"}}
	req.ConfirmedHostChanges = true
	return req
}

// Host DNS integration is a host change like routing: its entry is
// checked before anything exists, written after the network, taken back
// before the network goes (unless it was there before the run), and the
// network sends *.local to the host's resolver. An existing network
// whose forwarders differ is refused, untouched.
func TestStartClusterTeachesTheHostResolverAsASagaStep(t *testing.T) {
	run := func(req api.Request, inv api.Inventory, existed bool, failAt string) (*recorder, error, api.StartResult) {
		var s testsuite.WorkflowTestSuite
		env := onHost(&s, "hv1")
		r := &recorder{failAt: failAt, inv: inv}
		r.install(env)
		r.installResolver(env, existed)
		env.ExecuteWorkflow(StartCluster, req)
		var res api.StartResult
		if env.GetWorkflowError() == nil {
			require.NoError(t, env.GetWorkflowResult(&res))
		}
		return r, env.GetWorkflowError(), res
	}
	r, err, res := run(sharedDNSRequest(t), api.Inventory{}, false, "")
	require.NoError(t, err)
	write := "WriteResolverEntry lab.local 192.168.100.1"
	require.Contains(t, r.calls, "ResolverEntryExists /etc/dnsmasq.d")
	require.Contains(t, r.calls, write)
	assert.Less(t, slices.Index(r.calls, "ResolverEntryExists /etc/dnsmasq.d"), slices.Index(r.calls, "EnsureNetwork"), "checked before anything exists")
	assert.Less(t, slices.Index(r.calls, "EnsureNetwork"), slices.Index(r.calls, write), "the network answers first")
	assert.Equal(t, []string{"host resolver entry"}, res.HostChanges)
	assert.Equal(t, "127.0.53.1", res.Plan.Network.HostResolver)

	r, err, _ = run(sharedDNSRequest(t), api.Inventory{}, false, "StartDomain lab-compute-02")
	require.Error(t, err)
	i := slices.Index(r.undo, "RemoveResolverEntry lab /etc/dnsmasq.d")
	require.GreaterOrEqual(t, i, 0, "%v", r.undo)
	assert.Less(t, i, slices.Index(r.undo, "DeleteNetwork lab-network"))

	r, err, _ = run(sharedDNSRequest(t), api.Inventory{}, true, "StartDomain lab-compute-02")
	require.Error(t, err)
	assert.NotContains(t, r.undo, "RemoveResolverEntry lab /etc/dnsmasq.d", "an entry from before the run stays")

	unconfirmed := sharedDNSRequest(t)
	unconfirmed.ConfirmedHostChanges = false
	r, err, _ = run(unconfirmed, api.Inventory{}, false, "")
	require.ErrorContains(t, err, "write /etc/dnsmasq.d/hpcvm-lab.conf")
	assert.Equal(t, []string{"PendingHostChanges"}, r.calls)

	// The cluster's network exists without the host resolver: refused.
	existing := api.Inventory{Network: &api.NetworkState{Name: "lab-network", UUID: cluster.NetworkUUID("lab"), Owned: true, Forward: "nat"}}
	r, err, _ = run(sharedDNSRequest(t), existing, false, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gives network lab-network the DNS forwarders local/127.0.53.1, 127.0.53.1, but it has none")
	assert.NotContains(t, r.calls, "EnsureNetwork")
	assert.NotContains(t, r.calls, write)
	// ... and so is a plain cluster whose network has one.
	existing.Network.DNSForwarders = []cluster.DNSForwarder{{Domain: "local", Addr: "127.0.53.1"}, {Addr: "127.0.53.1"}}
	_, err, _ = run(testRequest(t), existing, false, "")
	require.ErrorContains(t, err, "the DNS forwarders none (the host's resolv.conf), but it has local/127.0.53.1, 127.0.53.1")
}

// A step no worker of the host took within the host timeout: the run
// tries nothing more on that host (no undo would be taken either), and
// says what is left there and how to clean it up.
func TestAStepTheHostDoesNotTakeEndsTheRunWithoutUndos(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: api.ControlQueue})
	r := &recorder{failAt: "EnsureVolume compute-02.qcow2", silent: true}
	r.install(env)
	req := testRequest(t)
	req.Options.HostTimeout = 45 * time.Second
	env.ExecuteWorkflow(StartCluster, req)
	err := env.GetWorkflowError()
	require.Error(t, err)
	assert.Empty(t, r.undo, "no undo is sent to a silent host")
	assert.Contains(t, err.Error(), "host hv1 did not answer: no worker took the step from task queue hpcvm.host.hv1 within 45s (host_timeout)")
	assert.Contains(t, err.Error(), "network lab-network: not tried, host hv1 did not answer")
	assert.Contains(t, err.Error(), "left on host hv1, which did not answer: run `hpcvm destroy` once its worker is back")
	assert.NotContains(t, err.Error(), "nothing had been created")
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	var f api.Failure
	require.NoError(t, appErr.Details(&f))
	assert.Empty(t, f.RolledBack)
	assert.Contains(t, f.NotUndone, "pool lab-pool: not tried, host hv1 did not answer")
}

func TestStartPlansAgainWhenAnotherStartClaimedItsCPUsFirst(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r := &recorder{claimRefusals: 1}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, testRequest(t))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	probes, claims, binds := 0, 0, 0
	for _, c := range r.calls {
		switch c {
		case "ProbeHost":
			probes++
		case "ClaimDevices":
			claims++
		case "BindCluster":
			binds++
		}
	}
	assert.Equal(t, 2, probes, "the preflight ran again, with the other start's claims in view")
	assert.Equal(t, 2, claims)
	assert.Equal(t, 1, binds, "the cluster is bound once")
	assert.Empty(t, r.undo, "a refused claim took nothing: nothing to give back")

	// Refused twice: the run fails as a conflict, having created nothing.
	env = onHost(&s, "hv1")
	r = &recorder{claimRefusals: 2}
	r.install(env)
	env.ExecuteWorkflow(StartCluster, testRequest(t))
	err := env.GetWorkflowError()
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	assert.Equal(t, api.ErrTypeBadInput, appErr.Type())
	assert.Contains(t, err.Error(), "CPU 1 is claimed by cluster other")
	assert.Empty(t, r.undo, "refused at its claims, the run had bound nothing yet")
	assert.Contains(t, err.Error(), "nothing had been created")
}
