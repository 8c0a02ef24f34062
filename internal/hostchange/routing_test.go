package hostchange

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testHost gives a Host working in a network namespace of its own, made for
// this test and removed after it: the real iptables and sysctl, never the
// machine's own namespace.
func testHost(t *testing.T) *Host {
	t.Helper()
	if os.Geteuid() != 0 {
		// CI runs as root: there the test must run, never skip.
		if os.Getenv("CI") != "" {
			t.Fatal("needs root to make a network namespace, and CI must run it")
		}
		t.Skip("needs root to make a network namespace (CI runs as root)")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "hpcvm-hc-" + hex.EncodeToString(b)
	out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	return &Host{Name: "testhost", Netns: ns, Audit: &Audit{Path: filepath.Join(t.TempDir(), "audit.jsonl")}}
}

func (h *Host) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.output(context.Background(), args[0], args[1:]...)
	require.NoError(t, err)
	return out
}

// bridges makes the members' bridges in the host's namespace, as libvirt
// would have.
func (h *Host) bridges(t *testing.T, ms ...Member) {
	t.Helper()
	for _, m := range ms {
		h.must(t, "ip", "link", "add", m.Bridge, "type", "bridge")
	}
}

func firstRule(t *testing.T, h *Host, table, chain string) string {
	t.Helper()
	for _, l := range strings.Split(h.must(t, "iptables", "-w", "-t", table, "-S", chain), "\n") {
		if strings.HasPrefix(l, "-A ") {
			return l
		}
	}
	return ""
}

func TestRoutingJoinsAndLeavesLeavingNothingBehind(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	// libvirt's own rules come first before hpcvm joins: ours must be put
	// before them.
	h.must(t, "iptables", "-w", "-A", "FORWARD", "-j", "REJECT")
	h.must(t, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE")
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.61.1.0/24"}
	b := Member{Cluster: "beta", Bridge: "br-beta", Subnet: "10.61.2.0/24"}
	meta := func(c string) Meta {
		return Meta{Cluster: c, RequestedBy: "ops@console", WorkflowID: "hpcvm-cluster-" + c, RunID: "run-" + c}
	}
	require.Equal(t, "0", h.must(t, "sysctl", "-n", ipForwardKey), "a new namespace does not forward")

	// A bridge that is not where the rules would go (libvirtd in another
	// namespace): refused, nothing made.
	_, err := h.Join(ctx, meta("alpha"), a, JoinOptions{EnableIPForwarding: true})
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "bridge br-alpha of cluster alpha is not in network namespace "+h.Netns)
	assert.Contains(t, err.Error(), "--netns")
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S"), chainFrom)
	assert.Equal(t, "0", h.must(t, "sysctl", "-n", ipForwardKey))
	h.bridges(t, a, b)

	// Forwarding off and not allowed: refused, and nothing made.
	_, err = h.Join(ctx, meta("alpha"), a, JoinOptions{})
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "enable_ip_forwarding is false")
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S"), chainFrom)

	recs, err := h.Join(ctx, meta("alpha"), a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))
	require.NotEmpty(t, recs)
	assert.Equal(t, ipForwardWhat, recs[0].Change)
	assert.Equal(t, "0", recs[0].Before)
	assert.Equal(t, OutcomeDone, recs[0].Outcome)
	assert.Equal(t, "-A FORWARD -j "+chainFrom, firstRule(t, h, "filter", "FORWARD"))
	assert.Equal(t, "-A POSTROUTING -j "+chainFrom, firstRule(t, h, "nat", "POSTROUTING"))

	// Again: everything is in place, nothing changes.
	again, err := h.Join(ctx, meta("alpha"), a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	for _, r := range again {
		assert.Equal(t, OutcomeUnchanged, r.Outcome, r.Change)
	}
	_, err = h.Join(ctx, meta("beta"), b, JoinOptions{})
	require.NoError(t, err, "forwarding is on now: beta needs no permission to turn it on")
	members, err := h.Members(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Member{a, b}, members)
	filter := h.must(t, "iptables", "-w", "-S")
	assert.Equal(t, 1, strings.Count(filter, "-A FORWARD -j "+chainFrom), "one jump, whatever the number of members")

	// beta leaves: alpha stays, and so does forwarding.
	recs, err = h.Leave(ctx, meta("beta"), false)
	require.NoError(t, err)
	assert.Len(t, recs, 5, "beta's five rules")
	members, err = h.Members(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Member{a}, members)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))

	// alpha leaves: the chains and jumps go, and forwarding goes back to
	// 0 because alpha turned it on, in this boot.
	_, err = h.Leave(ctx, meta("alpha"), false)
	require.NoError(t, err)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S"), chainFrom)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-t", "nat", "-S"), chainFrom)
	assert.Equal(t, "-A FORWARD -j REJECT --reject-with icmp-port-unreachable", firstRule(t, h, "filter", "FORWARD"), "the rules that were there are untouched")
	assert.Equal(t, "0", h.must(t, "sysctl", "-n", ipForwardKey))

	// Nothing of either is left: leaving again changes nothing.
	for _, c := range []string{"alpha", "beta"} {
		recs, err = h.Leave(ctx, meta(c), false)
		require.NoError(t, err)
		assert.Empty(t, recs)
	}

	all, skipped, err := h.Audit.ReadSettled(nil)
	require.NoError(t, err)
	assert.Zero(t, skipped)
	var last Record
	for _, r := range all {
		assert.Equal(t, "testhost", r.Host)
		assert.Equal(t, h.Netns, r.Netns)
		assert.Equal(t, "ops@console", r.RequestedBy)
		assert.NotEmpty(t, r.Cluster)
		assert.False(t, r.Time.IsZero())
		if r.Outcome == OutcomeDone {
			assert.NotEmpty(t, r.Command, r.Change)
		}
		last = r
	}
	assert.Equal(t, ActionRevert, last.Action)
	assert.Equal(t, ipForwardWhat, last.Change)
	assert.Equal(t, "sysctl -w net.ipv4.ip_forward=0", last.Command)
}

