package activities

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 19, point 7: with the xtables lock held, the inspection a start
// (and a destroy) acts on cannot tell whether the cluster is routed. It
// fails, retryably, instead of answering "not routed": the start's
// routing-change check must not pass on what it could not read. Status
// (no Activate) still answers, with the problem shown.
func TestInspectionFailsClosedWhenTheRoutingCannotBeRead(t *testing.T) {
	f := newFixture(t)
	f.acts.HostChanges = &hostchange.Host{Name: "testhost", Audit: &hostchange.Audit{Path: filepath.Join(t.TempDir(), "audit.jsonl")}}
	// iptables as iptables-legacy answers when another program holds the
	// xtables lock longer than it waits.
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "iptables"), []byte("#!/bin/sh\necho 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' >&2\nexit 4\n"), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	// A cluster that never routed here cannot be a member: it goes on.
	val, err := f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: f.prefix, Activate: true})
	require.NoError(t, err, "a cluster hpcvm never made routing rules for is not held up by iptables")
	var never api.Inventory
	require.NoError(t, val.Get(&never))
	require.NotNil(t, never.Routing)
	assert.True(t, never.Routing.Busy)

	// One whose rules hpcvm made is held up, retryably.
	require.NoError(t, f.acts.HostChanges.Audit.Append(hostchange.Record{Cluster: f.prefix, Action: hostchange.ActionApply, Outcome: hostchange.OutcomeDone,
		Command: "iptables -w -t filter -A HPCVM_ROUTED -m comment --comment hpcvm-routed:" + f.prefix + " -j HPCVM_ROUTED_TO"}))
	_, err = f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: f.prefix, Activate: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot tell whether cluster "+f.prefix+" is one of host testhost's routed clusters")
	assert.Contains(t, err.Error(), "xtables lock")
	assert.Contains(t, err.Error(), "nothing was changed")
	typ, nonRetryable := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeBusy, typ)
	assert.False(t, nonRetryable, "a lock held for a while is retried")

	val, err = f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: f.prefix})
	require.NoError(t, err)
	var inv api.Inventory
	require.NoError(t, val.Get(&inv))
	require.NotNil(t, inv.Routing)
	assert.Contains(t, inv.Routing.Problem, "xtables lock")

	// iptables that fails for good (no rights, no tables) is not a lock
	// to wait for: refused at once, saying what to fix.
	require.NoError(t, os.WriteFile(filepath.Join(bin, "iptables"), []byte("#!/bin/sh\necho 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)' >&2\nexit 4\n"), 0o755))
	_, err = f.env().ExecuteActivity(f.acts.InspectCluster, api.InspectRequest{Cluster: f.prefix, Activate: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "make iptables work for the worker")
	typ, nonRetryable = appErrorType(t, err)
	assert.Equal(t, api.ErrTypeInvalidState, typ)
	assert.True(t, nonRetryable)
}

// The question a start asks before a person confirms the join: with the
// xtables lock held it cannot say "in place", so the join is asked about
// (an error, or pending), never skipped.
func TestPendingRoutingWithTheXtablesLockHeldIsNotInPlace(t *testing.T) {
	acts := &Activities{HostChanges: &hostchange.Host{Name: "testhost", Audit: &hostchange.Audit{Path: filepath.Join(t.TempDir(), "audit.jsonl")}}}
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "iptables"), []byte("#!/bin/sh\necho 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' >&2\nexit 4\n"), 0o755))
	// sysctl answers 1, so the answer rests on what iptables says.
	require.NoError(t, os.WriteFile(filepath.Join(bin, "sysctl"), []byte("#!/bin/sh\necho 1\n"), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	p, err := acts.PendingHostChanges(context.Background(), api.PendingRequest{Routing: &api.RoutingRequest{Cluster: "lab", Bridge: "br-lab", Subnet: "10.9.0.0/24"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "xtables lock")
	assert.False(t, p.Any())
}
