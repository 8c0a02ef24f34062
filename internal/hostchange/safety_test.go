package hostchange

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bootIn gives h a boot ID file of its own, so that a test can reboot it.
func bootIn(t *testing.T, h *Host) {
	t.Helper()
	h.BootIDPath = filepath.Join(t.TempDir(), "boot_id")
	require.NoError(t, os.WriteFile(h.BootIDPath, []byte("boot-1\n"), 0o644))
}

// reboot is what a reboot does to what hpcvm reads: a new boot ID, and IP
// forwarding back to the kernel's 0. (Rules restored at boot by
// iptables-persistent are left in place: the test says which.)
func reboot(t *testing.T, h *Host, id string) {
	t.Helper()
	require.NoError(t, os.WriteFile(h.BootIDPath, []byte(id+"\n"), 0o644))
	h.must(t, "sysctl", "-w", ipForwardKey+"=0")
}

// sysctlCalls puts a sysctl in front of the real one that logs every call
// (in the test's namespace too: ip netns exec finds it on PATH), and
// returns the log.
func sysctlCalls(t *testing.T) func() []string {
	t.Helper()
	real, err := exec.LookPath("sysctl")
	require.NoError(t, err)
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sysctl"), []byte("#!/bin/sh\necho \"$*\" >> "+log+"\nexec "+real+" \"$@\"\n"), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		}
		require.NoError(t, err)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

func lastForwarding(t *testing.T, h *Host) Record {
	t.Helper()
	recs, _, err := h.Audit.ReadSettled(func(r Record) bool { return r.Change == ipForwardWhat })
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	return recs[len(recs)-1]
}

// Issue 19, point 1, scenario A, as it was seen end to end: a routed
// cluster turned forwarding on again after the admin turned it off; its
// destroy kept it on for another network; the admin then set it to 1; a
// destroy of a cluster that never existed must leave it at 1, and never
// touch sysctl.
func TestForwardingDestroyOfAClusterThatNeverRoutedLeavesItAlone(t *testing.T) {
	h := testHost(t)
	bootIn(t, h)
	ctx := context.Background()
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.63.1.0/24"}
	h.bridges(t, a)
	meta := Meta{Cluster: "alpha", RunID: "run-a1"}
	_, err := h.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	h.must(t, "sysctl", "-w", ipForwardKey+"=0") // the admin
	_, err = h.Join(ctx, Meta{Cluster: "alpha", RunID: "run-a2"}, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))

	recs, err := h.Leave(ctx, Meta{Cluster: "alpha", RunID: "run-d1"}, true)
	require.NoError(t, err)
	kept := recs[len(recs)-1]
	assert.Equal(t, OutcomeKept, kept.Outcome)
	assert.Contains(t, kept.Note, "another network of this host forwards and needs it")
	assert.Contains(t, kept.Note, "hpcvm will not turn it off later")
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))

	// That other network went away; the admin wants forwarding on.
	h.must(t, "sysctl", "-w", ipForwardKey+"=1")
	calls := sysctlCalls(t)
	recs, err = h.Leave(ctx, Meta{Cluster: "never-existed", RunID: "run-ghost"}, false)
	require.NoError(t, err)
	assert.Empty(t, recs)
	assert.Empty(t, calls(), "a cluster that never routed neither reads nor writes sysctl")
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))

	// Kept is final: alpha's own destroy, again, does not turn it off.
	recs, err = h.Leave(ctx, Meta{Cluster: "alpha", RunID: "run-d2"}, false)
	require.NoError(t, err)
	assert.Empty(t, recs)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))
}