func TestForwardingHpcvmDidNotTurnOnStaysOn(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	h.must(t, "sysctl", "-w", ipForwardKey+"=1")
	m := Member{Cluster: "gamma", Bridge: "br-gamma", Subnet: "10.61.3.0/24"}
	h.bridges(t, m)
	_, err := h.Join(ctx, Meta{Cluster: "gamma"}, m, JoinOptions{})
	require.NoError(t, err)
	_, err = h.Leave(ctx, Meta{Cluster: "gamma"}, false)
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey), "it was on before hpcvm came")
}

func TestForwardingAnotherNetworkNeedsIsKept(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	m := Member{Cluster: "delta", Bridge: "br-delta", Subnet: "10.61.4.0/24"}
	h.bridges(t, m)
	_, err := h.Join(ctx, Meta{Cluster: "delta"}, m, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	recs, err := h.Leave(ctx, Meta{Cluster: "delta"}, true)
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))
	last := recs[len(recs)-1]
	assert.Equal(t, OutcomeKept, last.Outcome)
	assert.Contains(t, last.Note, "another network of this host forwards")
}

func TestAuditSkipsATornLine(t *testing.T) {
	a := &Audit{Path: filepath.Join(t.TempDir(), "sub", "audit.jsonl")}
	require.NoError(t, a.Append(Record{Cluster: "x", Action: ActionApply, Change: "c", Outcome: OutcomeDone}))
	f, err := os.OpenFile(a.Path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = f.WriteString(`{"time":"2026-`)
	require.NoError(t, f.Close())
	recs, skipped, err := a.Read(nil)
	require.NoError(t, err)
	assert.Len(t, recs, 1)
	assert.Equal(t, 1, skipped)
	st, err := os.Stat(a.Path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the log says who did what: root's to read")
}

// The registry file: written when missing or different, left when equal,
// a same-named file that is not the cluster's refused, removed by what the
// audit log says was written.
func TestServiceDiscoveryRecord(t *testing.T) {
	dir := t.TempDir()
	h := &Host{Name: "testhost", Audit: &Audit{Path: filepath.Join(dir, "audit.jsonl")}, LockPath: filepath.Join(dir, "lock")}
	ctx := context.Background()
	meta := Meta{Cluster: "lab", RequestedBy: "ops@console", RunID: "run-1"}
	path := DiscoveryFile(dir, "lab")
	doc, err := RegistryDocument("lab", []Node{{VM: "compute-01", Role: "compute", Address: "10.9.0.11"}, {VM: "controller-01", Role: "controller", Address: "10.9.0.10"}})
	require.NoError(t, err)
	assert.Contains(t, string(doc), `"tags": [
        "controller-01",
        "controller",
        "hpcvm"
      ]`)
	recs, err := h.WriteRecord(ctx, meta, path, doc)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, OutcomeDone, recs[0].Outcome)
	assert.Equal(t, "absent", recs[0].Before)
	assert.Empty(t, recs[0].Netns, "a file is in no network namespace")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, doc, got)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	recs, err = h.WriteRecord(ctx, meta, path, doc)
	require.NoError(t, err)
	assert.Equal(t, OutcomeUnchanged, recs[0].Outcome)

	// Another cluster's name on a hand-made file: refused, untouched.
	other := DiscoveryFile(dir, "web")
	require.NoError(t, os.WriteFile(other, []byte(`{"services":[{"name":"web"}]}`), 0o644))
	_, err = h.WriteRecord(ctx, Meta{Cluster: "web"}, other, doc)
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "is not hpcvm's registry file of cluster web")

	// A destroy of compute-01 takes it out; the controller stays.
	recs, err = h.PruneRecord(ctx, Meta{Cluster: "lab"}, []string{"compute-01", "compute-09"})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "write "+path, recs[0].Command)
	assert.NotContains(t, readString(t, path), "compute-01")
	assert.Contains(t, readString(t, path), "controller-01")
	recs, err = h.PruneRecord(ctx, Meta{Cluster: "lab"}, []string{"compute-01"})
	require.NoError(t, err)
	assert.Empty(t, recs, "nothing more to take out")
	recs, err = h.PruneRecord(ctx, Meta{Cluster: "web"}, []string{"compute-01"})
	require.NoError(t, err)
	assert.Empty(t, recs, "hpcvm never wrote web's file")

	recs, err = h.RemoveRecord(ctx, Meta{Cluster: "lab", RunID: "run-2"}, "", nil)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "remove "+path, recs[0].Command)
	assert.NoFileExists(t, path)
	recs, err = h.RemoveRecord(ctx, Meta{Cluster: "lab"}, "", nil)
	require.NoError(t, err)
	assert.Empty(t, recs, "nothing left to remove")
	recs, err = h.RemoveRecord(ctx, Meta{Cluster: "web"}, "", nil)
	require.NoError(t, err)
	assert.Empty(t, recs, "hpcvm never wrote web's file")
	assert.FileExists(t, other)
}

