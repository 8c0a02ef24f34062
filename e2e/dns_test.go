package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// resolveHelperEnv names the DNS server the test binary asks, when it is
// run as hostResolve's helper inside the test namespace.
const resolveHelperEnv = "HPCVM_E2E_RESOLVE_SERVER"

// resolveOnce asks server (port 53) for name's IPv4 address, or for an
// address's name: the answer, or "unresolved".
func resolveOnce(server, name string) string {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "udp", net.JoinHostPort(server, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	var err error
	if net.ParseIP(name) != nil {
		got, err = r.LookupAddr(ctx, name)
	} else {
		got, err = r.LookupHost(ctx, name)
	}
	if err != nil || len(got) == 0 {
		return "unresolved"
	}
	return got[0]
}

// hostResolve asks the host's resolver at addr, from where the bridges are
// (the test namespace), as a program on the host would.
func hostResolve(t *testing.T, addr, name string) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", testNetns, self, "-test.run=^$", name)
	cmd.Env = append(os.Environ(), resolveHelperEnv+"="+addr)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.TrimSpace(string(out))
}

// hostResolver is the test namespace's "host dnsmasq": listening on a
// loopback address of its own, reading the *.conf drop-ins of dir, and
// restarted by reload (what the worker's --resolver-reload runs).
type hostResolver struct {
	addr, dir, pidFile string
	reload             []string
}

