package hostchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cross-cluster routing (dns_mode routed) lets the guests of every routed
// cluster on a host reach each other's networks, and no one else's:
//
//   - net.ipv4.ip_forward is 1 (libvirt sets it for its NAT networks; hpcvm
//     turns it on only if it is off and the file allows it);
//   - filter: FORWARD's first rule jumps to HPCVM_ROUTED, which sends what
//     comes in from a member's bridge with a source in that member's
//     subnet to HPCVM_ROUTED_TO, which accepts it when it goes out to a
//     member's bridge with a destination in that member's subnet. What
//     comes in from a member's bridge with any other source is dropped
//     (a guest's root user cannot spoof its way into another cluster, nor
//     out of the host). These run before libvirt's LIBVIRT_FWI/FWO, which
//     reject traffic between its networks;
//   - nat: POSTROUTING's first rule jumps to HPCVM_ROUTED, which accepts
//     (ends NAT for) traffic from a member's subnet that goes out to a
//     member's bridge and subnet, before libvirt's LIBVIRT_PRT would
//     masquerade it: a guest sees the real address of the other cluster's
//     guest. Tied to the bridge, a member's subnet never turns
//     masquerading off for traffic that leaves the host, however wide it
//     is.
//
// A member is five rules (three filter, two nat), each tagged with a
// comment naming its cluster ("hpcvm-routed:<cluster>"): what a cluster
// owns on the host is proved by that tag, and a destroy removes exactly
// those rules, whatever hpcvm version made them. N members make 5N rules,
// not a rule per pair.

const (
	chainFrom     = "HPCVM_ROUTED"
	chainTo       = "HPCVM_ROUTED_TO"
	tagPrefix     = "hpcvm-routed:"
	ipForwardKey  = "net.ipv4.ip_forward"
	ipForwardWhat = "IP forwarding (sysctl " + ipForwardKey + ")"
)

// Host makes the changes on one hypervisor host and records them.
type Host struct {
	// Name is the host's name as clusters give it (cluster.host).
	Name string
	// Netns is the network namespace the hypervisor's bridges live in,
	// when it is not the worker's own (a test libvirtd in its namespace):
	// every command then runs there, never in the worker's.
	Netns string
	Audit *Audit
	// LockPath is the file that serialises host changes across processes
	// (DefaultLockPath if empty): two routed clusters starting at once
	// must not both insert the jump that one alone should, nor may one
	// remove the chains another is about to fill.
	LockPath string
	// ResolverReload is the command that makes the host's resolver read
	// its drop-ins again (host DNS integration), argv form.
	ResolverReload []string
	// BootIDPath is where the kernel's boot ID is read (DefaultBootIDPath
	// if empty): IP forwarding is restored only by a record of this boot.
	BootIDPath string
	mu         sync.Mutex
}

// DefaultBootIDPath is the kernel's boot ID, new at every boot.
const DefaultBootIDPath = "/proc/sys/kernel/random/boot_id"