// Issue 19, point 1, scenario B: a record of another boot restores
// nothing. After a reboot, iptables-persistent put the routed cluster's
// rules back and the admin's /etc/sysctl.d turned forwarding on: the
// cluster's destroy removes its rules and leaves forwarding on. So does an
// audit record of an older hpcvm, which names no boot.
func TestForwardingRecordOfAnotherBootRestoresNothing(t *testing.T) {
	h := testHost(t)
	bootIn(t, h)
	ctx := context.Background()
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.63.2.0/24"}
	h.bridges(t, a)
	meta := Meta{Cluster: "alpha", RunID: "run-a"}
	_, err := h.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	assert.Equal(t, "boot-1", lastForwarding(t, h).BootID)

	reboot(t, h, "boot-2")
	h.must(t, "sysctl", "-w", ipForwardKey+"=1") // /etc/sysctl.d at boot
	_, err = h.Leave(ctx, meta, false)
	require.NoError(t, err)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S"), chainFrom)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))
	assert.Equal(t, ActionApply, lastForwarding(t, h).Action, "nothing recorded about forwarding: it was not alpha's to touch")

	// An older hpcvm's log: alpha turned it on, no boot ID, no pending.
	h2 := testHost(t)
	bootIn(t, h2)
	h2.bridges(t, a)
	_, err = h2.Join(ctx, meta, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	old := Record{Time: time.Now().UTC(), Host: h2.Name, Netns: h2.Netns, Cluster: "alpha", RunID: "run-old", Action: ActionApply,
		Change: ipForwardWhat, Command: "sysctl -w " + ipForwardKey + "=1", Before: "0", After: "1", Outcome: OutcomeDone}
	require.NoError(t, os.Remove(h2.Audit.Path))
	require.NoError(t, h2.Audit.Append(old))
	_, err = h2.Leave(ctx, meta, false)
	require.NoError(t, err)
	assert.Equal(t, "1", h2.must(t, "sysctl", "-n", ipForwardKey), "a record that names no boot restores nothing")
}

// The cluster that turned forwarding on restores it when it leaves last,
// in the same boot; when it leaves first, it records that it keeps it on
// for the clusters still routed, and that is final.
func TestForwardingIsRestoredOnlyByTheClusterThatTurnedItOn(t *testing.T) {
	h := testHost(t)
	bootIn(t, h)
	ctx := context.Background()
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.63.3.0/24"}
	b := Member{Cluster: "beta", Bridge: "br-beta", Subnet: "10.63.4.0/24"}
	h.bridges(t, a, b)
	_, err := h.Join(ctx, Meta{Cluster: "alpha"}, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	_, err = h.Join(ctx, Meta{Cluster: "beta"}, b, JoinOptions{})
	require.NoError(t, err)
	// beta did not turn it on: its leave does not touch it.
	_, err = h.Leave(ctx, Meta{Cluster: "beta"}, false)
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))
	_, err = h.Leave(ctx, Meta{Cluster: "alpha"}, false)
	require.NoError(t, err)
	assert.Equal(t, "0", h.must(t, "sysctl", "-n", ipForwardKey), "alpha turned it on and left last")

	// Now alpha turns it on and leaves first: kept, for beta; beta's
	// leave does not turn it off either.
	_, err = h.Join(ctx, Meta{Cluster: "alpha"}, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	_, err = h.Join(ctx, Meta{Cluster: "beta"}, b, JoinOptions{})
	require.NoError(t, err)
	recs, err := h.Leave(ctx, Meta{Cluster: "alpha"}, false)
	require.NoError(t, err)
	kept := recs[len(recs)-1]
	assert.Equal(t, OutcomeKept, kept.Outcome)
	assert.Contains(t, kept.Note, "routed cluster(s) beta still need it")
	_, err = h.Leave(ctx, Meta{Cluster: "beta"}, false)
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey))
}

// guest makes a network namespace standing for a guest on m's bridge: a
// veth pair, the host end in the bridge (whose gateway address gw it
// sets), the guest end holding addr with a default route through gw. It
// counts, in its INPUT chain, the UDP packets from each of from.
func (h *Host) guest(t *testing.T, name string, m Member, gw, addr string) string {
	t.Helper()
	ns := h.Netns + "-" + name
	out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	bits := strings.Split(m.Subnet, "/")[1]
	if !strings.Contains(h.must(t, "ip", "-4", "addr", "show", "dev", m.Bridge), gw+"/") {
		h.must(t, "ip", "addr", "add", gw+"/"+bits, "dev", m.Bridge)
		h.must(t, "ip", "link", "set", m.Bridge, "up")
	}
	hostEnd := "v" + name
	h.must(t, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns)
	h.must(t, "ip", "link", "set", hostEnd, "master", m.Bridge, "up")
	in(t, ns, "ip", "addr", "add", addr+"/"+bits, "dev", "eth0")
	in(t, ns, "ip", "link", "set", "eth0", "up")
	in(t, ns, "ip", "link", "set", "lo", "up")
	in(t, ns, "ip", "route", "add", "default", "via", gw)
	return ns
}

