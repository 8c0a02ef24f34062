package hostchange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
//     comes in from a member's bridge to HPCVM_ROUTED_TO, which accepts it
//     when it goes out to a member's bridge. These run before libvirt's
//     LIBVIRT_FWI/FWO, which reject traffic between its networks;
//   - nat: POSTROUTING's first rule jumps to HPCVM_ROUTED, which accepts
//     (ends NAT for) traffic from a member's subnet to a member's subnet,
//     before libvirt's LIBVIRT_PRT would masquerade it: a guest sees the
//     real address of the other cluster's guest.
//
// A member is two rules a table, each tagged with a comment naming its
// cluster ("hpcvm-routed:<cluster>"): what a cluster owns on the host is
// proved by that tag, and a destroy removes exactly those rules. N members
// make 4N rules, not a rule per pair.

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
	mu             sync.Mutex
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

func memberRules(m Member) []rule {
	tag := []string{"-m", "comment", "--comment", tagPrefix + m.Cluster}
	with := func(table, chain string, match []string, target string) rule {
		spec := append(append(append([]string{}, match...), tag...), "-j", target)
		return rule{table, chain, spec}
	}
	return []rule{
		with("filter", chainFrom, []string{"-i", m.Bridge}, chainTo),
		with("filter", chainTo, []string{"-o", m.Bridge}, "ACCEPT"),
		with("nat", chainFrom, []string{"-s", m.Subnet}, chainTo),
		with("nat", chainTo, []string{"-d", m.Subnet}, "ACCEPT"),
	}
}

// ruleWhat says what a member rule does, for the audit log.
func ruleWhat(r rule, cluster string) string {
	switch {
	case r.table == "filter" && r.chain == chainFrom:
		return fmt.Sprintf("filter rule of cluster %s: traffic from bridge %s may go to a routed cluster", cluster, valueOf(r.spec, "-i"))
	case r.table == "filter":
		return fmt.Sprintf("filter rule of cluster %s: traffic of routed clusters may go to bridge %s", cluster, valueOf(r.spec, "-o"))
	case r.chain == chainFrom:
		return fmt.Sprintf("nat rule of cluster %s: traffic from %s to a routed cluster is not masqueraded", cluster, valueOf(r.spec, "-s"))
	default:
		return fmt.Sprintf("nat rule of cluster %s: traffic of routed clusters to %s is not masqueraded", cluster, valueOf(r.spec, "-d"))
	}
}

// hooks are the built-in chains that jump to HPCVM_ROUTED, first.
var hooks = []rule{
	{"filter", "FORWARD", []string{"-j", chainFrom}},
	{"nat", "POSTROUTING", []string{"-j", chainFrom}},
}

// Join makes m a member of the host's routed clusters. Every change is
// recorded; what was already in place is recorded as unchanged. It is
// idempotent: a retried step finds its rules and changes nothing.
func (h *Host) Join(ctx context.Context, meta Meta, m Member, o JoinOptions) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := journal{h: h, meta: meta, action: ActionApply}
	if err := h.needTools("iptables", "sysctl", "ip"); err != nil {
		return nil, err
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
	// What was made is checked, not assumed.
	for _, r := range append(append([]rule{}, hooks...), memberRules(m)...) {
		if _, err := h.output(ctx, "iptables", r.args("-C")...); err != nil {
			return j.recs, fmt.Errorf("after adding it, iptables does not find %s: %w", strings.Join(r.args("-A")[1:], " "), err)
		}
	}
	return j.recs, nil
}

// Joined says whether a Join of m would change nothing on the host: IP
// forwarding on, hpcvm's jumps in place and first, m's rules present. It
// changes nothing, and takes no lock: a start asks it before a person is
// asked to confirm the join.
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
		if _, err := h.output(ctx, "iptables", r.args("-C")...); err != nil {
			return false, nil
		}
	}
	return true, nil
}