// bootID is the kernel's boot ID, or "" when it cannot be read (then no
// record counts as this boot's).
func (h *Host) bootID() string {
	path := h.BootIDPath
	if path == "" {
		path = DefaultBootIDPath
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// DefaultLockPath is the machine-wide lock of hpcvm's host changes, in a
// directory only root may write.
const DefaultLockPath = "/run/hpcvm/host-changes.lock"

// lock takes the host-change lock of this process and of the machine,
// giving up when ctx ends (a cancelled step does not wait on it).
func (h *Host) lock(ctx context.Context) (unlock func(), err error) {
	h.mu.Lock()
	path := h.LockPath
	if path == "" {
		path = DefaultLockPath
	}
	fail := func(err error) (func(), error) {
		h.mu.Unlock()
		return nil, fmt.Errorf("host change lock %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fail(err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return fail(err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return fail(fmt.Errorf("another hpcvm process holds it: %w", ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		h.mu.Unlock()
	}, nil
}

// Meta says who asked for a change, for which cluster, in which run.
type Meta struct {
	Cluster     string
	RequestedBy string
	WorkflowID  string
	RunID       string
}

// Member is a routed cluster's network on the host.
type Member struct {
	Cluster string `json:"cluster"`
	Bridge  string `json:"bridge"`
	Subnet  string `json:"subnet"` // CIDR
}

// JoinOptions are what host_configuration allows for routing.
type JoinOptions struct {
	// EnableIPForwarding lets hpcvm turn IP forwarding on when it is off
	// (cross_cluster_routing.enable_ip_forwarding); without it an off
	// forwarding fails the step with what to do.
	EnableIPForwarding bool
}

// rule is one iptables rule: its table, chain and the rest of its spec.
type rule struct {
	table, chain string
	spec         []string
}

func (r rule) args(op string) []string {
	return append([]string{"-w", "-t", r.table, op, r.chain}, r.spec...)
}

// memberRules are m's rules, each spec in the order `iptables -S` prints
// it (addresses, interfaces, matches, target), so a rule listed by the
// host compares equal to the one hpcvm would make.
func memberRules(m Member) []rule {
	tag := []string{"-m", "comment", "--comment", tagPrefix + m.Cluster}
	with := func(table, chain string, match []string, target string) rule {
		spec := append(append(append([]string{}, match...), tag...), "-j", target)
		return rule{table, chain, spec}
	}
	subnet := canonicalSubnet(m.Subnet)
	return []rule{
		with("filter", chainFrom, []string{"-s", subnet, "-i", m.Bridge}, chainTo),
		with("filter", chainFrom, []string{"!", "-s", subnet, "-i", m.Bridge}, "DROP"),
		with("filter", chainTo, []string{"-d", subnet, "-o", m.Bridge}, "ACCEPT"),
		with("nat", chainFrom, []string{"-s", subnet}, chainTo),
		with("nat", chainTo, []string{"-d", subnet, "-o", m.Bridge}, "ACCEPT"),
	}
}

// canonicalSubnet is the subnet as iptables prints it: 10.0.0.5/24 is
// listed as 10.0.0.0/24. What cannot be parsed is left for iptables to
// refuse.
func canonicalSubnet(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return s
	}
	return p.Masked().String()
}

// ruleWhat says what a member rule does, for the audit log. It reads rules
// of the current form and of the older one (bridge or subnet alone).
func ruleWhat(r rule, cluster string) string {
	bridgeIn, bridgeOut := valueOf(r.spec, "-i"), valueOf(r.spec, "-o")
	src, dst := valueOf(r.spec, "-s"), valueOf(r.spec, "-d")
	negated := len(r.spec) > 0 && r.spec[0] == "!"
	switch {
	case r.table == "filter" && r.chain == chainFrom && negated:
		return fmt.Sprintf("filter rule of cluster %s: traffic from bridge %s with a source outside %s is dropped (anti-spoofing)", cluster, bridgeIn, src)
	case r.table == "filter" && r.chain == chainFrom && src != "":
		return fmt.Sprintf("filter rule of cluster %s: traffic from %s on bridge %s may go to a routed cluster", cluster, src, bridgeIn)
	case r.table == "filter" && r.chain == chainFrom:
		return fmt.Sprintf("filter rule of cluster %s: traffic from bridge %s may go to a routed cluster", cluster, bridgeIn)
	case r.table == "filter" && dst != "":
		return fmt.Sprintf("filter rule of cluster %s: traffic of routed clusters may go to %s on bridge %s", cluster, dst, bridgeOut)
	case r.table == "filter":
		return fmt.Sprintf("filter rule of cluster %s: traffic of routed clusters may go to bridge %s", cluster, bridgeOut)
	case r.chain == chainFrom:
		return fmt.Sprintf("nat rule of cluster %s: traffic from %s to a routed cluster is not masqueraded", cluster, src)
	case bridgeOut != "":
		return fmt.Sprintf("nat rule of cluster %s: traffic of routed clusters to %s on bridge %s is not masqueraded", cluster, dst, bridgeOut)
	default:
		return fmt.Sprintf("nat rule of cluster %s: traffic of routed clusters to %s is not masqueraded", cluster, dst)
	}
}

// hooks are the built-in chains that jump to HPCVM_ROUTED, first.
var hooks = []rule{
	{"filter", "FORWARD", []string{"-j", chainFrom}},
	{"nat", "POSTROUTING", []string{"-j", chainFrom}},
}

// Join makes m a member of the host's routed clusters. Every change is
// recorded; what was already in place is recorded as unchanged. It is
// idempotent: a retried step finds its rules and changes nothing. Rules
// of m in another form (made by an older hpcvm, or for another bridge or
// subnet) are replaced by the current ones.
func (h *Host) Join(ctx context.Context, meta Meta, m Member, o JoinOptions) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionApply)
	if err := h.needTools("iptables", "sysctl", "ip"); err != nil {
		return nil, err
	}
	if _, err := netip.ParsePrefix(m.Subnet); err != nil {
		return nil, &RefusedError{fmt.Sprintf("subnet %q of cluster %s is not an IPv4 CIDR (%v): routing rules match it", m.Subnet, m.Cluster, err)}
	}

	// The rules name the bridge: it must be where they are made. A worker
	// in another network namespace than libvirtd's would change a host
	// that has no such bridge.
	if _, err := h.output(ctx, "ip", "link", "show", "dev", m.Bridge); err != nil {
		where := "the worker's own network namespace"
		if h.Netns != "" {
			where = "network namespace " + h.Netns
		}
		return nil, &RefusedError{fmt.Sprintf("bridge %s of cluster %s is not in %s, where hpcvm would make its routing rules: libvirtd runs its networks elsewhere; start hpcvm-worker with --netns naming libvirtd's namespace (%v)", m.Bridge, m.Cluster, where, err)}
	}
	if err := h.refuseOtherFirewalls(ctx); err != nil {
		return nil, err
	}
	before, err := h.output(ctx, "sysctl", "-n", ipForwardKey)
	if err != nil {
		return j.recs, fmt.Errorf("reading %s: %w", ipForwardKey, err)
	}
	switch {
	case before == "1":
		j.add(Record{Change: ipForwardWhat, Before: "1", After: "1", Outcome: OutcomeUnchanged})
	case !o.EnableIPForwarding:
		return j.recs, &RefusedError{fmt.Sprintf("%s is %s on host %s and host_configuration.network.cross_cluster_routing.enable_ip_forwarding is false, so hpcvm may not turn it on: run `sudo sysctl -w %s=1` (in the hypervisor's network namespace) and start again, or allow it", ipForwardKey, before, h.Name, ipForwardKey)}
	default:
		if err := j.run(ctx, Record{Change: ipForwardWhat, Before: before, After: "1"}, "sysctl", "-w", ipForwardKey+"=1"); err != nil {
			return j.recs, err
		}
	}

	for _, table := range []string{"filter", "nat"} {
		// HPCVM_ROUTED jumps to HPCVM_ROUTED_TO: that one first.
		for _, chain := range []string{chainTo, chainFrom} {
			if err := h.ensureChain(ctx, &j, table, chain); err != nil {
				return j.recs, err
			}
		}
	}
	for _, hook := range hooks {
		if err := h.ensureRule(ctx, &j, hook, "the jump from "+hook.table+" "+hook.chain+" to "+chainFrom+", first", true); err != nil {
			return j.recs, err
		}
	}
	for _, r := range memberRules(m) {
		if err := h.ensureRule(ctx, &j, r, ruleWhat(r, m.Cluster), false); err != nil {
			return j.recs, err
		}
	}
	// The current rules are in place: older ones of the cluster go.
	stale, err := h.staleRules(ctx, m)
	if err != nil {
		return j.recs, err
	}
	for _, s := range stale {
		if err := j.run(ctx, Record{Change: "replace " + ruleWhat(s.rule, m.Cluster) + " (an older form of the cluster's rules)", Before: "present", After: "absent"},
			"iptables", "-w", "-t", s.table, "-D", s.chain, strconv.Itoa(s.n)); err != nil {
			return j.recs, err
		}
	}
	// What was made is checked, not assumed.
	for _, r := range append(append([]rule{}, hooks...), memberRules(m)...) {
		if ok, err := h.hasRule(ctx, r); err != nil || !ok {
			if err == nil {
				err = errors.New("not found")
			}
			return j.recs, fmt.Errorf("after adding it, iptables does not find %s: %w", strings.Join(r.args("-A")[1:], " "), err)
		}
	}
	return j.recs, nil
}

