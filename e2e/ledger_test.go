package e2e

// The host ledger and the cluster registry on a real libvirtd and a real
// Temporal server: two starts at once on one host never get the same
// pinned CPU or the same hugepages; a lost ledger is rebuilt from the
// domains; a cluster name stays bound to its host until destroy.

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startBoth starts the clusters of a and b at the same moment and returns
// each one's exit code and output.
func startBoth(a, b *env) (codes [2]int, outs [2]string) {
	var wg sync.WaitGroup
	for i, e := range []*env{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], outs[i] = e.hpcvm("start")
		}()
	}
	wg.Wait()
	return codes, outs
}

// ledgerOf reads the host's ledger with the CLI.
func (e *env) ledgerOf() api.LedgerView {
	e.t.Helper()
	code, out := e.hpcvm("ledger", "-o", "json")
	require.Equal(e.t, cli.ExitOK, code, out)
	var v api.LedgerView
	require.NoError(e.t, json.Unmarshal([]byte(out), &v), out)
	return v
}

func TestTwoStartsAtOnceNeverShareAPinnedCPUOrHugepages(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.ts, a.lv)
	b.host = a.host // one host, two clusters
	img := a.blankImage()
	a.writeSpec(clusterFile{baseImage: img})
	b.writeSpec(clusterFile{baseImage: img})
	specs := [2]string{readFile(t, a.config), readFile(t, b.config)}
	a.startWorker()
	a.mustLeaveNothing()
	b.mustLeaveNothing()
	envs := [2]*env{a, b}

	// race starts both clusters with the given performance settings and
	// checks that whoever got what, nothing is shared: both start where
	// the host has enough for both; otherwise exactly one does, and the
	// other is refused before it creates anything, saying why (want).
	// It returns the index of the one that was refused, or -1.
	race := func(t *testing.T, performance, want string) int {
		for i, e := range envs {
			writeFile(t, e.config, specs[i])
			e.withHardware("      enable_kvm: false\n      performance: " + performance + "\n")
		}
		codes, outs := startBoth(a, b)
		loser := -1
		for i, code := range codes {
			if code != cli.ExitOK {
				require.Equal(t, -1, loser, "at least one of the two starts succeeds:\n%s\n%s", outs[0], outs[1])
				loser = i
				assert.Equal(t, cli.ExitBadInput, code, outs[i])
				assert.Contains(t, outs[i], want)
				assert.Empty(t, envs[i].leftovers(), "the refused start created nothing")
			}
		}
		if loser >= 0 {
			t.Logf("cluster %s was refused: the host has room for one", envs[loser].cluster)
		} else {
			t.Logf("both started: the host has room for both")
		}
		return loser
	}
	// After a race: destroy the one that started (its claims go with
	// it), then the refused one starts.
	settle := func(t *testing.T, loser int) {
		for i, e := range envs {
			if i != loser {
				code, out := e.hpcvm("destroy", "--yes")
				require.Equal(t, cli.ExitOK, code, out)
			}
		}
		if loser >= 0 {
			code, out := envs[loser].hpcvm("start")
			require.Equal(t, cli.ExitOK, code, "the claims of the destroyed cluster were given back: %s", out)
			code, out = envs[loser].hpcvm("destroy", "--yes")
			require.Equal(t, cli.ExitOK, code, out)
		}
		v := a.ledgerOf()
		assert.Empty(t, v.Resources, "destroy gave every claim back")
	}

	t.Run("pinned CPUs", func(t *testing.T) {
		require.GreaterOrEqual(t, runtime.NumCPU(), 2)
		loser := race(t, "{cpu_pinning: true}", "cpu_pinning gives every vCPU a host CPU of its own")
		if runtime.NumCPU() < 4 {
			assert.GreaterOrEqual(t, loser, 0, "2 + 2 vCPUs to pin on %d CPUs: one start must be refused", runtime.NumCPU())
		}
		owner := map[string]string{} // host CPU → domain
		for i, e := range envs {
			if i == loser {
				continue
			}
			for _, vm := range []string{"controller-01", "compute-01"} {
				domain := e.cluster + "-" + vm
				d := liveDomain(t, domain)
				require.NotNil(t, d.CPUTune, domain)
				for _, pin := range d.CPUTune.VCPUPin {
					assert.NotContains(t, owner, pin.CPUSet, "%s and %s share host CPU %s", domain, owner[pin.CPUSet], pin.CPUSet)
					owner[pin.CPUSet] = domain
				}
			}
		}
		// The ledger holds the same pins libvirt shows.
		v := a.ledgerOf()
		held := map[string]string{}
		for _, r := range v.Resources {
			for _, c := range r.CPUs {
				held[strconv.Itoa(c)] = r.Cluster + "-" + r.VM
			}
		}
		assert.Equal(t, owner, held, "the ledger's pinned CPUs are the domains'")

		// Lost: the ledger's workflow terminated. The next claim
		// rebuilds it from the domains on the host.
		winner := envs[0]
		if loser == 0 {
			winner = envs[1]
		}
		require.NoError(t, a.ts.GetDefaultClient().TerminateWorkflow(context.Background(), api.LedgerWorkflowID(a.host), "", "the test loses the ledger"))
		code, out := winner.hpcvm("ledger")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, "has no ledger")
		code, out = winner.hpcvm("start")
		require.Equal(t, cli.ExitOK, code, out)
		rebuilt := a.ledgerOf()
		got := map[string]string{}
		for _, r := range rebuilt.Resources {
			assert.True(t, r.Adopted, "%s/%s was read from its domain", r.Cluster, r.VM)
			for _, c := range r.CPUs {
				got[strconv.Itoa(c)] = r.Cluster + "-" + r.VM
			}
		}
		for cpu, domain := range owner {
			if strings.HasPrefix(domain, winner.cluster+"-") {
				assert.Equal(t, domain, got[cpu], "the rebuilt ledger holds CPU %s for %s", cpu, domain)
			}
		}
		settle(t, loser)
	})

	t.Run("hugepages", func(t *testing.T) {
		const vmMiB = 128 // controller-01 and compute-01 of each cluster
		perCluster := uint64(2 * vmMiB / 2)
		reserveHugepages(t, perCluster)
		total := readCount(t, filepath.Join(hugepages2M, "nr_hugepages"))
		loser := race(t, "{enable_hugepages: true, hugepage_size: 2M, memory_backing: memfd}", "hugepages")
		if total < 2*perCluster {
			assert.GreaterOrEqual(t, loser, 0, "2 × %d pages where the host reserves %d: one start must be refused", perCluster, total)
		}
		var claimed uint64
		for _, r := range a.ledgerOf().Resources {
			for _, h := range r.Hugepages {
				claimed += h.Pages
			}
		}
		assert.LessOrEqual(t, claimed, total, "the ledger never gives more pages than the host reserves")
		settle(t, loser)
	})
}