func in(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	require.NoError(t, err, "%v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// count makes ns count the UDP packets it receives from src.
func count(t *testing.T, ns, src string) {
	t.Helper()
	in(t, ns, "iptables", "-w", "-A", "INPUT", "-s", src, "-p", "udp", "-m", "comment", "--comment", "from "+src)
}

// received is how many UDP packets from src ns has received.
func received(t *testing.T, ns, src string) int {
	t.Helper()
	for _, l := range strings.Split(in(t, ns, "iptables", "-w", "-L", "INPUT", "-n", "-v", "-x"), "\n") {
		if strings.Contains(l, "/* from "+src+" */") {
			n, err := strconv.Atoi(strings.Fields(l)[0])
			require.NoError(t, err, l)
			return n
		}
	}
	t.Fatalf("no counter for %s in %s", src, ns)
	return 0
}

// send sends one UDP packet from ns to dst; with spoofed set, with that
// source address (the guest's root user adds it and routes dst from it).
func send(t *testing.T, ns, dst, spoofed string) {
	t.Helper()
	if spoofed != "" {
		in(t, ns, "ip", "addr", "add", spoofed+"/32", "dev", "eth0")
		defer in(t, ns, "ip", "addr", "del", spoofed+"/32", "dev", "eth0")
		in(t, ns, "ip", "route", "add", dst+"/32", "dev", "eth0", "via", gatewayOf(t, ns), "src", spoofed)
		defer in(t, ns, "ip", "route", "del", dst+"/32")
	}
	in(t, ns, "bash", "-c", "echo probe > /dev/udp/"+dst+"/9")
}

func gatewayOf(t *testing.T, ns string) string {
	f := strings.Fields(in(t, ns, "ip", "route", "show", "default"))
	require.GreaterOrEqual(t, len(f), 3)
	return f[2]
}

// arrives sends legitimate packets from ns to dst until dst's namespace
// has counted one more from src than before (a deadline, no fixed wait):
// once it has, whatever ns sent to dst before it went through the host.
func arrives(t *testing.T, from, dstNS, dst, src string) {
	t.Helper()
	before := received(t, dstNS, src)
	deadline := time.Now().Add(10 * time.Second)
	for received(t, dstNS, src) == before {
		require.True(t, time.Now().Before(deadline), "no packet from %s reached %s", src, dst)
		send(t, from, dst, "")
	}
}

// libvirtRules are the rules libvirt makes for a NAT network, in short:
// traffic within the bridge passes, replies come in, the network's own
// subnet goes out, the rest is rejected; what leaves the subnet is
// masqueraded.
func (h *Host) libvirtRules(t *testing.T, m Member) {
	t.Helper()
	for _, r := range [][]string{
		{"-A", "FORWARD", "-i", m.Bridge, "-o", m.Bridge, "-j", "ACCEPT"},
		{"-A", "FORWARD", "-o", m.Bridge, "-j", "REJECT"},
		{"-A", "FORWARD", "-i", m.Bridge, "-s", m.Subnet, "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", m.Bridge, "-j", "REJECT"},
	} {
		h.must(t, append([]string{"iptables", "-w"}, r...)...)
	}
	h.must(t, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", m.Subnet, "!", "-d", m.Subnet, "-j", "MASQUERADE")
}

// Issue 19, point 4, with real packets: a guest of a routed cluster
// reaches the guests of another with its own address, not masqueraded;
// with a spoofed source (an address of no cluster, or of a third routed
// cluster) its packets are dropped; a member whose subnet is as wide as
// 10.0.0.0/8 does not stop the masquerading of traffic that leaves the
// host for an address in it.
func TestRoutingDropsSpoofedSourcesAndMasqueradesOffHostTraffic(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	for _, k := range []string{"all", "default"} {
		// The kernel's reverse-path filter would drop some spoofed
		// packets itself: the rules must, with it off.
		h.must(t, "sysctl", "-w", "net.ipv4.conf."+k+".rp_filter=0")
	}
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.64.1.0/24"}
	b := Member{Cluster: "beta", Bridge: "br-beta", Subnet: "10.64.2.0/24"}
	c := Member{Cluster: "gamma", Bridge: "br-gamma", Subnet: "10.64.3.0/24"}
	wide := Member{Cluster: "wide", Bridge: "br-wide", Subnet: "10.0.0.0/8"}
	h.bridges(t, a, b, c, wide)
	h.must(t, "ip", "addr", "add", "10.255.255.1/8", "dev", "br-wide")
	h.must(t, "ip", "link", "set", "br-wide", "up")
	ga := h.guest(t, "a", a, "10.64.1.1", "10.64.1.10")
	gb := h.guest(t, "b", b, "10.64.2.1", "10.64.2.10")
	h.guest(t, "c", c, "10.64.3.1", "10.64.3.10")
	for _, m := range []Member{a, b, c, wide} {
		h.libvirtRules(t, m)
	}
	// Off the host: a machine at 10.200.0.1, behind the host's uplink.
	out := h.Netns + "-out"
	o, err := exec.Command("ip", "netns", "add", out).CombinedOutput()
	require.NoError(t, err, string(o))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", out).Run() })
	h.must(t, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", out)
	h.must(t, "ip", "addr", "add", "10.200.0.254/24", "dev", "uplink")
	h.must(t, "ip", "link", "set", "uplink", "up")
	in(t, out, "ip", "addr", "add", "10.200.0.1/24", "dev", "eth0")
	in(t, out, "ip", "link", "set", "eth0", "up")

	for _, m := range []Member{a, b, c, wide} {
		_, err := h.Join(ctx, Meta{Cluster: m.Cluster}, m, JoinOptions{EnableIPForwarding: true})
		require.NoError(t, err)
	}
	for _, src := range []string{"10.64.1.10", "10.64.2.1", "192.168.77.5", "10.64.3.10"} {
		count(t, gb, src)
	}
	for _, src := range []string{"10.64.1.10", "10.200.0.254"} {
		count(t, out, src)
	}

	// Routed: B sees A's guest's own address.
	arrives(t, ga, gb, "10.64.2.10", "10.64.1.10")
	assert.Zero(t, received(t, gb, "10.64.2.1"), "not masqueraded between routed clusters")

	// Spoofed: dropped, whether the source is nobody's or a third
	// routed cluster's guest.
	for _, spoofed := range []string{"192.168.77.5", "10.64.3.10"} {
		send(t, ga, "10.64.2.10", spoofed)
		arrives(t, ga, gb, "10.64.2.10", "10.64.1.10") // sent after it, arrived
		assert.Zero(t, received(t, gb, spoofed), "a packet from bridge br-alpha with source %s reached beta", spoofed)
	}

	// Off the host, to an address inside the wide member's subnet:
	// masqueraded, as libvirt does for what leaves the network.
	deadline := time.Now().Add(10 * time.Second)
	for received(t, out, "10.200.0.254")+received(t, out, "10.64.1.10") == 0 {
		require.True(t, time.Now().Before(deadline), "nothing from alpha's guest reached 10.200.0.1")
		send(t, ga, "10.200.0.1", "")
	}
	assert.Zero(t, received(t, out, "10.64.1.10"), "alpha's guest's traffic left the host unmasqueraded")
	assert.NotZero(t, received(t, out, "10.200.0.254"))
}

// Rules an older hpcvm made (bridge or subnet alone): a Join of the
// cluster replaces them, Joined says a Join would change something while
// they are there, and a Leave removes them.
func TestRoutingReplacesRulesOfTheOlderForm(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	h.must(t, "sysctl", "-w", ipForwardKey+"=1")
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.65.1.0/24"}
	h.bridges(t, a)
	tag := []string{"-m", "comment", "--comment", tagPrefix + "alpha"}
	for _, table := range []string{"filter", "nat"} {
		h.must(t, "iptables", "-w", "-t", table, "-N", chainTo)
		h.must(t, "iptables", "-w", "-t", table, "-N", chainFrom)
	}
	h.must(t, "iptables", "-w", "-I", "FORWARD", "1", "-j", chainFrom)
	h.must(t, "iptables", "-w", "-t", "nat", "-I", "POSTROUTING", "1", "-j", chainFrom)
	old := [][]string{
		{"-t", "filter", "-A", chainFrom, "-i", "br-alpha"},
		{"-t", "filter", "-A", chainTo, "-o", "br-alpha"},
		{"-t", "nat", "-A", chainFrom, "-s", "10.65.1.0/24"},
		{"-t", "nat", "-A", chainTo, "-d", "10.65.1.0/24"},
	}
	targets := []string{chainTo, "ACCEPT", chainTo, "ACCEPT"}
	for i, r := range old {
		h.must(t, append(append(append([]string{"iptables", "-w"}, r...), tag...), "-j", targets[i])...)
	}
	members, err := h.Members(ctx)
	require.NoError(t, err)
	assert.Equal(t, []Member{a}, members, "old rules name the member too")
	joined, err := h.Joined(ctx, a)
	require.NoError(t, err)
	assert.False(t, joined, "a Join would replace the old rules")

	recs, err := h.Join(ctx, Meta{Cluster: "alpha"}, a, JoinOptions{})
	require.NoError(t, err)
	replaced := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Change, "replace ") {
			replaced++
		}
	}
	assert.Equal(t, 3, replaced, "the old nat rule of the source subnet is the current one")
	filter := h.must(t, "iptables", "-w", "-S")
	assert.NotContains(t, filter, "-A "+chainFrom+" -i br-alpha -m comment")
	assert.Contains(t, filter, "-A "+chainFrom+" -s 10.65.1.0/24 -i br-alpha -m comment")
	assert.Contains(t, filter, "-A "+chainFrom+" ! -s 10.65.1.0/24 -i br-alpha -m comment")
	assert.NotContains(t, h.must(t, "iptables", "-w", "-t", "nat", "-S"), "-A "+chainTo+" -d 10.65.1.0/24 -m comment")
	joined, err = h.Joined(ctx, a)
	require.NoError(t, err)
	assert.True(t, joined)
	again, err := h.Join(ctx, Meta{Cluster: "alpha"}, a, JoinOptions{})
	require.NoError(t, err)
	for _, r := range again {
		assert.Equal(t, OutcomeUnchanged, r.Outcome, r.Change)
	}

	// A Leave takes rules of either form: put an old one back.
	h.must(t, append(append(append([]string{"iptables", "-w"}, old[0]...), tag...), "-j", targets[0])...)
	_, err = h.Leave(ctx, Meta{Cluster: "alpha"}, false)
	require.NoError(t, err)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-S"), chainFrom)
	assert.NotContains(t, h.must(t, "iptables", "-w", "-t", "nat", "-S"), chainFrom)
}

// Issue 19, point 7: the routing checks do not take a held xtables lock
// (iptables-legacy's status 4, "Another app is currently holding the
// xtables lock") for "not there" or "in place".
func TestRoutingChecksFailClosedWhenTheXtablesLockIsHeld(t *testing.T) {
	h := testHost(t)
	ctx := context.Background()
	h.must(t, "sysctl", "-w", ipForwardKey+"=1")
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.66.1.0/24"}
	h.bridges(t, a)
	_, err := h.Join(ctx, Meta{Cluster: "alpha"}, a, JoinOptions{})
	require.NoError(t, err)

	lockHeld(t)
	joined, err := h.Joined(ctx, a)
	assert.False(t, joined)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "xtables lock")
	_, err = h.Members(ctx)
	require.Error(t, err)
	ok, err := h.hasRule(ctx, memberRules(a)[0])
	assert.False(t, ok)
	require.Error(t, err, "cannot tell is not absent: a Join would add a second copy")
}

// lockHeld puts an iptables in front of the real one that answers as
// iptables-legacy does when another program holds the xtables lock longer
// than it waits.
func lockHeld(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "iptables"), []byte("#!/bin/sh\necho 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' >&2\nexit 4\n"), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// unwritableAudit is an audit log no one can append to, root included:
// its directory is a regular file.
func unwritableAudit(t *testing.T) *Audit {
	t.Helper()
	notDir := filepath.Join(t.TempDir(), "not-a-directory")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	a := &Audit{Path: filepath.Join(notDir, "audit.jsonl")}
	require.Error(t, a.Append(Record{}), "the stand-in for a full disk must really fail")
	return a
}

// Issue 19, point 5: no host change is made that cannot be recorded first.
func TestNoHostChangeWithoutItsRecordFirst(t *testing.T) {
	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads")
	h := &Host{Name: "testhost", Audit: unwritableAudit(t), LockPath: filepath.Join(dir, "lock"),
		ResolverReload: []string{"sh", "-c", "echo reload >> " + reloads}}
	ctx := context.Background()
	entry, err := ResolverEntry("lab", "lab.local", "10.9.0.1")
	require.NoError(t, err)
	path := ResolverFile(dir, "lab")
	_, err = h.WriteResolver(ctx, Meta{Cluster: "lab"}, path, entry)
	var auditErr *AuditError
	require.ErrorAs(t, err, &auditErr)
	assert.Contains(t, err.Error(), "the audit log "+h.Audit.Path+" cannot be written")
	assert.Contains(t, err.Error(), "did not make the change")
	assert.Contains(t, err.Error(), "repair the log")
	assert.NoFileExists(t, path, "the drop-in is not written")
	assert.NoFileExists(t, reloads, "nothing reloaded")

	doc, err := RegistryDocument("lab", []Node{{VM: "controller-01", Role: "controller", Address: "10.9.0.10"}})
	require.NoError(t, err)
	_, err = h.WriteRecord(ctx, Meta{Cluster: "lab"}, DiscoveryFile(dir, "lab"), doc)
	require.ErrorAs(t, err, &auditErr)
	assert.NoFileExists(t, DiscoveryFile(dir, "lab"))

	// Routing: forwarding stays off, no chain is made.
	r := testHost(t)
	r.Audit = unwritableAudit(t)
	m := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.67.1.0/24"}
	r.bridges(t, m)
	_, err = r.Join(ctx, Meta{Cluster: "alpha"}, m, JoinOptions{EnableIPForwarding: true})
	require.ErrorAs(t, err, &auditErr)
	assert.Equal(t, "0", r.must(t, "sysctl", "-n", ipForwardKey))
	assert.NotContains(t, r.must(t, "iptables", "-w", "-S"), chainFrom)
}

// A drop-in and a registry file whose records were lost (the log replaced
// since) are still found by their mark: a rollback removes the one it
// names, a destroy the ones in the directories it is given. A file of the
// name without the mark stays.
func TestMarkedFilesAreRemovedWithoutTheirRecords(t *testing.T) {
	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads")
	h := &Host{Name: "testhost", Audit: &Audit{Path: filepath.Join(dir, "audit.jsonl")}, LockPath: filepath.Join(dir, "lock"),
		ResolverReload: []string{"sh", "-c", "echo reload >> " + reloads}}
	ctx := context.Background()
	entry, err := ResolverEntry("lab", "lab.local", "10.9.0.1")
	require.NoError(t, err)
	rollback, destroy := filepath.Join(dir, "rollback"), filepath.Join(dir, "destroy")
	require.NoError(t, os.Mkdir(rollback, 0o755))
	require.NoError(t, os.Mkdir(destroy, 0o755))
	for _, d := range []string{rollback, destroy} {
		_, err = h.WriteResolver(ctx, Meta{Cluster: "lab"}, ResolverFile(d, "lab"), entry)
		require.NoError(t, err)
	}
	doc, err := RegistryDocument("lab", []Node{{VM: "controller-01", Role: "controller", Address: "10.9.0.10"}})
	require.NoError(t, err)
	_, err = h.WriteRecord(ctx, Meta{Cluster: "lab"}, DiscoveryFile(destroy, "lab"), doc)
	require.NoError(t, err)
	foreign := ResolverFile(destroy, "web")
	require.NoError(t, os.WriteFile(foreign, []byte("server=/web.local/10.1.1.1\n"), 0o644))
	require.NoError(t, os.Remove(h.Audit.Path)) // the records are lost

	recs, err := h.RemoveResolver(ctx, Meta{Cluster: "lab"}, ResolverFile(rollback, "lab"), nil)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.NoFileExists(t, ResolverFile(rollback, "lab"))
	assert.FileExists(t, ResolverFile(destroy, "lab"), "a rollback removes what it names, nothing else")

	_, err = h.RemoveResolver(ctx, Meta{Cluster: "lab"}, "", []string{destroy})
	require.NoError(t, err)
	assert.NoFileExists(t, ResolverFile(destroy, "lab"))
	_, err = h.RemoveRecord(ctx, Meta{Cluster: "lab"}, "", []string{destroy})
	require.NoError(t, err)
	assert.NoFileExists(t, DiscoveryFile(destroy, "lab"))
	recs, err = h.RemoveResolver(ctx, Meta{Cluster: "web"}, "", []string{destroy, filepath.Join(dir, "no-such-root")})
	require.NoError(t, err)
	assert.Empty(t, recs)
	assert.FileExists(t, foreign, "not marked as hpcvm's: left alone, no error")
	assert.Equal(t, "reload\nreload\nreload\nreload\n", readString(t, reloads))
}

// Issue 19, point 5: a worker that stopped between writing the drop-in and
// reloading the resolver. The retried step finds the file as it should be
// and still reloads; so does one after a reload whose outcome was never
// recorded; a step after a reload done does not.
func TestResolverReloadsAfterACrashBetweenWriteAndReload(t *testing.T) {
	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads")
	h := &Host{Name: "testhost", Audit: &Audit{Path: filepath.Join(dir, "audit.jsonl")}, LockPath: filepath.Join(dir, "lock"),
		ResolverReload: []string{"sh", "-c", "echo reload >> " + reloads}}
	ctx := context.Background()
	meta := Meta{Cluster: "lab", RunID: "run-1"}
	entry, err := ResolverEntry("lab", "lab.local", "10.9.0.1")
	require.NoError(t, err)
	path := ResolverFile(dir, "lab")

	// The first try writes, and the worker dies before the reload.
	j := h.newJournal(meta, ActionApply)
	_, changed, err := resolverFile.write(&j, path, entry)
	require.NoError(t, err)
	require.True(t, changed)
	assert.NoFileExists(t, reloads)

	recs, err := h.WriteResolver(ctx, meta, path, entry)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, OutcomeUnchanged, recs[0].Outcome)
	assert.Equal(t, reloadWhat, recs[1].Change)
	assert.Equal(t, OutcomeDone, recs[1].Outcome)
	assert.Equal(t, "reload\n", readString(t, reloads))

	// Reloaded: the next try changes nothing.
	recs, err = h.WriteResolver(ctx, meta, path, entry)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "reload\n", readString(t, reloads))

	// A reload begun and never recorded done (the worker died in it), after
	// a write: the next try reloads again.
	changedEntry, err := ResolverEntry("lab", "lab.local", "10.9.0.2")
	require.NoError(t, err)
	j = h.newJournal(meta, ActionApply)
	_, _, err = resolverFile.write(&j, path, changedEntry)
	require.NoError(t, err)
	require.NoError(t, h.Audit.Append(Record{Cluster: "lab", Action: ActionApply, Change: reloadWhat, ID: "died-in-reload", Outcome: OutcomePending}))
	_, err = h.WriteResolver(ctx, meta, path, changedEntry)
	require.NoError(t, err)
	assert.Equal(t, "reload\nreload\n", readString(t, reloads))

	// The same on a destroy: the removal recorded, the reload lost.
	j = h.newJournal(Meta{Cluster: "lab"}, ActionRevert)
	removed, err := resolverFile.remove(&j, path, false)
	require.NoError(t, err)
	require.True(t, removed)
	_, err = h.RemoveResolver(ctx, Meta{Cluster: "lab"}, "", nil)
	require.NoError(t, err)
	assert.Equal(t, "reload\nreload\nreload\n", readString(t, reloads))
	recs, err = h.RemoveResolver(ctx, Meta{Cluster: "lab"}, "", nil)
	require.NoError(t, err)
	assert.Empty(t, recs, "nothing owed any more")
}