// numberedRule is a rule where `iptables -S` lists it: n counts from 1 in
// its chain.
type numberedRule struct {
	rule
	n int
}

// staleRules are the rules tagged with m's cluster that are not its current
// ones, from the last of each chain to the first, so that deleting them by
// number in that order deletes each one.
func (h *Host) staleRules(ctx context.Context, m Member) ([]numberedRule, error) {
	want := map[string]bool{}
	for _, r := range memberRules(m) {
		want[r.table+" "+r.chain+" "+strings.Join(r.spec, " ")] = true
	}
	tag := tagPrefix + m.Cluster
	var out []numberedRule
	for _, table := range []string{"filter", "nat"} {
		for _, chain := range []string{chainFrom, chainTo} {
			lines, _, err := h.listChain(ctx, table, chain)
			if err != nil {
				return nil, err
			}
			for n := len(lines); n >= 1; n-- {
				f := fields(lines[n-1])
				if !hasTag(f, tag) || want[table+" "+chain+" "+strings.Join(f[2:], " ")] {
					continue
				}
				out = append(out, numberedRule{rule{table, chain, f[2:]}, n})
			}
		}
	}
	return out, nil
}

// Joined says whether a Join of m would change nothing on the host: IP
// forwarding on, hpcvm's jumps in place and first, m's rules present and
// no older form of them. It changes nothing, and takes no lock: a start
// asks it before a person is asked to confirm the join. What it cannot
// read (a held xtables lock, a failing iptables) is an error, never a yes.
func (h *Host) Joined(ctx context.Context, m Member) (bool, error) {
	if !h.hasTool("iptables") || !h.hasTool("sysctl") {
		return false, nil
	}
	v, err := h.output(ctx, "sysctl", "-n", ipForwardKey)
	if err != nil || v != "1" {
		return false, err
	}
	for _, hook := range hooks {
		lines, _, err := h.listChain(ctx, hook.table, hook.chain)
		if err != nil {
			return false, err
		}
		if len(lines) == 0 || strings.Join(fields(lines[0])[2:], " ") != strings.Join(hook.spec, " ") {
			return false, nil
		}
	}
	for _, r := range memberRules(m) {
		if ok, err := h.hasRule(ctx, r); err != nil || !ok {
			return false, err
		}
	}
	stale, err := h.staleRules(ctx, m)
	if err != nil {
		return false, err
	}
	return len(stale) == 0, nil
}