// What an adversarial host holds: a Leave interrupted half-way, rules
// hpcvm did not make in its chains, a comment that only starts with the
// tag, libvirt's jumps put back above hpcvm's, a worker in the wrong
// namespace.
func TestRoutingOnAHostOthersTouched(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.62.1.0/24"}
	h.bridges(t, a)
	meta := Meta{Cluster: "alpha", RunID: "run-a"}
	_, err := h.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)

	// A firewall reload put another jump first: the next join moves ours
	// back above it.
	h.must(t, "iptables", "-w", "-N", "LIBVIRT_FWX")
	h.must(t, "iptables", "-w", "-I", "FORWARD", "1", "-j", "LIBVIRT_FWX")
	recs, err := h.Join(ctx, meta, a, JoinOptions{})
	require.NoError(t, err)
	assert.Equal(t, "-A FORWARD -j "+chainFrom, firstRule(t, h, "filter", "FORWARD"))
	assert.Contains(t, recs[1].Change, "move the jump from filter FORWARD")

	// A hand-made rule whose comment only begins with alpha's tag is not
	// alpha's: it stays. It names a member ("alpha extra"), so forwarding
	// is kept for it, for good.
	h.must(t, "iptables", "-w", "-A", chainFrom, "-i", "br-x", "-m", "comment", "--comment", "hpcvm-routed:alpha extra", "-j", "RETURN")
	recs, err = h.Leave(ctx, meta, false)
	require.NoError(t, err)
	assert.Contains(t, h.must(t, "iptables", "-w", "-S", chainFrom), `"hpcvm-routed:alpha extra"`)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S", chainFrom), `"hpcvm-routed:alpha"`)
	assert.Equal(t, OutcomeKept, recs[len(recs)-1].Outcome)
	assert.Contains(t, recs[len(recs)-1].Note, "routed cluster(s) alpha extra still need it")
	h.must(t, "iptables", "-w", "-D", chainFrom, "1")
	// The admin turns forwarding off; alpha joins again and turns it on.
	h.must(t, "sysctl", "-w", ipForwardKey+"=0")
	_, err = h.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	recs, err = h.Leave(ctx, meta, false)
	require.NoError(t, err)
	assert.Equal(t, "0", h.must(t, "sysctl", "-n", ipForwardKey))
	_, err = h.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)

	// An untagged rule in hpcvm's chain: the chain and the jump to it stay,
	// and the log says why.
	h.must(t, "iptables", "-w", "-A", chainFrom, "-i", "br-x", "-j", "RETURN")
	recs, err = h.Leave(ctx, Meta{Cluster: "alpha", RunID: "run-again"}, false)
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	kept := recs[len(recs)-1]
	assert.Equal(t, OutcomeKept, kept.Outcome)
	assert.Contains(t, kept.Note, "holds 1 rule(s) hpcvm did not make")
	assert.Equal(t, "-A FORWARD -j "+chainFrom, firstRule(t, h, "filter", "FORWARD"), "the jump stays: it still leads to that rule")
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey), "forwarding is restored only once hpcvm's chains are gone")

	// Once that rule goes, alpha's next leave (a retry after an
	// interruption) finishes the job and restores forwarding.
	h.must(t, "iptables", "-w", "-D", chainFrom, "1")
	_, err = h.Leave(ctx, Meta{Cluster: "alpha", RunID: "run-retry"}, false)
	require.NoError(t, err)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S"), chainFrom)
	assert.Equal(t, "0", h.must(t, "sysctl", "-n", ipForwardKey))

	// Rules made in one namespace are not left from another.
	_, err = h.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	elsewhere := &Host{Name: h.Name, Audit: h.Audit}
	_, err = elsewhere.Leave(ctx, meta, false)
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "were made in network namespace "+h.Netns)
	_, err = h.Leave(ctx, meta, false)
	require.NoError(t, err)
}

