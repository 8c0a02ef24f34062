package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkStartDestroyOldVsNew starts and destroys the benchmark's
// clusters (1 + 7 and 1 + 31 VMs of 128 MiB on a blank 1 GiB base) with
// two builds of hpcvm side by side in the same run, against one Temporal
// server and one libvirtd: this tree, and the revision HPCVM_BENCH_BASE
// (`make bench` sets it; `make bench BENCH_BASE=<rev>` picks another).
// Each build runs as an operator runs it: its own hpcvm-worker process for
// a host name of its own, its own hpcvm CLI process. Who goes first turns
// round between rounds. It prints each figure's min/median/max and the
// ratio new/old per round: "no slower than before" is a ratio of 1.
//
//	HPCVM_BENCH_BASE=<rev> go test -run '^$' -bench OldVsNew -benchtime 5x ./e2e/
func BenchmarkStartDestroyOldVsNew(b *testing.B) {
	base := os.Getenv("HPCVM_BENCH_BASE")
	require.NotEmpty(b, base, "HPCVM_BENCH_BASE names the revision to compare with (make bench sets it)")
	e := newEnv(b)
	img := filepath.Join(e.poolRoot, "blank.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "1G").CombinedOutput()
	require.NoError(b, err, "%s", out)

	builds := []*benchBuild{
		{name: "old", dir: buildRevision(b, base)},
		{name: "new", dir: buildTree(b)},
	}
	for _, bb := range builds {
		bb.env = newEnvOn(b, e.ts, e.lv)
		bb.env.host = e.host + "-" + bb.name
		bb.worker = bb.env.startWorkerProcess(filepath.Join(bb.dir, "hpcvm-worker"))
	}
	for _, computes := range []int{7, 31} {
		b.Run(fmt.Sprintf("1+%d", computes), func(b *testing.B) {
			var f benchFigures
			for i := 0; i < b.N; i++ {
				for k := range builds {
					bb := builds[(i+k)%len(builds)]
					f.add(bb.round(b, img, computes))
				}
				f.ratios = append(f.ratios, fmt.Sprintf("new/old: start %.2f destroy %.2f",
					f.last("new start")/f.last("old start"), f.last("new destroy")/f.last("old destroy")))
			}
			fmt.Printf("\n1 + %d VMs, old (%s) against new (this tree), %d rounds:\n%s\n", computes, base, b.N, f.String())
			b.ReportMetric(f.median("new start")/f.median("old start"), "start-new/old")
			b.ReportMetric(f.median("new destroy")/f.median("old destroy"), "destroy-new/old")
		})
	}
}

// benchBuild is one build of hpcvm in the old-vs-new benchmark.
type benchBuild struct {
	name   string // old, new
	dir    string // holds hpcvm and hpcvm-worker
	env    *env
	worker *exec.Cmd
}

// round starts and destroys a cluster of its own with the build's CLI.
func (bb *benchBuild) round(b *testing.B, img string, computes int) []figure {
	be := &benchEnv{env: bb.env, image: img, computes: computes, memoryMB: 128}
	be.cluster = "e2e-" + randomSuffix()
	be.writeBenchConfig()
	var out []figure
	for _, op := range []string{"start", "destroy"} {
		args := []string{op, "-c", be.config, "--trace-dir", "", "--temporal-address", bb.env.ts.GetFrontendHostPort(), "--namespace", bb.env.ts.GetDefaultNamespace()}
		if op == "destroy" {
			args = append(args, "--yes")
		}
		cmd := exec.Command(filepath.Join(bb.dir, "hpcvm"), args...)
		cmd.Dir = bb.env.poolRoot // where the old build writes its inventory
		began := time.Now()
		text, err := cmd.CombinedOutput()
		took := time.Since(began)
		require.NoError(b, err, "%s hpcvm %s: %s", bb.name, op, text)
		var cpu float64
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
		}
		out = append(out, figure{bb.name + " " + op, took.Seconds()}, figure{bb.name + " " + op + " CLI cpu", cpu})
	}
	return out
}

// buildTree builds this tree's hpcvm and hpcvm-worker.
func buildTree(b *testing.B) string {
	dir := b.TempDir()
	for bin, pkg := range map[string]string{"hpcvm": "../cmd/hpcvm", "hpcvm-worker": "../cmd/hpcvm-worker"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, bin), pkg).CombinedOutput()
		require.NoError(b, err, "%s", out)
	}
	return dir
}

// buildRevision builds hpcvm and hpcvm-worker of revision rev of this
// repository, from its files (git archive): the binaries were under cmd/
// since the control-plane work, at starter/ and worker/ before.
func buildRevision(b *testing.B, rev string) string {
	src := b.TempDir()
	tarball := filepath.Join(b.TempDir(), "src.tar")
	archive := exec.Command("git", "archive", "--format=tar", "-o", tarball, rev)
	archive.Dir = ".."
	out, err := archive.CombinedOutput()
	require.NoError(b, err, "git archive %s: %s", rev, out)
	out, err = exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput()
	require.NoError(b, err, "%s", out)
	pkgs := map[string]string{"hpcvm": "./cmd/hpcvm", "hpcvm-worker": "./cmd/hpcvm-worker"}
	if _, err := os.Stat(filepath.Join(src, "cmd", "hpcvm")); err != nil {
		pkgs = map[string]string{"hpcvm": "./starter", "hpcvm-worker": "./worker"}
	}
	dir := b.TempDir()
	for bin, pkg := range pkgs {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, bin), pkg)
		cmd.Dir = src
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, "building %s of %s: %s", pkg, rev, strings.TrimSpace(string(out)))
	}
	return dir
}