// Leave removes the cluster's routing rules (found by their tag, whatever
// the file says now, in any form an hpcvm made them), and the chains and
// jumps once no member is left. A retried Leave finishes what an
// interrupted one began: it decides from what the host and the audit log
// say now, not from what it removed itself.
//
// IP forwarding is the cluster's to restore only if the audit log's last
// change to it in this namespace is the cluster's own turning it on, in
// this boot (restoreIPForward). Every other Leave, a cluster that never
// routed or does not exist among them, neither reads nor writes it.
func (h *Host) Leave(ctx context.Context, meta Meta, othersForward bool) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionRevert)
	if !h.hasTool("iptables") {
		return nil, nil // no iptables: no rules of ours either
	}
	if err := h.sameNamespaceAsJoin(meta.Cluster); err != nil {
		return nil, err
	}
	// The common case, a host without routed clusters: two reads.
	any := false
	for _, table := range []string{"filter", "nat"} {
		out, err := h.output(ctx, "iptables", "-w", "-t", table, "-S")
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(out, "\n") {
			any = any || l == "-N "+chainFrom || l == "-N "+chainTo
		}
	}
	if !any {
		return j.recs, h.restoreIPForward(ctx, &j, nil, othersForward)
	}
	tag := tagPrefix + meta.Cluster
	for _, table := range []string{"filter", "nat"} {
		for _, chain := range []string{chainFrom, chainTo} {
			lines, exists, err := h.listChain(ctx, table, chain)
			if err != nil {
				return j.recs, err
			}
			if !exists {
				continue
			}
			// By number, from the last: a rule's position is what
			// iptables -S lists, whatever its text.
			for n := len(lines); n >= 1; n-- {
				f := fields(lines[n-1])
				if !hasTag(f, tag) {
					continue
				}
				r := rule{table, chain, f[2:]}
				if err := j.run(ctx, Record{Change: "remove " + ruleWhat(r, meta.Cluster), Before: "present", After: "absent"},
					"iptables", "-w", "-t", table, "-D", chain, strconv.Itoa(n)); err != nil {
					return j.recs, err
				}
			}
		}
	}
	left, err := h.Members(ctx)
	if err != nil {
		return j.recs, err
	}
	if len(left) > 0 {
		return j.recs, h.restoreIPForward(ctx, &j, left, othersForward)
	}
	// No member left. Chains holding rules hpcvm did not tag (added by
	// hand) stay, and so do the jumps to them: removing the jump would
	// silently turn those rules off.
	for _, table := range []string{"filter", "nat"} {
		for _, chain := range []string{chainFrom, chainTo} {
			if lines, _, err := h.listChain(ctx, table, chain); err != nil {
				return j.recs, err
			} else if len(lines) > 0 {
				j.add(Record{Change: "chain " + table + " " + chain, Before: "present", After: "present", Outcome: OutcomeKept,
					Note: fmt.Sprintf("no routed cluster is left, but it holds %d rule(s) hpcvm did not make; remove them, and the chains, by hand", len(lines))})
				return j.recs, nil
			}
		}
	}
	for _, hook := range hooks {
		if ok, err := h.hasRule(ctx, hook); err != nil {
			return j.recs, err
		} else if ok {
			if err := j.run(ctx, Record{Change: "remove the jump from " + hook.table + " " + hook.chain + " to " + chainFrom + " (no routed cluster left)", Before: "present", After: "absent"}, "iptables", hook.args("-D")...); err != nil {
				return j.recs, err
			}
		}
	}
	for _, table := range []string{"filter", "nat"} {
		// HPCVM_ROUTED refers to HPCVM_ROUTED_TO: that one last.
		for _, chain := range []string{chainFrom, chainTo} {
			if _, exists, err := h.listChain(ctx, table, chain); err != nil || !exists {
				continue
			}
			if err := j.run(ctx, Record{Change: "remove chain " + table + " " + chain + " (no routed cluster left)", Before: "present", After: "absent"}, "iptables", "-w", "-t", table, "-X", chain); err != nil {
				return j.recs, err
			}
		}
	}
	return j.recs, h.restoreIPForward(ctx, &j, nil, othersForward)
}