func TestServiceDiscoveryRecordIsNeverReadThroughALink(t *testing.T) {
	dir := t.TempDir()
	h := &Host{Name: "testhost", Audit: &Audit{Path: filepath.Join(dir, "audit.jsonl")}, LockPath: filepath.Join(dir, "lock")}
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("root only"), 0o600))
	path := DiscoveryFile(dir, "lab")
	require.NoError(t, os.Symlink(secret, path))
	doc, err := RegistryDocument("lab", []Node{{VM: "controller-01", Role: "controller", Address: "10.9.0.10"}})
	require.NoError(t, err)
	_, err = h.WriteRecord(context.Background(), Meta{Cluster: "lab"}, path, doc)
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "is not a regular file")
	b, err := os.ReadFile(secret)
	require.NoError(t, err)
	assert.Equal(t, "root only", string(b), "untouched")
}

func TestFieldsReadsQuotedComments(t *testing.T) {
	assert.Equal(t, []string{"-A", "X", "--comment", "a b \"c\"", "-j", "Y"}, fields(`-A X --comment "a b \"c\"" -j Y`))
}

// The host resolver's drop-in: written and followed by a reload, left
// alone (no reload) when equal, taken back when the reload fails, a
// hand-made file of the name refused, removed (and reloaded) by what the
// audit log says was written.
func TestHostResolverEntry(t *testing.T) {
	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads")
	h := &Host{Name: "testhost", Audit: &Audit{Path: filepath.Join(dir, "audit.jsonl")}, LockPath: filepath.Join(dir, "lock"),
		ResolverReload: []string{"sh", "-c", "echo reload >> " + reloads}}
	ctx := context.Background()
	meta := Meta{Cluster: "lab", RequestedBy: "ops@console", RunID: "run-1"}
	path := ResolverFile(dir, "lab")
	entry, err := ResolverEntry("lab", "lab.local", "10.9.0.1")
	require.NoError(t, err)
	assert.Equal(t, "# hpcvm-cluster: lab\n", strings.SplitAfter(string(entry), "\n")[0])
	assert.True(t, strings.HasSuffix(string(entry), "\nserver=/lab.local/10.9.0.1\n"), "%s", entry)
	assert.NotContains(t, string(entry), "rev-server", "the network would forward the reverse zone back")
	_, err = ResolverEntry("lab", "lab.local/x", "10.9.0.1")
	assert.Error(t, err)
	_, err = ResolverEntry("lab", "lab.local", "gateway")
	assert.Error(t, err)

	exists, err := h.ResolverExists(path, "lab")
	require.NoError(t, err)
	assert.False(t, exists)
	recs, err := h.WriteResolver(ctx, meta, path, entry)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, "write "+path, recs[0].Command)
	assert.Equal(t, "sh -c echo reload >> "+reloads, recs[1].Command)
	assert.Equal(t, OutcomeDone, recs[1].Outcome)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, entry, got)
	exists, err = h.ResolverExists(path, "lab")
	require.NoError(t, err)
	assert.True(t, exists)

	recs, err = h.WriteResolver(ctx, meta, path, entry)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, OutcomeUnchanged, recs[0].Outcome)
	n, _ := os.ReadFile(reloads)
	assert.Equal(t, "reload\n", string(n), "an unchanged entry reloads nothing")

	// A reload that fails: the new entry is taken back, the old one stays.
	failing := &Host{Name: h.Name, Audit: h.Audit, LockPath: h.LockPath, ResolverReload: []string{"sh", "-c", "echo 'dnsmasq: bad option' >&2; exit 3"}}
	changed, err := ResolverEntry("lab", "lab.local", "10.9.0.254")
	require.NoError(t, err)
	recs, err = failing.WriteResolver(ctx, meta, path, changed)
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "the host's resolver did not reload")
	assert.Contains(t, err.Error(), "dnsmasq: bad option")
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, entry, got, "the entry the resolver runs with is put back")
	assert.Equal(t, OutcomeFailed, recs[1].Outcome)
	assert.Equal(t, ActionRevert, recs[2].Action)

	// A worker without a reload command makes no entry at all.
	none := &Host{Name: h.Name, Audit: h.Audit, LockPath: h.LockPath}
	_, err = none.WriteResolver(ctx, Meta{Cluster: "web"}, ResolverFile(dir, "web"), entry)
	require.ErrorAs(t, err, &refused)
	assert.NoFileExists(t, ResolverFile(dir, "web"))

	// Hand-made: a file of web's name that does not start with web's mark,
	// and a link.
	other := ResolverFile(dir, "web")
	require.NoError(t, os.WriteFile(other, []byte("# hpcvm-cluster: lab\nserver=/web.local/10.1.1.1\n"), 0o644))
	_, err = h.WriteResolver(ctx, Meta{Cluster: "web"}, other, entry)
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "is not hpcvm's dnsmasq drop-in of cluster web")
	require.NoError(t, os.Symlink(path, ResolverFile(dir, "db")))
	_, err = h.ResolverExists(ResolverFile(dir, "db"), "db")
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "is not a regular file")

	recs, err = h.RemoveResolver(ctx, Meta{Cluster: "lab", RunID: "run-2"}, "", nil)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, "remove "+path, recs[0].Command)
	assert.Equal(t, OutcomeDone, recs[1].Outcome)
	assert.NoFileExists(t, path)
	n, _ = os.ReadFile(reloads)
	assert.Equal(t, "reload\nreload\n", string(n))
	recs, err = h.RemoveResolver(ctx, Meta{Cluster: "lab"}, "", nil)
	require.NoError(t, err)
	assert.Empty(t, recs, "nothing left to remove, nothing reloaded")
	recs, err = h.RemoveResolver(ctx, Meta{Cluster: "web"}, "", nil)
	require.NoError(t, err)
	assert.Empty(t, recs, "hpcvm never wrote web's file")
	assert.FileExists(t, other)
	// The registry file's removal does not take the resolver's entries
	// for its own, nor the other way round.
	recs, err = h.RemoveRecord(ctx, Meta{Cluster: "lab"}, "", nil)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