// Every change is in the log twice: pending before, its outcome after,
// tied by an ID and naming the boot; the settled log shows each once.
func TestChangesAreRecordedWriteAhead(t *testing.T) {
	dir := t.TempDir()
	h := &Host{Name: "testhost", Audit: &Audit{Path: filepath.Join(dir, "audit.jsonl")}, LockPath: filepath.Join(dir, "lock")}
	bootIn(t, h)
	doc, err := RegistryDocument("lab", []Node{{VM: "controller-01", Role: "controller", Address: "10.9.0.10"}})
	require.NoError(t, err)
	path := DiscoveryFile(dir, "lab")
	_, err = h.WriteRecord(context.Background(), Meta{Cluster: "lab"}, path, doc)
	require.NoError(t, err)
	all, _, err := h.Audit.Read(nil)
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, OutcomePending, all[0].Outcome)
	assert.Equal(t, "write "+path, all[0].Command)
	assert.Equal(t, "absent", all[0].Before)
	assert.Equal(t, digest(doc), all[0].After)
	assert.Equal(t, OutcomeDone, all[1].Outcome)
	assert.Equal(t, all[0].ID, all[1].ID)
	assert.NotEmpty(t, all[0].ID)
	assert.Equal(t, "boot-1", all[1].BootID)
	settled, _, err := h.Audit.ReadSettled(nil)
	require.NoError(t, err)
	require.Len(t, settled, 1)
	assert.Equal(t, OutcomeDone, settled[0].Outcome)

	// A pending record without outcome: the file may have been written.
	// A destroy finds it by that record, and removes it (it is marked).
	require.NoError(t, os.Remove(h.Audit.Path))
	require.NoError(t, h.Audit.Append(Record{Cluster: "lab", Action: ActionApply, Change: registryFile.change("lab", path), Command: "write " + path, ID: "x", Outcome: OutcomePending}))
	recs, err := h.RemoveRecord(context.Background(), Meta{Cluster: "lab"}, "", nil)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.NoFileExists(t, path)
}