// EverRouted says whether hpcvm made (or may have made: an outcome never
// recorded) a routing rule of the cluster on this host, by its audit log:
// a cluster that never did cannot be a routed member. A log that cannot
// be read answers true (fail closed).
func (h *Host) EverRouted(cluster string) (bool, error) {
	if h.Audit == nil {
		return true, errors.New("no audit log")
	}
	recs, _, err := h.Audit.ReadSettled(func(r Record) bool {
		return r.Cluster == cluster && r.Action == ActionApply && (r.Outcome == OutcomeDone || r.Unsure()) &&
			strings.HasPrefix(r.Command, "iptables ") && strings.Contains(r.Command, tagPrefix+cluster)
	})
	if err != nil {
		return true, err
	}
	return len(recs) > 0, nil
}

// sameNamespaceAsJoin refuses to leave from another network namespace
// than the one the cluster's rules were made in: a worker started without
// --netns would find none and report them gone.
func (h *Host) sameNamespaceAsJoin(cluster string) error {
	recs, _, err := h.Audit.ReadSettled(func(r Record) bool {
		return r.Cluster == cluster && (r.Outcome == OutcomeDone || r.Unsure()) && strings.HasPrefix(r.Command, "iptables ") && strings.Contains(r.Command, tagPrefix+cluster)
	})
	if err != nil || len(recs) == 0 {
		return err
	}
	last := recs[len(recs)-1]
	if last.Action == ActionApply && last.Netns != h.Netns {
		where := func(ns string) string {
			if ns == "" {
				return "the worker's own network namespace"
			}
			return "network namespace " + ns
		}
		return &RefusedError{fmt.Sprintf("cluster %s's routing rules were made in %s (run %s), but this worker makes its changes in %s: start hpcvm-worker with --netns %s to remove them",
			cluster, where(last.Netns), last.RunID, where(h.Netns), last.Netns)}
	}
	return nil
}

// forwardingChange is the change to IP forwarding that the cluster may
// still have to undo: the last change recorded to it in this namespace,
// if it is the cluster's own, in this boot, and either its turning it on
// (done, or pending: possibly made) or its turning it back that was
// interrupted (pending). Anything else (another cluster's, a kept, an
// earlier boot's, a record of an hpcvm that wrote no boot ID) leaves
// forwarding to whoever set it last.
func (h *Host) forwardingChange(cluster, boot string) (*Record, error) {
	recs, _, err := h.Audit.ReadSettled(func(r Record) bool {
		return r.Change == ipForwardWhat && r.Netns == h.Netns
	})
	if err != nil {
		return nil, err
	}
	var last *Record
	for i := range recs {
		switch recs[i].Outcome {
		case OutcomeDone, OutcomePending, OutcomeKept:
			last = &recs[i]
		}
	}
	switch {
	case last == nil, last.Cluster != cluster, boot == "", last.BootID != boot:
		return nil, nil
	case last.Action == ActionApply && last.Outcome != OutcomeKept:
		return last, nil
	case last.Action == ActionRevert && last.Outcome == OutcomePending:
		return last, nil
	}
	return nil, nil
}

// restoreIPForward turns IP forwarding back to what it was before the
// cluster turned it on (forwardingChange), when no routed cluster is left
// (left) and no other network of the host forwards (othersForward).
// Otherwise it records that forwarding is kept, and why: a kept is final,
// no later Leave turns it off.
func (h *Host) restoreIPForward(ctx context.Context, j *journal, left []Member, othersForward bool) error {
	own, err := h.forwardingChange(j.meta.Cluster, j.boot)
	if err != nil || own == nil {
		return err
	}
	target := own.Before
	if own.Action == ActionRevert {
		target = own.After
	}
	now, err := h.output(ctx, "sysctl", "-n", ipForwardKey)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ipForwardKey, err)
	}
	if now == target {
		return nil // turned back meanwhile (by hand, or the interrupted revert)
	}
	if own.Action == ActionApply && own.Unsure() && now != own.After {
		return nil // the interrupted change was not made
	}
	turnedOn := fmt.Sprintf("hpcvm turned it on for cluster %s (run %s)", own.Cluster, own.RunID)
	never := fmt.Sprintf("hpcvm will not turn it off later: when nothing needs it, run `sysctl -w %s=%s`", ipForwardKey, target)
	if h.Netns != "" {
		never += " in network namespace " + h.Netns
	}
	switch {
	case len(left) > 0:
		var names []string
		for _, m := range left {
			names = append(names, m.Cluster)
		}
		return j.keep(Record{Change: ipForwardWhat, Before: now, After: now,
			Note: fmt.Sprintf("%s, which left, but routed cluster(s) %s still need it; %s", turnedOn, strings.Join(names, ", "), never)})
	case othersForward:
		return j.keep(Record{Change: ipForwardWhat, Before: now, After: now,
			Note: fmt.Sprintf("%s, and no routed cluster is left, but another network of this host forwards and needs it; %s", turnedOn, never)})
	}
	users, err := h.forwardingUsers(ctx)
	if err != nil {
		// Cannot tell whether anyone else needs it: keep it (fail safe).
		users = []string{"it cannot tell whether others need it (" + err.Error() + ")"}
	}
	if len(users) > 0 {
		return j.keep(Record{Change: ipForwardWhat, Before: now, After: now,
			Note: fmt.Sprintf("%s, and no routed cluster is left, but %s; %s", turnedOn, strings.Join(users, "; "), never)})
	}
	return j.run(ctx, Record{Change: ipForwardWhat, Before: now, After: target, Note: "back to what it was before run " + own.RunID},
		"sysctl", "-w", ipForwardKey+"="+target)
}

