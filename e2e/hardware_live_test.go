package e2e

// The hardware hpcvm plans, seen where it really lands: in the running
// domain's live XML and in the QEMU process on this host (its threads'
// CPU affinity, its memory mappings), with the guest agent of the test
// guest answering for real.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// blankImage writes an empty qcow2 base image: a guest with nothing to
// boot, which runs (in its firmware) under KVM and TCG alike.
func (e *env) blankImage() string {
	img := filepath.Join(e.poolRoot, "blank.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "64M").CombinedOutput()
	require.NoError(e.t, err, "%s", out)
	return img
}

// withHardware replaces the harness's `enable_kvm: false` line of
// cluster.yaml by the given acceleration settings.
func (e *env) withHardware(acceleration string) {
	cfg := readFile(e.t, e.config)
	require.Contains(e.t, cfg, "      enable_kvm: false\n")
	writeFile(e.t, e.config, strings.Replace(cfg, "      enable_kvm: false\n", acceleration, 1))
}

// liveDomain is the running domain's XML as libvirt has it now.
func liveDomain(t *testing.T, name string) libvirtxml.Domain {
	t.Helper()
	var d libvirtxml.Domain
	require.NoError(t, d.Unmarshal(virsh(t, "dumpxml", name)))
	return d
}

// qemuPID is the PID of the QEMU process that runs the domain.
func qemuPID(t *testing.T, domain string) string {
	t.Helper()
	pid := strings.TrimSpace(readFile(t, "/var/run/libvirt/qemu/"+domain+".pid"))
	comm, err := os.ReadFile("/proc/" + pid + "/comm")
	require.NoError(t, err, "the QEMU of %s (pid %s) runs", domain, pid)
	require.Contains(t, string(comm), "qemu", "pid %s of %s is QEMU", pid, domain)
	return pid
}

// vcpuThreads maps each vCPU of a QEMU process to its thread's name
// ("CPU 0/KVM" or "CPU 0/TCG": libvirt runs QEMU with debug-threads=on)
// and the host CPUs the kernel lets it run on (Cpus_allowed_list).
func vcpuThreads(t *testing.T, pid string) map[int][2]string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + pid + "/task/*")
	require.NoError(t, err)
	name := regexp.MustCompile(`^CPU (\d+)/(KVM|TCG)$`)
	allowed := regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)$`)
	out := map[int][2]string{}
	for _, task := range tasks {
		comm, err := os.ReadFile(task + "/comm")
		if err != nil {
			continue // a thread that ended meanwhile
		}
		m := name.FindStringSubmatch(strings.TrimSpace(string(comm)))
		if m == nil {
			continue
		}
		status, err := os.ReadFile(task + "/status")
		require.NoError(t, err)
		a := allowed.FindStringSubmatch(string(status))
		require.NotNil(t, a, "%s/status has Cpus_allowed_list", task)
		n, _ := strconv.Atoi(m[1])
		out[n] = [2]string{m[0], a[1]}
	}
	return out
}

// With enable_kvm true, a cluster runs under KVM where this host has
// /dev/kvm (the domain type, QEMU's accelerator), and under TCG, with
// the note saying so, where it has not. With cpu_pinning, each vCPU is
// pinned to a host CPU of its own in the live XML, and QEMU's vCPU thread
// really is bound to that CPU. The guests have a blank disk: a Linux
// guest may hang in early boot under nested KVM, firmware does not.
func TestKVMWhereAvailableAndPinnedVCPUs(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{baseImage: e.blankImage()})
	e.withHardware("      enable_kvm: true\n      performance: {cpu_pinning: true}\n")
	e.startWorker()
	e.mustLeaveNothing()
	_, err := os.Stat("/dev/kvm")
	kvm := err == nil
	require.GreaterOrEqual(t, runtime.NumCPU(), 2, "two VMs of one vCPU each are pinned to host CPUs of their own")

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "note: cpu_pinning: 2 vCPUs pinned to host CPUs of their own")
	wantType, wantAccel := "qemu", "-accel tcg"
	if kvm {
		wantType, wantAccel = "kvm", "-accel kvm"
		assert.Contains(t, out, ", KVM): created")
		assert.NotContains(t, out, "TCG")
	} else {
		assert.Contains(t, out, ", TCG emulation): created")
		assert.Contains(t, out, "note: cluster.hardware.acceleration.enable_kvm is true, but KVM is not usable on this host (no usable /dev/kvm): the VMs run under QEMU's TCG emulation")
	}

	pinned := map[string]string{} // host CPU → VM
	for _, vm := range []string{"controller-01", "compute-01"} {
		domain := e.cluster + "-" + vm
		d := liveDomain(t, domain)
		assert.Equal(t, wantType, d.Type, vm)
		pid := qemuPID(t, domain)
		cmdline := strings.ReplaceAll(readFile(t, "/proc/"+pid+"/cmdline"), "\x00", " ")
		assert.Contains(t, cmdline, wantAccel, vm)

		require.NotNil(t, d.CPUTune, "%s: the live XML has <cputune>", vm)
		require.Len(t, d.CPUTune.VCPUPin, 1, vm)
		pin := d.CPUTune.VCPUPin[0]
		assert.Equal(t, uint(0), pin.VCPU, vm)
		host, err := strconv.Atoi(pin.CPUSet)
		require.NoError(t, err, "%s: vCPU 0 is pinned to one host CPU, not %q", vm, pin.CPUSet)
		assert.Less(t, host, runtime.NumCPU(), vm)
		assert.NotContains(t, pinned, pin.CPUSet, "%s shares host CPU %s with %s", vm, pin.CPUSet, pinned[pin.CPUSet])
		pinned[pin.CPUSet] = vm

		threads := vcpuThreads(t, pid)
		require.Contains(t, threads, 0, "%s: QEMU pid %s has a vCPU thread", vm, pid)
		thread := threads[0]
		suffix := "/TCG"
		if kvm {
			suffix = "/KVM"
		}
		assert.True(t, strings.HasSuffix(thread[0], suffix), "%s: thread %q", vm, thread[0])
		assert.Equal(t, pin.CPUSet, thread[1], "%s: QEMU's %q thread runs only on the pinned host CPU", vm, thread[0])
		t.Logf("%s: domain type %s (%s), vCPU 0 pinned to host CPU %s; QEMU pid %s thread %q has Cpus_allowed_list %s",
			vm, d.Type, wantAccel, pin.CPUSet, pid, thread[0], thread[1])
	}

	// A guest QEMU stops (as nested KVM's emulation failure does; here
	// suspended by hand) is not "running": status says the cluster is
	// degraded and names it, and a start does not count it as started.
	virsh(t, "suspend", e.cluster+"-compute-01")
	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Status: degraded (compute-01 paused")
	code, out = e.hpcvm("start")
	assert.NotEqual(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "domain "+e.cluster+"-compute-01 is paused (reason: paused by a user) (it was started before this run), not running")
	assert.Contains(t, out, "if the host's KVM is nested", "a KVM guest that stops may be nested KVM's doing")
	virsh(t, "resume", e.cluster+"-compute-01")
}

// hugepages2M is the sysfs directory of the host's 2 MiB hugepages.
const hugepages2M = "/sys/kernel/mm/hugepages/hugepages-2048kB"

func readCount(t *testing.T, path string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(strings.TrimSpace(readFile(t, path)), 10, 64)
	require.NoError(t, err, path)
	return n
}

// reserveHugepages makes sure the host has at least need free 2 MiB
// hugepages, reserving only what is missing, and gives them back when the
// test ends (also when it fails). It returns how many are free: what the
// kernel really gave, which may be less than asked when memory is
// fragmented (then the test fails, saying so).
func reserveHugepages(t *testing.T, need uint64) uint64 {
	t.Helper()
	total := filepath.Join(hugepages2M, "nr_hugepages")
	before := readCount(t, total)
	free := readCount(t, filepath.Join(hugepages2M, "free_hugepages"))
	if free < need {
		// Registered before anything is reserved: given back whatever
		// happens next. Cleanups run in reverse, so the cluster's destroy
		// (registered later) frees the pages first.
		t.Cleanup(func() {
			if err := os.WriteFile(total, []byte(strconv.FormatUint(before, 10)), 0o644); err != nil {
				t.Errorf("giving the hugepages back (%s to %d): %v", total, before, err)
			}
			t.Logf("2M hugepages given back: nr_hugepages %d (was %d before the test)", readCount(t, total), before)
		})
		require.NoError(t, os.WriteFile(total, []byte(strconv.FormatUint(before+need-free, 10)), 0o644))
	}
	got := readCount(t, filepath.Join(hugepages2M, "free_hugepages"))
	t.Logf("2M hugepages: nr_hugepages %d → %d, free %d (%d needed)", before, readCount(t, total), got, need)
	require.GreaterOrEqual(t, got, need, "the kernel gave only %d free 2M hugepages of the %d asked (memory too fragmented?)", got, need)
	return got
}

// hugepageMapping finds the guest RAM of a QEMU process among its
// mappings (/proc/PID/smaps): the one of the guest's size in pages of
// 2048 kB. It returns the mapping's header line.
func hugepageMapping(t *testing.T, pid string, sizeKiB int) string {
	t.Helper()
	header := ""
	size := regexp.MustCompile(`^Size:\s+(\d+) kB$`)
	var mapSize int
	for _, l := range strings.Split(readFile(t, "/proc/"+pid+"/smaps"), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			header, mapSize = l, 0
			continue
		}
		if m := size.FindStringSubmatch(l); m != nil {
			mapSize, _ = strconv.Atoi(m[1])
		}
		if strings.HasPrefix(l, "KernelPageSize:") && strings.Fields(l)[1] == "2048" && mapSize == sizeKiB {
			return header
		}
	}
	t.Fatalf("QEMU pid %s maps no %d kB of 2048 kB pages:\n%s", pid, sizeKiB, readFile(t, "/proc/"+pid+"/numa_maps"))
	return ""
}

// A cluster with 2M hugepages starts on pages the test reserves, and
// QEMU's guest RAM really is those pages: its mapping has a 2048 kB page
// size, and the host's free count dropped by exactly the VMs' memory.
// First with memory_backing memfd (memfd hugepages, no hugetlbfs mount
// needed), then with the default backing (a file on libvirt's hugetlbfs,
// which libvirtd finds only if one was mounted before it started).
func TestHugepageBackedVMsTakeTheReservedPages(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{baseImage: e.blankImage()})
	e.startWorker()
	const vmMiB = 128 // each of controller-01 and compute-01
	need := uint64(2 * vmMiB / 2)
	reserveHugepages(t, need)
	e.mustLeaveNothing()
	spec := readFile(t, e.config)

	for _, backing := range []struct{ name, settings, backend string }{
		{"memfd", "{enable_hugepages: true, hugepage_size: 2M, memory_backing: memfd}", `"hugetlb":true`},
		// A file on hugetlbfs: -object memory-backend-file or -mem-path,
		// as libvirt's version has it.
		{"hugetlbfs", "{enable_hugepages: true, hugepage_size: 2M}", "mem-path"},
	} {
		t.Run(backing.name, func(t *testing.T) {
			writeFile(t, e.config, spec)
			e.withHardware("      enable_kvm: false\n      performance: " + backing.settings + "\n")
			// Whatever happens, the next backing starts from nothing.
			t.Cleanup(func() {
				if code, out := e.hpcvm("destroy", "--yes"); code != cli.ExitOK {
					t.Errorf("destroy after the %s backing: %s", backing.name, out)
				}
			})
			freeBefore := readCount(t, filepath.Join(hugepages2M, "free_hugepages"))
			code, out := e.hpcvm("start")
			require.Equal(t, cli.ExitOK, code, out)
			freeAfter := readCount(t, filepath.Join(hugepages2M, "free_hugepages"))
			assert.Equal(t, need, freeBefore-freeAfter, "the VMs took %d MiB in 2M pages (free %d → %d)", 2*vmMiB, freeBefore, freeAfter)
			t.Logf("%s backing: free 2M hugepages %d → %d", backing.name, freeBefore, freeAfter)

			for _, vm := range []string{"controller-01", "compute-01"} {
				domain := e.cluster + "-" + vm
				d := liveDomain(t, domain)
				require.NotNil(t, d.MemoryBacking, vm)
				require.NotNil(t, d.MemoryBacking.MemoryHugePages, "%s: the live XML has <hugepages>", vm)
				require.Len(t, d.MemoryBacking.MemoryHugePages.Hugepages, 1, vm)
				page := d.MemoryBacking.MemoryHugePages.Hugepages[0]
				assert.Equal(t, "2048 KiB", fmt.Sprintf("%d %s", page.Size, page.Unit), vm)
				pid := qemuPID(t, domain)
				cmdline := strings.ReplaceAll(readFile(t, "/proc/"+pid+"/cmdline"), "\x00", " ")
				assert.Contains(t, cmdline, backing.backend, vm)
				mapping := hugepageMapping(t, pid, vmMiB<<10)
				if backing.name == "memfd" {
					assert.Contains(t, mapping, "/memfd:", vm)
				} else {
					assert.Contains(t, mapping, "/libvirt/qemu/", "%s: guest RAM is a file on libvirt's hugetlbfs", vm)
				}
				t.Logf("%s backing, %s: QEMU pid %s guest RAM in 2048 kB pages: %s", backing.name, vm, pid, mapping)
			}

			code, out = e.hpcvm("destroy", "--yes")
			require.Equal(t, cli.ExitOK, code, out)
			assert.Equal(t, freeBefore, readCount(t, filepath.Join(hugepages2M, "free_hugepages")), "destroy gave the pages back")
		})
	}
}

// agentCommand runs a guest agent command through libvirt and returns its
// "return" value.
func agentCommand(t *testing.T, domain string, cmd map[string]any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(cmd)
	require.NoError(t, err)
	out := virsh(t, "qemu-agent-command", domain, string(raw))
	var answer struct {
		Return json.RawMessage `json:"return"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &answer), out)
	return answer.Return
}

