package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/libvirt"
	"github.com/hpcvm/hpcvm/starter/cli"
	"github.com/hpcvm/hpcvm/templates"
	"github.com/stretchr/testify/require"
)

// BenchmarkStartDestroyVsVirsh starts and destroys a 1 controller + 7
// compute cluster (128 MiB, blank 16 MiB-file base image) with hpcvm (CLI,
// real Temporal, real worker) and, in the same run, with a plain parallel
// virsh script doing the same libvirt work from the same XML. It reports
// both times and their ratio; the target is a ratio of at most 1.3.
//
//	go test -run '^$' -bench StartDestroyVsVirsh -benchtime 3x ./e2e/
func BenchmarkStartDestroyVsVirsh(b *testing.B) {
	lv := dialLibvirt(b)
	// One Temporal server and one worker for the whole run, as an operator
	// has: a server per iteration would leave earlier ones running and
	// competing for the CPU with the hypervisor.
	hb := newBenchEnv(b)
	var hpStart, hpDestroy, shStart, shDestroy time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// hpcvm, on a cluster of its own each time
		hb.cluster = "e2e-" + randomSuffix()
		hb.writeBenchConfig()
		code, out := hb.hpcvm("start")
		require.Equal(b, cli.ExitOK, code, out)
		code, out = hb.hpcvm("destroy", "--yes")
		require.Equal(b, cli.ExitOK, code, out)
		hpStart += hb.last["start"]
		hpDestroy += hb.last["destroy"]

		// the same work, by virsh
		spec, err := cluster.Load(hb.config)
		require.NoError(b, err)
		spec.Cluster.Name = "bv" + randomSuffix()
		spec.Network.BridgeName = ""
		plan, err := cluster.NewPlan(spec)
		require.NoError(b, err)
		facts, err := lv.HostFacts()
		require.NoError(b, err)
		require.NoError(b, plan.Negotiate(spec, cluster.HostCapabilities{Arch: facts.Arch, KVMUsable: facts.KVMUsable, Emulator: facts.Emulator, MachineTypes: facts.MachineTypes}))
		dir := b.TempDir()
		writeVirshInputs(b, dir, plan, hb.image)
		began := time.Now()
		runScript(b, "up", dir)
		shStart += time.Since(began)
		for _, vm := range plan.VMs { // the baseline really did the work
			st, err := lv.DomainState(vm.Domain)
			require.NoError(b, err)
			require.Equal(b, "running", string(st), "virsh baseline: %s", vm.Domain)
		}
		began = time.Now()
		runScript(b, "down", dir)
		shDestroy += time.Since(began)
	}
	n := float64(b.N)
	b.ReportMetric(hpStart.Seconds()/n, "hpcvm-start-s")
	b.ReportMetric(shStart.Seconds()/n, "virsh-start-s")
	b.ReportMetric(hpStart.Seconds()/shStart.Seconds(), "start-ratio")
	b.ReportMetric(hpDestroy.Seconds()/n, "hpcvm-destroy-s")
	b.ReportMetric(shDestroy.Seconds()/n, "virsh-destroy-s")
	b.ReportMetric(hpDestroy.Seconds()/shDestroy.Seconds(), "destroy-ratio")
}

func runScript(b *testing.B, mode, dir string) {
	out, err := exec.Command("bash", "../scripts/bench-virsh.sh", mode, dir, libvirtURI()).CombinedOutput()
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
		x, err = templates.Domain(plan, vm)
		require.NoError(b, err)
		write(vm.Name+"-domain.xml", x)
	}
	write("vms", strings.Join(names, "\n")+"\n")
}

// benchEnv is env for benchmarks: its own Temporal server and worker.
type benchEnv struct {
	*env
	image string
	last  map[string]time.Duration
}

func newBenchEnv(b *testing.B) *benchEnv {
	e := newEnv(b)
	e.startWorker()
	img := filepath.Join(e.poolRoot, "blank.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "1G").CombinedOutput()
	require.NoError(b, err, "%s", out)
	return &benchEnv{env: e, image: img, last: map[string]time.Duration{}}
}

func (be *benchEnv) writeBenchConfig() {
	var nodes strings.Builder
	for i := 1; i <= 7; i++ {
		fmt.Fprintf(&nodes, "  - {name: compute-%02d, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n", i)
	}
	octet := 200 + int(be.cluster[len(be.cluster)-1])%50
	yaml := fmt.Sprintf(`cluster:
  name: %s
  host: %s
  storage: {pool_path: %s, base_image: %s}
network: {network_range: 10.%d.%d.0/24}
controller: {count: 1, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}
compute_nodes:
%s`, be.cluster, be.host, be.poolRoot, be.image, octet, int(be.cluster[len(be.cluster)-2]), nodes.String())
	be.config = filepath.Join(be.poolRoot, "cluster.yaml")
	require.NoError(be.t, os.WriteFile(be.config, []byte(yaml), 0o644))
}

func (be *benchEnv) hpcvm(args ...string) (int, string) {
	began := time.Now()
	code, out := be.env.hpcvm(args...)
	be.last[args[0]] = time.Since(began)
	return code, out
}