// sysctlDirs are where the host's boot configuration may set forwarding
// (sysctl.d(5)), besides /etc/sysctl.conf.
var sysctlDirs = []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}

// sysctlFiles lists the files of the host's boot configuration; a test
// points it elsewhere.
var sysctlFiles = func() []string {
	files := []string{"/etc/sysctl.conf"}
	for _, d := range sysctlDirs {
		m, _ := filepath.Glob(filepath.Join(d, "*.conf"))
		files = append(files, m...)
	}
	return files
}

// forwardingUsers says who else on the host needs IP forwarding, beyond
// libvirt's networks and hpcvm's routed clusters: the host's boot
// configuration asking for it (the admin's, a VPN's, Kubernetes'), or
// FORWARD rules that neither libvirt nor hpcvm made (Docker, Kubernetes,
// a VPN, the admin's own). Turning forwarding off under them would cut
// them off. The boot configuration is the worker's own namespace's, so it
// counts only when the changes are made there.
func (h *Host) forwardingUsers(ctx context.Context) ([]string, error) {
	var users []string
	if h.Netns == "" {
		for _, f := range sysctlFiles() {
			if setsForwarding(f) {
				users = append(users, "the host's boot configuration sets it ("+f+")")
				break
			}
		}
	}
	if !h.hasTool("iptables") {
		return users, nil
	}
	lines, _, err := h.listChain(ctx, "filter", "FORWARD")
	if err != nil {
		return users, err
	}
	var targets []string
	for _, l := range lines {
		t := valueOf(fields(l), "-j")
		// A rule that drops, rejects or only logs needs nothing forwarded.
		if t == "" || strings.HasPrefix(t, "LIBVIRT_") || strings.HasPrefix(t, "HPCVM_") || slices.Contains(targets, t) ||
			slices.Contains([]string{"DROP", "REJECT", "LOG", "RETURN"}, t) {
			continue
		}
		targets = append(targets, t)
	}
	if len(targets) > 0 {
		users = append(users, "FORWARD holds rules neither libvirt nor hpcvm made (-j "+strings.Join(targets, ", -j ")+": Docker, Kubernetes, a VPN or the admin's)")
	}
	return users, nil
}

// setsForwarding says whether a sysctl file sets net.ipv4.ip_forward to 1
// ("net.ipv4.ip_forward = 1", "net/ipv4/ip_forward=1", "-" prefixed too).
func setsForwarding(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "-")
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.ReplaceAll(strings.TrimSpace(key), "/", ".")
		if key == ipForwardKey && strings.TrimSpace(value) == "1" {
			return true
		}
	}
	return false
}

// refuseOtherFirewalls refuses hosts where iptables rules first in FORWARD
// and POSTROUTING do not decide: libvirt on its nftables backend (its own
// table rejects and masquerades whatever iptables accepted) and firewalld
// (its zones and policies do). The rules would be made, checked, and still
// route nothing.
func (h *Host) refuseOtherFirewalls(ctx context.Context) error {
	if h.hasTool("nft") {
		if _, err := h.output(ctx, "nft", "list", "table", "ip", "libvirt_network"); err == nil {
			return &RefusedError{"libvirt on host " + h.Name + " keeps its network rules in nftables (table ip libvirt_network), which hpcvm's iptables rules cannot override: routing between clusters needs libvirt's iptables backend (firewall_backend = \"iptables\" in /etc/libvirt/network.conf), or make the routing by hand in nftables"}
		}
	}
	if h.hasTool("firewall-cmd") {
		if out, err := h.output(ctx, "firewall-cmd", "--state"); err == nil && out == "running" {
			return &RefusedError{"firewalld runs on host " + h.Name + ": its zones and policies, not plain iptables rules, decide what crosses between libvirt's bridges; allow the traffic between the routed clusters' bridges with a firewalld policy by hand, and set enable_cross_cluster_routing false"}
		}
	}
	return nil
}