// The test guest runs Debian's qemu-ga on the virtio-serial channel hpcvm
// gives every domain. An address that only the agent knows (added inside
// the guest, outside the DHCP range, so not in the network's lease table)
// reaches `hpcvm status`: the agent path works end to end.
func TestGuestAgentAddressReachesStatus(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start", "--wait-ip")
	require.Equal(t, cli.ExitOK, code, out)
	domain := e.cluster + "-compute-01"

	// hpcvm's definition carries the agent's channel; once the agent in
	// the guest opened it, libvirt marks it connected.
	var def libvirtxml.Domain
	require.NoError(t, def.Unmarshal(virsh(t, "dumpxml", "--inactive", domain)))
	var channels []string
	for _, ch := range def.Devices.Channels {
		if ch.Target != nil && ch.Target.VirtIO != nil {
			channels = append(channels, ch.Target.VirtIO.Name)
		}
	}
	assert.Equal(t, []string{"org.qemu.guest_agent.0"}, channels)
	state := ""
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, ch := range liveDomain(t, domain).Devices.Channels {
			if ch.Target != nil && ch.Target.VirtIO != nil && ch.Target.VirtIO.Name == "org.qemu.guest_agent.0" {
				state = ch.Target.VirtIO.State
			}
		}
		if state == "connected" {
			break
		}
	}
	require.Equal(t, "connected", state, "the guest agent of %s connected to its channel", domain)

	// An address from below the DHCP range (.10 up), given to eth0 by the
	// agent itself.
	planned, err := e.plannedIP("compute-01")
	require.NoError(t, err)
	extra := planned[:strings.LastIndex(planned, ".")] + ".5"
	var started struct {
		PID int `json:"pid"`
	}
	require.NoError(t, json.Unmarshal(agentCommand(t, domain, map[string]any{"execute": "guest-exec",
		"arguments": map[string]any{"path": "/bin/ip", "arg": []string{"addr", "add", extra + "/24", "dev", "eth0"}, "capture-output": true}}), &started))
	var done struct {
		Exited   bool   `json:"exited"`
		ExitCode int    `json:"exitcode"`
		Err      string `json:"err-data"`
	}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && !done.Exited; time.Sleep(200 * time.Millisecond) {
		require.NoError(t, json.Unmarshal(agentCommand(t, domain, map[string]any{"execute": "guest-exec-status", "arguments": map[string]any{"pid": started.PID}}), &done))
	}
	require.True(t, done.Exited, "ip addr add in the guest ended")
	require.Equal(t, 0, done.ExitCode, "ip addr add %s in the guest: %s", extra, done.Err)
	assert.NotContains(t, virsh(t, "net-dhcp-leases", e.cluster+"-network"), extra, "the DHCP server does not know the agent's address")

	var st cli.Status
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		code, out = e.hpcvm("status", "-o", "json")
		require.Equal(t, cli.ExitOK, code, out)
		// The JSON on standard output; any warning follows it.
		require.NoError(t, json.NewDecoder(strings.NewReader(out)).Decode(&st), out)
		if vm := statusVM(st, "compute-01"); vm != nil && len(vm.LiveIPs) > 1 {
			break
		}
	}
	vm := statusVM(st, "compute-01")
	require.NotNil(t, vm, out)
	assert.ElementsMatch(t, []string{planned, extra}, vm.LiveIPs, "compute-01 holds its DHCP lease and the address only its agent reports")
	t.Logf("compute-01 (%s): live addresses %v; DHCP leased %s, the guest agent reported %s too", vm.MAC, vm.LiveIPs, planned, extra)

	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, planned+" (live "+strings.Join(vm.LiveIPs, ", ")+")")
}

func statusVM(st cli.Status, name string) *cli.VMStatus {
	for i := range st.VMs {
		if st.VMs[i].Name == name {
			return &st.VMs[i]
		}
	}
	return nil
}
