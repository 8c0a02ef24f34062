package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/templates"
	"github.com/stretchr/testify/require"
)

// BenchmarkStartDestroyVsVirsh starts and destroys a cluster of 1
// controller + 7 compute, and of 1 + 31 (128 MiB, blank 1 GiB qcow2 base
// image) with hpcvm (CLI, real Temporal, real worker) and, in the same
// round, with a plain virsh script doing the same libvirt work from the
// same XML, 8 VMs at a time and all at once (bench-virsh.sh); who goes first
// turns round between rounds. It prints each
// figure's min/median/max, the ratios per round, and the CPU time hpcvm
// (Temporal server, worker, CLI) and virsh used, which competes with QEMU
// for the machine's cores, and per round where the hpcvm runs' time went.
//
//	go test -run '^$' -bench StartDestroyVsVirsh -benchtime 5x ./e2e/
func BenchmarkStartDestroyVsVirsh(b *testing.B) {
	lv := dialLibvirt(b)
	// One Temporal server and one worker for the whole run, as an operator
	// has: a server per iteration would leave earlier ones running and
	// competing for the CPU with the hypervisor.
	hb := newBenchEnv(b)
	for _, computes := range []int{7, 31} {
		b.Run(fmt.Sprintf("1+%d", computes), func(b *testing.B) {
			hb.computes = computes
			var f benchFigures
			c := hb.ts.GetDefaultClient()
			for i := 0; i < b.N; i++ {
				// Who goes first turns round: the first of a round finds
				// the machine quieter (and its page cache colder).
				contenders := []func() []figure{
					func() []figure { return hb.hpcvmRound(b) },
					func() []figure { return hb.virshRound(b, lv, 8) },
				}
				allAtOnce := computes+1 > 8 // else the 8-way script does them all at once
				if allAtOnce {
					contenders = append(contenders, func() []figure { return hb.virshRound(b, lv, computes+1) })
				}
				for k := range contenders {
					f.add(contenders[(i+k)%len(contenders)]())
				}
				var why []string // where the hpcvm runs' time went
				for _, op := range []string{api.StartClusterName, api.DestroyClusterName} {
					rf := historyFigures(b, c, api.WorkflowID(hb.cluster), op)
					why = append(why, fmt.Sprintf("%s: slowest step %s, longest wait for the worker %s, %d retried",
						op, rf.slowest, rf.maxWait.Round(time.Millisecond), rf.retried))
					for _, r := range rf.retries {
						why = append(why, "  retried: "+r)
					}
				}
				ratios := fmt.Sprintf("start %.2f destroy %.2f", f.last("hpcvm start")/f.last("virsh start"), f.last("hpcvm destroy")/f.last("virsh destroy"))
				if allAtOnce {
					ratios += fmt.Sprintf(" (against all at once: start %.2f destroy %.2f)",
						f.last("hpcvm start")/f.last("virsh-all start"), f.last("hpcvm destroy")/f.last("virsh-all destroy"))
				}
				f.ratios = append(f.ratios, ratios+"\n    "+strings.Join(why, "\n    "))
			}
			// Printed, not logged: go test cuts a benchmark's log short.
			fmt.Printf("\n1 + %d VMs, %d rounds:\n%s\n", computes, b.N, f.String())
			b.ReportMetric(f.median("hpcvm start"), "hpcvm-start-s")
			b.ReportMetric(f.median("virsh start"), "virsh-start-s")
			b.ReportMetric(f.median("hpcvm start")/f.median("virsh start"), "start-ratio")
			b.ReportMetric(f.median("hpcvm destroy"), "hpcvm-destroy-s")
			b.ReportMetric(f.median("virsh destroy"), "virsh-destroy-s")
			b.ReportMetric(f.median("hpcvm destroy")/f.median("virsh destroy"), "destroy-ratio")
			if computes+1 > 8 {
				b.ReportMetric(f.median("hpcvm start")/f.median("virsh-all start"), "start-ratio-all")
				b.ReportMetric(f.median("hpcvm destroy")/f.median("virsh-all destroy"), "destroy-ratio-all")
			}
		})
	}
}

