package hostchange

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Host DNS integration (dns_mode shared_dns, or routed, with
// enable_host_dns_integration): the host's resolver, a dnsmasq, learns
// each cluster's domain from a drop-in, hpcvm-<cluster>.conf in its
// configuration directory, that sends the domain's queries to the
// cluster's network, whose own
// dnsmasq knows the VMs. The host then resolves every such cluster's
// names, and so do the guests of those clusters: their networks forward
// *.local to the host's resolver. dnsmasq reads its drop-ins only when it
// starts, so every write or removal is followed by the worker's reload
// command (--resolver-reload, systemctl restart dnsmasq by default).

// resolverMark is the first line of every drop-in hpcvm writes: the proof
// that the file is hpcvm's, for the cluster it names.
const resolverMark = "# hpcvm-cluster: "

var resolverFile = fileKind{
	what: "host resolver entry",
	noun: "dnsmasq drop-in",
	ext:  ".conf",
	owned: func(b []byte, cluster string) bool {
		first, _, _ := bytes.Cut(b, []byte("\n"))
		return string(first) == resolverMark+cluster
	},
	notOurs: "its first line is not \"" + resolverMark + "%s\"",
}

// ResolverFile is the cluster's drop-in in the resolver's directory dir.
func ResolverFile(dir, cluster string) string {
	return clusterFile(dir, cluster, resolverFile.ext)
}

// ResolverEntry is the drop-in that sends the queries for domain to the
// cluster's network at gateway.
func ResolverEntry(cluster, domain, gateway string) ([]byte, error) {
	gw, err := netip.ParseAddr(gateway)
	if err != nil {
		return nil, fmt.Errorf("gateway %q: %w", gateway, err)
	}
	if domain == "" || strings.ContainsAny(domain, "/\n# ") {
		return nil, fmt.Errorf("domain %q cannot be written into a dnsmasq server= line", domain)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s\n", resolverMark, cluster)
	fmt.Fprintf(&b, "# Written by hpcvm: the names of cluster %s are answered by its network's DNS at %s.\n", cluster, gw)
	b.WriteString("# `hpcvm destroy` removes this file; do not edit it (hpcvm rewrites it when it differs).\n")
	fmt.Fprintf(&b, "server=/%s/%s\n", domain, gw)
	// No rev-server for the subnet: the network's dnsmasq does not answer
	// the reverse zone itself but forwards it, to this resolver when the
	// network has no dns_servers, and a lookup of an address without a
	// lease would go round between the two.
	return []byte(b.String()), nil
}

// ResolverExists says whether the cluster's drop-in is at path (a file of
// that name that is not hpcvm's is an error).
func (h *Host) ResolverExists(path, cluster string) (bool, error) {
	exists, _, err := resolverFile.read(path, cluster)
	return exists, err
}

// ResolverCurrent says whether path holds exactly entry as the cluster's
// drop-in: a WriteResolver would change nothing.
func (h *Host) ResolverCurrent(path, cluster string, entry []byte) (bool, error) {
	return resolverFile.current(path, cluster, entry)
}

// WriteResolver makes path hold the cluster's drop-in and reloads the
// resolver when it changed, or when the audit log does not show a reload
// done since the file was last written or removed (a worker that stopped
// between the write and the reload). A reload that fails takes the
// drop-in back (the resolver keeps running as it was) and fails the change.
func (h *Host) WriteResolver(ctx context.Context, meta Meta, path string, entry []byte) ([]Record, error) {
	if len(h.ResolverReload) == 0 {
		return nil, &RefusedError{"the worker on host " + h.Name + " has no --resolver-reload command, so the host's resolver would never read the cluster's entry: start hpcvm-worker with --resolver-reload (e.g. \"systemctl restart dnsmasq\")"}
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionApply)
	old, changed, err := resolverFile.write(&j, path, entry)
	if err != nil {
		return j.recs, err
	}
	if !changed {
		owed, err := h.reloadOwed([]string{path})
		if err != nil || !owed {
			return j.recs, err
		}
		// The entry is what it should be: a failed reload takes nothing
		// back, the next try reloads again.
		return j.recs, h.reloadResolver(ctx, &j)
	}
	if rerr := h.reloadResolver(ctx, &j); rerr != nil {
		// Take it back, so the next reload (anyone's) does not load an
		// entry that this run reports as failed.
		back := h.newJournal(meta, ActionRevert)
		if old == nil {
			_, err = resolverFile.remove(&back, path, false)
		} else {
			_, _, err = resolverFile.write(&back, path, old)
		}
		j.recs = append(j.recs, back.recs...)
		if err != nil {
			return j.recs, fmt.Errorf("%w; and taking the entry back failed: %v", rerr, err)
		}
		return j.recs, rerr
	}
	return j.recs, nil
}

// RemoveResolver removes the drop-ins hpcvm wrote for the cluster (the
// audit log says where) and the cluster's marked drop-in in each of dirs,
// with only set that one alone, and reloads the resolver if it removed
// any, or if a reload is owed since one of them was last written or
// removed (reloadOwed).
func (h *Host) RemoveResolver(ctx context.Context, meta Meta, only string, dirs []string) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionRevert)
	removed, looked, err := resolverFile.removeAll(&j, only, dirs)
	if err != nil {
		return j.recs, err
	}
	if removed == 0 {
		owed, err := h.reloadOwed(looked)
		if err != nil || !owed {
			return j.recs, err
		}
	}
	if len(h.ResolverReload) == 0 {
		return j.recs, &RefusedError{"removed the cluster's host resolver entry, but the worker on host " + h.Name + " has no --resolver-reload command: restart the host's dnsmasq by hand so it forgets the cluster's domain"}
	}
	if err := h.reloadResolver(ctx, &j); err != nil {
		return j.recs, &RefusedError{err.Error() + "; the entry is removed, but the running dnsmasq still answers for cluster " + meta.Cluster + ": restart it by hand"}
	}
	return j.recs, nil
}

// reloadTimeout bounds the resolver's reload: a restart that hangs must
// not hold the host-change lock for ever.
const reloadTimeout = 60 * time.Second

// reloadWhat is the change a resolver reload records.
const reloadWhat = "reload the host's resolver, so it reads its entries"

// reloadOwed says whether one of paths was written or removed (done, or
// possibly: a pending record without outcome) after the last reload the
// audit log shows done, whichever cluster's: then the running resolver
// may not have read what is there now, and must reload.
func (h *Host) reloadOwed(paths []string) (bool, error) {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	recs, _, err := h.Audit.ReadSettled(func(r Record) bool {
		if r.Outcome != OutcomeDone && !r.Unsure() {
			return false
		}
		p, ok := resolverFile.pathOf(r)
		return (ok && want[p]) || (r.Change == reloadWhat && r.Outcome == OutcomeDone)
	})
	if err != nil {
		return false, err
	}
	return len(recs) > 0 && recs[len(recs)-1].Change != reloadWhat, nil
}

// reloadResolver runs the worker's reload command, where the bridges are
// (the resolver must reach the clusters' gateways), and records it.
func (h *Host) reloadResolver(ctx context.Context, j *journal) error {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	err := j.run(ctx, Record{Change: reloadWhat}, h.ResolverReload[0], h.ResolverReload[1:]...)
	if err != nil {
		return &RefusedError{fmt.Sprintf("the host's resolver did not reload (%v): check that its dnsmasq runs and reads this directory (conf-dir), or start hpcvm-worker with the --resolver-reload command that restarts it", err)}
	}
	return nil
}