func TestAClusterNameStaysBoundToItsHost(t *testing.T) {
	a := newEnv(t)
	img := a.blankImage()
	a.writeSpec(clusterFile{baseImage: img})
	a.startWorker()
	a.mustLeaveNothing()
	code, out := a.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)

	// The same cluster name, on another host (a worker of its own).
	other := newEnvOn(t, a.ts, a.lv)
	other.cluster = a.cluster
	other.writeSpec(clusterFile{baseImage: img})
	other.startWorker()
	code, out = other.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "cluster "+a.cluster+" lives on host "+a.host)
	code, out = other.hpcvm("validate")
	assert.NotEqual(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "lives on host "+a.host, "validate runs the same check")

	code, out = a.hpcvm("list", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	var entries []cli.ClusterEntry
	require.NoError(t, json.Unmarshal([]byte(out), &entries))
	require.Len(t, entries, 1, out)
	assert.Equal(t, []string{a.host}, entries[0].BoundTo)

	// The registry lost: the host's worker binds what it finds again.
	c := a.ts.GetDefaultClient()
	require.NoError(t, c.TerminateWorkflow(context.Background(), api.RegistryWorkflowID, "", "the test loses the registry"))
	bound, err := hostworker.AdoptClusters(context.Background(), c, a.lv, a.host)
	require.NoError(t, err)
	assert.Equal(t, []string{a.cluster}, bound)
	bound, err = hostworker.AdoptClusters(context.Background(), c, a.lv, other.host)
	require.NoError(t, err)
	assert.Empty(t, bound, "the domains were made for host "+a.host)
	code, out = other.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "lives on host "+a.host)

	// Destroyed, the name is free for any host.
	code, out = a.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	code, out = other.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	code, out = other.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	code, out = a.hpcvm("list", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	entries = nil
	require.NoError(t, json.Unmarshal([]byte(out), &entries))
	for _, e := range entries {
		assert.Empty(t, e.BoundTo, "destroy unbound %s", e.Cluster)
	}
}