// benchFigures collects named figures over the rounds of a benchmark.
type benchFigures struct {
	names  []string
	values map[string][]float64
	ratios []string
}

func (f *benchFigures) add(figures []figure) {
	if f.values == nil {
		f.values = map[string][]float64{}
	}
	for _, fg := range figures {
		if _, ok := f.values[fg.name]; !ok {
			f.names = append(f.names, fg.name)
		}
		f.values[fg.name] = append(f.values[fg.name], fg.value)
	}
}

func (f *benchFigures) last(name string) float64 {
	v := f.values[name]
	return v[len(v)-1]
}

func (f *benchFigures) median(name string) float64 {
	v := append([]float64(nil), f.values[name]...)
	sort.Float64s(v)
	return v[len(v)/2]
}

func (f *benchFigures) String() string {
	var out strings.Builder
	fmt.Fprintf(&out, "%-22s %8s %8s %8s\n", "figure (s)", "min", "median", "max")
	for _, n := range f.names {
		v := append([]float64(nil), f.values[n]...)
		sort.Float64s(v)
		fmt.Fprintf(&out, "%-22s %8.2f %8.2f %8.2f\n", n, v[0], v[len(v)/2], v[len(v)-1])
	}
	for i, r := range f.ratios {
		fmt.Fprintf(&out, "round %d: %s\n", i+1, r)
	}
	return out.String()
}

type figure struct {
	name  string
	value float64
}