// Members are the routed clusters on the host, from the tags of their rules.
func (h *Host) Members(ctx context.Context) ([]Member, error) {
	if !h.hasTool("iptables") {
		return nil, nil
	}
	byName := map[string]*Member{}
	var order []string
	for _, table := range []string{"filter", "nat"} {
		lines, _, err := h.listChain(ctx, table, chainFrom)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			f := fields(l)
			name := tagOf(f)
			if name == "" {
				continue
			}
			m := byName[name]
			if m == nil {
				m = &Member{Cluster: name}
				byName[name] = m
				order = append(order, name)
			}
			if v := valueOf(f, "-i"); v != "" {
				m.Bridge = v
			}
			if v := valueOf(f, "-s"); v != "" {
				m.Subnet = v
			}
		}
	}
	out := make([]Member, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out, nil
}

func (h *Host) ensureChain(ctx context.Context, j *journal, table, chain string) error {
	if _, exists, err := h.listChain(ctx, table, chain); err != nil || exists {
		return err
	}
	return j.run(ctx, Record{Change: "create chain " + table + " " + chain, Before: "absent", After: "present"}, "iptables", "-w", "-t", table, "-N", chain)
}

func (h *Host) ensureRule(ctx context.Context, j *journal, r rule, what string, first bool) error {
	present, err := h.hasRule(ctx, r)
	if err != nil {
		return err
	}
	if present && first {
		// It must stay first: a firewall reload that put other jumps
		// (libvirt's) above it would let them reject routed traffic.
		lines, _, err := h.listChain(ctx, r.table, r.chain)
		if err != nil {
			return err
		}
		if len(lines) > 0 && strings.Join(fields(lines[0])[2:], " ") == strings.Join(r.spec, " ") {
			return nil
		}
		if err := j.run(ctx, Record{Change: "move " + what + " (it was not first)", Before: "present", After: "absent"}, "iptables", r.args("-D")...); err != nil {
			return err
		}
	} else if present {
		return nil
	}
	args := r.args("-A")
	if first {
		args = append([]string{"-w", "-t", r.table, "-I", r.chain, "1"}, r.spec...)
	}
	return j.run(ctx, Record{Change: "add " + what, Before: "absent", After: "present"}, "iptables", args...)
}

// hasRule says whether r is in its chain (iptables -C). Only iptables'
// "no such rule" (exit status 1, also for a missing chain) is a no: a held
// xtables lock (status 4) or any other failure is an error, so that no
// caller takes "cannot tell" for "absent" (and adds a second copy) or for
// "present".
func (h *Host) hasRule(ctx context.Context, r rule) (bool, error) {
	_, err := h.output(ctx, "iptables", r.args("-C")...)
	var ce *commandError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ce) && ce.status == 1:
		return false, nil
	}
	return false, err
}

// listChain returns the rules of a chain as `iptables -S` prints them
// ("-A CHAIN ..."), and whether the chain exists. The whole table is read:
// iptables-nft does not say "no such chain" in a way worth parsing.
func (h *Host) listChain(ctx context.Context, table, chain string) ([]string, bool, error) {
	out, err := h.output(ctx, "iptables", "-w", "-t", table, "-S")
	if err != nil {
		return nil, false, err
	}
	var rules []string
	exists := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == "-N "+chain:
			exists = true
		case strings.HasPrefix(l, "-A "+chain+" "):
			rules = append(rules, l)
		}
	}
	return rules, exists, nil
}

// fields splits a rule as `iptables -S` prints it: it quotes arguments
// with spaces (comments), with backslash escapes.
func fields(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, escaped, started := false, false, false
	for _, c := range line {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && inQuote:
			escaped = true
		case c == '"':
			inQuote = !inQuote
			started = true
		case c == ' ' && !inQuote:
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(c)
			started = true
		}
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}

func hasTag(fields []string, tag string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "--comment" && fields[i+1] == tag {
			return true
		}
	}
	return false
}

func tagOf(fields []string) string {
	v := valueOf(fields, "--comment")
	if !strings.HasPrefix(v, tagPrefix) {
		return ""
	}
	return strings.TrimPrefix(v, tagPrefix)
}

func valueOf(fields []string, flag string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == flag {
			return fields[i+1]
		}
	}
	return ""
}

// RefusedError is a change host_configuration does not allow, or one the
// host cannot take: retrying does not help.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// journal runs the changes of one Join or Leave (or file change) and
// records each, write-ahead: the intent before the change, the outcome
// after.
type journal struct {
	h      *Host
	meta   Meta
	action string
	boot   string // the kernel's boot ID, in every record
	// recs are what the step reports: outcomes and observations, not the
	// pending records (they are in the audit log).
	recs []Record
}

func (h *Host) newJournal(meta Meta, action string) journal {
	return journal{h: h, meta: meta, action: action, boot: h.bootID()}
}