// Leave removes the cluster's routing rules (found by their tag, whatever
// the file says now), the chains and jumps once no member is left, and
// then, with no routed cluster left, turns IP forwarding back off if hpcvm
// turned it on and nothing else needs it (othersForward: another network
// of the host forwards, as libvirt's NAT networks do). A retried Leave
// finishes what an interrupted one began: it decides from what the host
// and the audit log say now, not from what it removed itself.
func (h *Host) Leave(ctx context.Context, meta Meta, othersForward bool) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := journal{h: h, meta: meta, action: ActionRevert}
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
		return j.recs, h.restoreIPForward(ctx, &j, othersForward)
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
		return j.recs, nil
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
		if _, err := h.output(ctx, "iptables", hook.args("-C")...); err == nil {
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
	return j.recs, h.restoreIPForward(ctx, &j, othersForward)
}

// sameNamespaceAsJoin refuses to leave from another network namespace
// than the one the cluster's rules were made in: a worker started without
// --netns would find none and report them gone.
func (h *Host) sameNamespaceAsJoin(cluster string) error {
	recs, _, err := h.Audit.Read(func(r Record) bool {
		return r.Cluster == cluster && r.Outcome == OutcomeDone && strings.HasPrefix(r.Command, "iptables ") && strings.Contains(r.Command, tagPrefix+cluster)
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

// restoreIPForward turns IP forwarding back to what it was if the last
// change hpcvm made to it here was turning it on. It says once that it
// keeps it on for another network.
func (h *Host) restoreIPForward(ctx context.Context, j *journal, othersForward bool) error {
	recs, _, err := h.Audit.Read(func(r Record) bool {
		return r.Change == ipForwardWhat && (r.Outcome == OutcomeDone || r.Outcome == OutcomeKept) && r.Netns == h.Netns
	})
	if err != nil {
		return err
	}
	var turnedOn *Record
	for i := range recs {
		if recs[i].Outcome == OutcomeDone {
			turnedOn = &recs[i]
		}
	}
	if turnedOn == nil || turnedOn.Action != ActionApply {
		return nil // hpcvm did not turn it on: not its to turn off
	}
	now, err := h.output(ctx, "sysctl", "-n", ipForwardKey)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ipForwardKey, err)
	}
	if now == turnedOn.Before {
		return nil // turned back meanwhile, by hand
	}
	if othersForward {
		if recs[len(recs)-1].Outcome != OutcomeKept {
			j.add(Record{Change: ipForwardWhat, Before: now, After: now, Outcome: OutcomeKept,
				Note: fmt.Sprintf("hpcvm turned it on (run %s) and no routed cluster is left, but another network of this host forwards and needs it", turnedOn.RunID)})
		}
		return nil
	}
	return j.run(ctx, Record{Change: ipForwardWhat, Before: now, After: turnedOn.Before, Note: "back to what it was before run " + turnedOn.RunID},
		"sysctl", "-w", ipForwardKey+"="+turnedOn.Before)
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
	_, err := h.output(ctx, "iptables", r.args("-C")...)
	present := err == nil
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

// journal runs the changes of one Join or Leave and records each.
type journal struct {
	h      *Host
	meta   Meta
	action string
	recs   []Record
}

// add records an observation (nothing run).
func (j *journal) add(r Record) {
	j.fill(&r)
	j.recs = append(j.recs, r)
	// An observation that cannot be recorded is not a failure of the step.
	_ = j.h.Audit.Append(r)
}

// run runs one command that changes the host and records it with its
// outcome. A change whose record cannot be written fails the step: hpcvm
// does not make host changes it cannot account for.
func (j *journal) run(ctx context.Context, r Record, name string, args ...string) error {
	r.Command = strings.Join(append([]string{name}, args...), " ")
	return j.do(r, func() error {
		_, err := j.h.output(ctx, name, args...)
		return err
	})
}

// do makes one change (fn) and records it with its outcome, as run does.
func (j *journal) do(r Record, fn func() error) error {
	j.fill(&r)
	err := fn()
	r.Outcome = OutcomeDone
	if err != nil {
		r.Outcome = OutcomeFailed
		r.Note = err.Error()
		r.After = r.Before
	}
	j.recs = append(j.recs, r)
	if aerr := j.h.Audit.Append(r); aerr != nil {
		return errors.Join(err, fmt.Errorf("the change %q was made but cannot be recorded: %w", r.Change, aerr))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.Change, err)
	}
	return nil
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
}

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
		return "", fmt.Errorf("%s: %s", strings.Join(argv, " "), msg)
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
