package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/preflight"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
)

func checkNames(cs []api.Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func planOf(t *testing.T, req api.Request, r *recorder, resolver bool) api.PlanReport {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r.install(env)
	if resolver {
		r.installResolver(env, false)
	}
	env.ExecuteWorkflow(PlanCluster, req)
	require.NoError(t, env.GetWorkflowError())
	var rep api.PlanReport
	require.NoError(t, env.GetWorkflowResult(&rep))
	return rep
}

func startOf(t *testing.T, req api.Request, r *recorder, resolver bool) (api.StartResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := onHost(&s, "hv1")
	r.install(env)
	if resolver {
		r.installResolver(env, false)
	}
	env.ExecuteWorkflow(StartCluster, req)
	var res api.StartResult
	if env.GetWorkflowError() == nil {
		require.NoError(t, env.GetWorkflowResult(&res))
	}
	return res, env.GetWorkflowError()
}

// validate/plan and start run one preflight: the same checks, by the
// same names, in the order of PreflightChecks. If start checked what
// validate does not (or the reverse), this fails.
func TestValidateAndStartRunTheSameChecks(t *testing.T) {
	for name, tc := range map[string]struct {
		req      api.Request
		resolver bool
	}{
		"plain":      {testRequest(t), false},
		"shared dns": {sharedDNSRequest(t), true},
	} {
		t.Run(name, func(t *testing.T) {
			rep := planOf(t, tc.req, &recorder{}, tc.resolver)
			require.True(t, rep.OK(), "%+v", rep.Checks)
			res, err := startOf(t, tc.req, &recorder{}, tc.resolver)
			require.NoError(t, err)

			planned, started := checkNames(rep.Checks), checkNames(res.Checks)
			assert.Equal(t, planned, started, "validate reports the checks start runs")
			var order []string
			for _, c := range preflight.Checks {
				if slices.Contains(planned, c) {
					order = append(order, c)
				}
			}
			assert.Equal(t, order, planned, "in the order of preflight.Checks, each once")
			for _, must := range []string{preflight.CheckFile, preflight.CheckNames, preflight.CheckRouting, preflight.CheckForward, preflight.CheckAddresses, preflight.CheckDNS, preflight.CheckHost, preflight.CheckHardware, preflight.CheckPaths, preflight.CheckBaseImage, preflight.CheckDiskSizes, preflight.CheckPoolSpace} {
				assert.Contains(t, planned, must)
			}
			if tc.resolver {
				assert.Contains(t, planned, preflight.CheckResolver, "validate looks at the resolver entry, as start does")
			}
		})
	}
}

// A check that fails fails both: validate reports it by name, start
// refuses with the same words before it creates anything.
func TestACheckThatFailsFailsValidateAndStartAlike(t *testing.T) {
	lookalike := api.Inventory{Domains: []api.DomainState{{Name: "lab-compute-01", State: "shut off"}}}
	plan, err := cluster.NewPlan(testRequest(t).Spec)
	require.NoError(t, err)
	// A base volume an older hpcvm uploaded, whose header names a
	// backing file (InspectCluster read it).
	badBase := existingInventory(plan)
	base := badBase.Volumes["lab-base.qcow2"]
	base.Problem = "volume lab-base.qcow2 names the backing file /etc/shadow: flatten it"
	badBase.Volumes["lab-base.qcow2"] = base
	for _, tc := range []struct {
		check    string
		r        func() *recorder
		resolver bool
	}{
		{preflight.CheckNames, func() *recorder { return &recorder{inv: lookalike} }, false},
		{preflight.CheckRange, func() *recorder {
			return &recorder{inv: api.Inventory{AddressesInUse: []api.AddressInUse{{Subnet: "192.168.100.128/25", Owner: "libvirt network default (bridge virbr0)", Bridge: "virbr0"}}}}
		}, false},
		{preflight.CheckBaseImage + " (in the pool)", func() *recorder { return &recorder{inv: badBase} }, false},
		{preflight.CheckPaths, func() *recorder { return &recorder{failAt: "CheckHostPaths", badInput: true} }, false},
		{preflight.CheckBaseImage, func() *recorder { return &recorder{failAt: "InspectBaseImage", badInput: true} }, false},
		{preflight.CheckResolver, func() *recorder { return &recorder{failAt: "ResolverEntryExists", badInput: true} }, true},
	} {
		t.Run(tc.check, func(t *testing.T) {
			req := testRequest(t)
			if tc.resolver {
				req = sharedDNSRequest(t)
			}
			rep := planOf(t, req, tc.r(), tc.resolver)
			require.False(t, rep.OK())
			var failed *api.Check
			for i := range rep.Checks {
				if !rep.Checks[i].OK {
					failed = &rep.Checks[i]
					break
				}
			}
			require.NotNil(t, failed)
			assert.Equal(t, strings.TrimSuffix(tc.check, " (in the pool)"), failed.Name)

			r := tc.r()
			_, err := startOf(t, req, r, tc.resolver)
			require.Error(t, err)
			assert.Contains(t, err.Error(), failed.Detail, "start refuses with what validate reported")
			for _, c := range r.calls {
				assert.NotContains(t, []string{"EnsureNetwork", "EnsurePool", "UploadBaseImage"}, c, "nothing was created")
			}
		})
	}
}

// A plan that cannot read the host's routing rules (the xtables lock is
// held) does not take that for "not routed": the routing check fails.
func TestValidateFailsClosedWhenTheRoutingCannotBeRead(t *testing.T) {
	inv := api.Inventory{Routing: &api.RoutingState{Problem: "iptables did not answer within 5s (is the xtables lock held?)"}}
	rep := planOf(t, testRequest(t), &recorder{inv: inv}, false)
	require.False(t, rep.OK())
	for _, c := range rep.Checks {
		if c.Name == preflight.CheckRouting {
			assert.False(t, c.OK)
			assert.Contains(t, c.Detail, "cannot tell whether cluster lab is one of host hv1's routed clusters")
		}
	}
}

// A host with no other network and no route still had its range checked:
// validate says so, rather than leaving the check out as it does for an
// inspection recorded before addresses were listed.
func TestRangeCheckIsShownOnAHostWithNothingInUse(t *testing.T) {
	rangeCheck := func(inv api.Inventory) *api.Check {
		rep := planOf(t, testRequest(t), &recorder{inv: inv}, false)
		for i := range rep.Checks {
			if rep.Checks[i].Name == preflight.CheckRange {
				return &rep.Checks[i]
			}
		}
		return nil
	}
	c := rangeCheck(api.Inventory{AddressesListed: true})
	require.NotNil(t, c, "the range check is reported")
	assert.True(t, c.OK)
	assert.Contains(t, c.Detail, "overlaps no network or route of the host")
	assert.Nil(t, rangeCheck(api.Inventory{}), "an inspection that listed nothing says nothing")
}

// A start is not refused for firewall rules it cannot read: the host's
// inspection refuses a start itself when the cluster was ever routed (its
// audit log says so); validate fails closed.
func TestStartGoesOnWhenTheRoutingCannotBeRead(t *testing.T) {
	inv := api.Inventory{Routing: &api.RoutingState{Problem: "iptables did not answer within 5s (is the xtables lock held?)"}}
	_, err := startOf(t, testRequest(t), &recorder{inv: inv}, false)
	require.NoError(t, err)
}

// A start records its preflight's answer in the run's history, in one
// payload, which Temporal caps at 2 MiB: what a start does not use (the
// plan's report: documents, objects) stays out; a cluster whose answer
// would still not fit is refused, before anything is created, with the
// size it may have; plan and validate say so and leave their documents out.
func TestARecordedStartPlanFitsTheHistoryOrIsRefused(t *testing.T) {
	request := func(computes int) api.Request {
		var spec strings.Builder
		spec.WriteString(strings.Split(testSpec, "compute_nodes:")[0] + "compute_nodes:\n")
		for i := 1; i <= computes; i++ {
			fmt.Fprintf(&spec, "  - {name: compute-%03d, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n", i)
		}
		s, err := cluster.Parse([]byte(strings.Replace(spec.String(), "controller:", "network: {network_range: 10.40.0.0/20}\ncontroller:", 1)))
		require.NoError(t, err)
		return api.Request{Spec: s}
	}
	preflightOf := func(computes int, mode string) (api.ClusterPlan, int) {
		cp, err := preflight.Run(context.Background(), fakeHost{&recorder{}}, api.PreflightRequest{Request: request(computes), Mode: mode})
		require.NoError(t, err)
		b, err := json.Marshal(cp)
		require.NoError(t, err)
		return cp, len(b)
	}

	fits, size := preflightOf(299, api.PreflightStart)
	require.Nil(t, fits.Refusal)
	require.NotNil(t, fits.Steps)
	assert.Zero(t, len(fits.Documents), "a start does not record the plan's documents: its steps carry the XML")
	assert.Zero(t, len(fits.Objects))
	assert.LessOrEqual(t, size, preflight.MaxRecordedPlan)
	t.Logf("1 + 299 VMs: a start records %d KiB (%d B a VM)", size>>10, size/300)

	tooLarge, size := preflightOf(999, api.PreflightStart)
	require.NotNil(t, tooLarge.Refusal, "%d B", size)
	assert.Equal(t, preflight.CheckSize, tooLarge.Refusal.Check)
	assert.Contains(t, tooLarge.Refusal.Message, "the plan of 1000 VMs takes")
	assert.Contains(t, tooLarge.Refusal.Message, "split the cluster into clusters of at most")
	assert.Nil(t, tooLarge.Steps)
	assert.Less(t, size, preflight.MaxRecordedPlan, "the refusal itself is small")

	report, size := preflightOf(999, api.PreflightPlan)
	assert.Less(t, size, 2<<20, "plan's report of a cluster too large still comes back")
	assert.Contains(t, checkNames(report.Checks), preflight.CheckSize)
	assert.Zero(t, len(report.Documents))
}