// add records an observation (nothing run). One that cannot be recorded
// is not a failure of the step.
func (j *journal) add(r Record) {
	j.fill(&r)
	j.recs = append(j.recs, r)
	_ = j.h.Audit.Append(r)
}

// keep records that a change is left as it is (kept), with the reason in
// its Note. A kept is a decision later steps read, so one that cannot be
// recorded fails the step.
func (j *journal) keep(r Record) error {
	r.Outcome = OutcomeKept
	j.fill(&r)
	j.recs = append(j.recs, r)
	if err := j.h.Audit.Append(r); err != nil {
		return &AuditError{Path: j.h.Audit.Path, Change: r.Change, Err: err, Kept: true}
	}
	return nil
}

// run runs one command that changes the host, recorded as do records.
func (j *journal) run(ctx context.Context, r Record, name string, args ...string) error {
	r.Command = strings.Join(append([]string{name}, args...), " ")
	return j.do(r, func() error {
		_, err := j.h.output(ctx, name, args...)
		return err
	})
}

// do makes one change (fn), write-ahead: a pending record of what will be
// done (the command, the value before and after) first, synced to disk;
// only then the change; then its done or failed record. hpcvm makes no
// host change it has not recorded first: when the pending record cannot
// be written, fn does not run. A pending record without its outcome (the
// worker stopped in between) tells recovery and undo that the change may
// have been made.
func (j *journal) do(r Record, fn func() error) error {
	j.fill(&r)
	r.ID = newRecordID()
	pending := r
	pending.Outcome = OutcomePending
	if err := j.h.Audit.Append(pending); err != nil {
		return &AuditError{Path: j.h.Audit.Path, Change: r.Change, Err: err}
	}
	err := fn()
	r.Time = time.Now().UTC()
	r.Outcome = OutcomeDone
	if err != nil {
		r.Outcome = OutcomeFailed
		r.Note = err.Error()
		r.After = r.Before
	}
	j.recs = append(j.recs, r)
	if aerr := j.h.Audit.Append(r); aerr != nil {
		return errors.Join(err, fmt.Errorf("the change %q was tried but its outcome cannot be recorded in the audit log %s (%w); the log keeps it as pending, which undo treats as possibly made: repair the log (free space on its file system, or move away what stands in its place) and retry", r.Change, j.h.Audit.Path, aerr))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.Change, err)
	}
	return nil
}

// AuditError is a host change hpcvm did not make (or a decision it did not
// take) because the audit log cannot be written. Retrying helps only once
// the log can be written again.
type AuditError struct {
	Path, Change string
	Err          error
	// Kept: the record was the decision to keep a change, not a change.
	Kept bool
}

func (e *AuditError) Error() string {
	if e.Kept {
		return fmt.Sprintf("the audit log %s cannot be written (%v), so hpcvm cannot record that it keeps %s: repair the log (free space on its file system, or move away what stands in its place) and retry", e.Path, e.Err, e.Change)
	}
	return fmt.Sprintf("the audit log %s cannot be written (%v), so hpcvm did not make the change %q: it records every host change before making it; repair the log (free space on its file system, or move away what stands in its place) and retry", e.Path, e.Err, e.Change)
}

func (e *AuditError) Unwrap() error { return e.Err }

// newRecordID ties a pending record to its outcome.
func newRecordID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (j *journal) fill(r *Record) {
	r.Time = time.Now().UTC()
	r.Host = j.h.Name
	// "-": a change of files, in no network namespace.
	if r.Netns == "-" {
		r.Netns = ""
	} else {
		r.Netns = j.h.Netns
	}
	r.Cluster = j.meta.Cluster
	r.RequestedBy = j.meta.RequestedBy
	r.WorkflowID = j.meta.WorkflowID
	r.RunID = j.meta.RunID
	r.Action = j.action
	r.BootID = j.boot
}

// commandError is a command that failed: its argv, what it said on
// standard error, and its exit status (-1 when it did not exit).
type commandError struct {
	argv   []string
	msg    string
	status int
}

func (e *commandError) Error() string { return strings.Join(e.argv, " ") + ": " + e.msg }

// output runs a command in the host's namespace and returns its trimmed
// standard output; a failure carries its standard error.
func (h *Host) output(ctx context.Context, name string, args ...string) (string, error) {
	argv := append([]string{name}, args...)
	if h.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", h.Netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		status := -1
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			status = exit.ExitCode()
		}
		return "", &commandError{argv: argv, msg: msg, status: status}
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (h *Host) hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func (h *Host) needTools(names ...string) error {
	for _, n := range names {
		if !h.hasTool(n) {
			return &RefusedError{fmt.Sprintf("%s is not installed on host %s (not on the worker's PATH); routing between clusters needs it: install it (Debian: apt install iptables procps iproute2)", n, h.Name)}
		}
	}
	return nil
}