// startHostResolver starts it; the test's cleanup stops it by its PID.
func startHostResolver(t *testing.T) *hostResolver {
	t.Helper()
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	// 127.53.x.y: a loopback address no other test's resolver has.
	r := &hostResolver{addr: fmt.Sprintf("127.53.%d.%d", b[0], 1+b[1]%250)}
	root, err := os.MkdirTemp("/var/tmp", "hpcvm-dnsmasq-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	r.dir, r.pidFile = filepath.Join(root, "dnsmasq.d"), filepath.Join(root, "dnsmasq.pid")
	require.NoError(t, os.Mkdir(r.dir, 0o755))
	script := filepath.Join(root, "restart-dnsmasq")
	// dnsmasq reads its drop-ins only when it starts: stop it, start it.
	writeFile(t, script, fmt.Sprintf(`#!/bin/sh
set -e
pid=$(cat %[1]s 2>/dev/null || true)
if [ -n "$pid" ]; then
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
fi
exec dnsmasq --port=53 --listen-address=%[2]s --bind-interfaces --no-resolv --no-hosts --conf-dir=%[3]s,*.conf --pid-file=%[1]s
`, r.pidFile, r.addr, r.dir+"/"))
	r.reload = []string{"sh", script}
	t.Cleanup(func() {
		if pid, err := strconv.Atoi(strings.TrimSpace(readFileOr(r.pidFile))); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	})
	out, err := exec.Command("ip", append([]string{"netns", "exec", testNetns}, r.reload...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return r
}

func readFileOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// dns_mode shared_dns with enable_host_dns_integration: the host's dnsmasq
// learns each cluster's domain, so the host resolves the clusters' names
// (and their addresses back to names), and the guests of one shared_dns
// cluster resolve the names of another. A hand-made drop-in of the
// cluster's name is refused; an edit that drops the integration from a
// running cluster is refused; destroy takes each entry back.
func TestSharedDNSClustersResolveEachOthersNames(t *testing.T) {
	res := startHostResolver(t)
	alpha, beta := newEnv(t), newEnv(t)
	controllers := map[*env]string{}
	var shares []string
	for _, e := range []*env{alpha, beta} {
		e.startWorkerWith(func(o *hostworker.Options) {
			o.ResolverRoots, o.ResolverReload = []string{res.dir}, res.reload
		})
		e.mustLeaveNothing()
		e.writeSpec(clusterFile{})
		ip, err := e.plannedIP("controller-01")
		require.NoError(t, err)
		controllers[e] = ip
	}
	other := map[*env]*env{alpha: beta, beta: alpha}
	for _, e := range []*env{alpha, beta} {
		share := e.writeProbingSpec("", "resolve-wait controller-01."+e.cluster+".local", "resolve-wait controller-01."+other[e].cluster+".local")
		shares = append(shares, share)
		spec := strings.Replace(readFile(t, e.config), "network:\n", "network:\n  dns_mode: shared_dns\n", 1)
		writeFile(t, e.config, spec+"host_configuration:\n  network:\n    enable_host_dns_integration: true\n    dnsmasq_config_path: "+res.dir+"\n    dnsmasq_address: "+res.addr+"\n")
	}
	entry := func(e *env) string { return filepath.Join(res.dir, "hpcvm-"+e.cluster+".conf") }

	// A hand-made drop-in of alpha's name: refused before anything exists.
	writeFile(t, entry(alpha), "server=/"+alpha.cluster+".local/192.0.2.1\n")
	code, out := alpha.hpcvm("start", "--yes")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "is not hpcvm's dnsmasq drop-in of cluster "+alpha.cluster)
	assert.Empty(t, alpha.leftovers())
	assert.Equal(t, "server=/"+alpha.cluster+".local/192.0.2.1\n", readFile(t, entry(alpha)), "untouched")
	require.NoError(t, os.Remove(entry(alpha)))

	// Unconfirmed: the plan says what would change, nothing is submitted.
	code, out = alpha.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "write "+entry(alpha)+" (dnsmasq: the queries for "+alpha.cluster+".local go to the cluster's network at")
	assert.Empty(t, alpha.leftovers())

	for _, e := range []*env{alpha, beta} {
		code, out = e.hpcvm("start", "--yes")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, "- host resolver entry of cluster "+e.cluster+" ("+entry(e)+")")
		assert.Contains(t, out, "- reload the host's resolver, so it reads its entries")
		assert.NotContains(t, out, "Shared DNS requested", "no manual steps for what hpcvm made")
		assert.Contains(t, readFile(t, entry(e)), "\nserver=/"+e.cluster+".local/")
	}
	// The network sends *.local, and everything else, to the host's
	// resolver.
	n, err := alpha.lv.LookupNetwork(cluster.NetworkName(alpha.cluster))
	require.NoError(t, err)
	var x libvirtxml.Network
	require.NoError(t, x.Unmarshal(n.XML))
	require.NotNil(t, x.DNS)
	assert.Equal(t, []libvirtxml.NetworkDNSForwarder{{Domain: "local", Addr: res.addr}, {Addr: res.addr}}, x.DNS.Forwarders)
	t.Logf("network XML of %s:\n%s", alpha.cluster, n.XML)

	// From inside the guests: their own names, and the other cluster's.
	for i, e := range []*env{alpha, beta} {
		reached := probeResults(t, shares[i])
		t.Logf("%s guest (shared_dns): %v", e.cluster, reached)
		assert.Equal(t, controllers[e], reached["resolve-wait controller-01."+e.cluster+".local"])
		assert.Equal(t, controllers[other[e]], reached["resolve-wait controller-01."+other[e].cluster+".local"], "the other shared_dns cluster's names")
	}
	// From the host.
	for _, e := range []*env{alpha, beta} {
		assert.Equal(t, controllers[e], hostResolve(t, res.addr, "controller-01."+e.cluster+".local"))
	}
	// A name no cluster has is not bounced between the host's resolver
	// and the networks: it fails at once.
	began := time.Now()
	assert.Equal(t, "unresolved", hostResolve(t, res.addr, "nobody."+alpha.cluster+".local"))
	assert.Equal(t, "unresolved", hostResolve(t, res.addr, "nothing-hpcvm-made.local"))
	t.Logf("unknown names answered in %s", time.Since(began))

	// Again: nothing to change, so nothing to confirm, and no restart of
	// the host's dnsmasq.
	code, out = alpha.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "host changes of cluster "+alpha.cluster+" are in place on host "+alpha.host+" already: nothing to confirm")
	assert.NotContains(t, out, "Make these changes?")
	assert.NotContains(t, out, "changed host")
	// The running cluster's DNS is not changed by an edited file.
	shared := readFile(t, alpha.config)
	writeFile(t, alpha.config, strings.Replace(shared, "    enable_host_dns_integration: true\n", "    enable_host_dns_integration: false\n", 1))
	code, out = alpha.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "gives network "+cluster.NetworkName(alpha.cluster)+" the DNS forwarders none (the host's resolv.conf), but it has local/"+res.addr+", "+res.addr)
	writeFile(t, alpha.config, shared)

	code, out = alpha.hpcvm("audit")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "$ write "+entry(alpha))
	assert.Contains(t, out, "$ sh "+res.reload[1])

	// Destroy takes the entry back: the host forgets alpha, still knows
	// beta.
	code, out = alpha.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "undid host change: host resolver entry of cluster "+alpha.cluster)
	assert.NoFileExists(t, entry(alpha))
	assert.Empty(t, alpha.leftovers())
	assert.Equal(t, "unresolved", hostResolve(t, res.addr, "controller-01."+alpha.cluster+".local"))
	assert.Equal(t, controllers[beta], hostResolve(t, res.addr, "controller-01."+beta.cluster+".local"))
	code, out = beta.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.NoFileExists(t, entry(beta))
	assert.Empty(t, beta.leftovers())
}