// Forwarding that something else on the host relies on (rules in FORWARD
// that neither libvirt nor hpcvm made: Docker's, Kubernetes', a VPN's) is
// kept when the cluster that turned it on leaves.
func TestForwardingIsKeptForRulesNeitherLibvirtNorHpcvmMade(t *testing.T) {
	h := testHost(t)
	bootIn(t, h)
	ctx := context.Background()
	a := Member{Cluster: "alpha", Bridge: "br-alpha", Subnet: "10.63.5.0/24"}
	h.bridges(t, a)
	_, err := h.Join(ctx, Meta{Cluster: "alpha"}, a, JoinOptions{EnableIPForwarding: true})
	require.NoError(t, err)
	h.must(t, "iptables", "-w", "-N", "DOCKER-USER")
	h.must(t, "iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-USER")
	recs, err := h.Leave(ctx, Meta{Cluster: "alpha"}, false)
	require.NoError(t, err)
	assert.Equal(t, "1", h.must(t, "sysctl", "-n", ipForwardKey), "Docker's containers still need it")
	kept := recs[len(recs)-1]
	assert.Equal(t, OutcomeKept, kept.Outcome)
	assert.Contains(t, kept.Note, "FORWARD holds rules neither libvirt nor hpcvm made (-j DOCKER-USER")
}

func TestSetsForwardingReadsSysctlFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"on.conf":      "# routing\nnet.ipv4.ip_forward = 1\n",
		"slashes.conf": "-net/ipv4/ip_forward=1\n",
		"off.conf":     "net.ipv4.ip_forward=0\n#net.ipv4.ip_forward=1\n",
		"other.conf":   "net.ipv4.ip_forward_use_pmtu = 1\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	assert.True(t, setsForwarding(filepath.Join(dir, "on.conf")))
	assert.True(t, setsForwarding(filepath.Join(dir, "slashes.conf")))
	assert.False(t, setsForwarding(filepath.Join(dir, "off.conf")))
	assert.False(t, setsForwarding(filepath.Join(dir, "other.conf")))
	assert.False(t, setsForwarding(filepath.Join(dir, "missing.conf")))
}