// cpuSeconds is the CPU time this process (the Temporal server and the
// worker of the benchmark) and its waited-for children (the CLI, virsh)
// have used so far.
func cpuSeconds() (self, children float64) {
	var ru syscall.Rusage
	sec := func(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = sec(ru.Utime) + sec(ru.Stime)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return self, sec(ru.Utime) + sec(ru.Stime)
}

// hpcvmRound starts and destroys a cluster of its own with the CLI.
func (be *benchEnv) hpcvmRound(b testing.TB) []figure {
	be.cluster = "e2e-" + randomSuffix()
	be.writeBenchConfig()
	var out []figure
	for _, op := range []string{"start", "destroy"} {
		args := []string{op}
		if op == "destroy" {
			args = append(args, "--yes")
		}
		self, children := cpuSeconds()
		code, text := be.hpcvm(args...)
		require.Equal(b, cli.ExitOK, code, text)
		self2, children2 := cpuSeconds()
		out = append(out, figure{"hpcvm " + op, be.last[op].Seconds()}, figure{"hpcvm " + op + " cpu", self2 - self + children2 - children})
	}
	return out
}

// virshRound does the same libvirt work with bench-virsh.sh, parallel VMs at
// a time: 8 is the baseline the targets name ("virsh"); all of them at once
// ("virsh-all") is the libvirt work with no orchestration at all, the floor
// of what any tool driving this libvirtd can reach.
func (be *benchEnv) virshRound(b *testing.B, lv *libvirt.Client, parallel int) []figure {
	who := "virsh"
	if parallel > 8 {
		who = "virsh-all"
	}
	spec, err := cluster.Load(be.config)
	require.NoError(b, err)
	spec.Cluster.Name = "bv" + randomSuffix()
	spec.Network.BridgeName = ""
	plan, err := cluster.NewPlan(spec)
	require.NoError(b, err)
	facts, err := lv.HostFacts()
	require.NoError(b, err)
	require.NoError(b, plan.Negotiate(spec, cluster.HostCapabilities{Arch: facts.Arch, KVMUsable: facts.KVMUsable, Emulator: facts.Emulator, MachineTypes: facts.MachineTypes}))
	dir := b.TempDir()
	writeVirshInputs(b, dir, plan, be.image)
	var out []figure
	for _, mode := range []string{"up", "down"} {
		_, children := cpuSeconds()
		began := time.Now()
		runScript(b, mode, dir, parallel)
		took := time.Since(began)
		_, children2 := cpuSeconds()
		op := map[string]string{"up": "start", "down": "destroy"}[mode]
		out = append(out, figure{who + " " + op, took.Seconds()}, figure{who + " " + op + " cpu", children2 - children})
		if mode == "up" {
			for _, vm := range plan.VMs { // the baseline really did the work
				st, err := lv.DomainState(vm.Domain)
				require.NoError(b, err)
				require.Equal(b, "running", string(st), "virsh baseline: %s", vm.Domain)
			}
		}
	}
	return out
}

func runScript(b *testing.B, mode, dir string, parallel int) {
	cmd := exec.Command("bash", "../scripts/bench-virsh.sh", mode, dir, libvirtURI())
	cmd.Env = append(os.Environ(), fmt.Sprintf("PARALLEL=%d", parallel))
	out, err := cmd.CombinedOutput()
	require.NoError(b, err, "%s", out)
}

func writeVirshInputs(b *testing.B, dir string, plan cluster.Plan, image string) {
	write := func(name, content string) {
		require.NoError(b, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	x, err := templates.Network(plan)
	require.NoError(b, err)
	write("network.xml", x)
	x, err = templates.Pool(plan)
	require.NoError(b, err)
	write("pool.xml", x)
	format, virtual, _, err := libvirt.InspectImage(image)
	require.NoError(b, err)
	x, err = templates.BaseImage(plan, format, virtual)
	require.NoError(b, err)
	write("base.xml", x)
	require.NoError(b, os.Symlink(image, filepath.Join(dir, "base.img")))
	var names []string
	for _, vm := range plan.VMs {
		names = append(names, vm.Name)
		x, err = templates.VMVolume(plan, vm, format)
		require.NoError(b, err)
		write(vm.Name+"-volume.xml", x)
		x, err = templates.Domain(plan, vm, format)
		require.NoError(b, err)
		write(vm.Name+"-domain.xml", x)
	}
	write("vms", strings.Join(names, "\n")+"\n")
}

// benchEnv is env for benchmarks: its own Temporal server and worker.
type benchEnv struct {
	*env
	image    string
	computes int // compute nodes of the bench cluster
	memoryMB int // of each VM
	last     map[string]time.Duration
}

func newBenchEnv(b testing.TB) *benchEnv {
	e := newEnv(b)
	e.startWorker()
	img := filepath.Join(e.poolRoot, "blank.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "1G").CombinedOutput()
	require.NoError(b, err, "%s", out)
	return &benchEnv{env: e, image: img, computes: 7, memoryMB: 128, last: map[string]time.Duration{}}
}

func (be *benchEnv) writeBenchConfig() {
	var nodes strings.Builder
	for i := 1; i <= be.computes; i++ {
		fmt.Fprintf(&nodes, "  - {name: compute-%02d, memory_mb: %d, cpu_cores: 1, disk_size_gb: 1}\n", i, be.memoryMB)
	}
	octet := 200 + int(be.cluster[len(be.cluster)-1])%50
	yaml := fmt.Sprintf(`cluster:
  name: %s
  host: %s
  storage: {pool_path: %s, base_image: %s}
network: {network_range: 10.%d.%d.0/24}
controller: {count: 1, memory_mb: %d, cpu_cores: 1, disk_size_gb: 1}
compute_nodes:
%s`, be.cluster, be.host, be.poolRoot, be.image, octet, int(be.cluster[len(be.cluster)-2]), be.memoryMB, nodes.String())
	be.config = filepath.Join(be.poolRoot, "cluster.yaml")
	require.NoError(be.t, os.WriteFile(be.config, []byte(yaml), 0o644))
}

func (be *benchEnv) hpcvm(args ...string) (int, string) {
	began := time.Now()
	code, out := be.env.hpcvm(args...)
	be.last[args[0]] = time.Since(began)
	return code, out
}
