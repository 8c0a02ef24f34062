// Package e2e runs hpcvm end to end: the real hpcvm CLI code, a real
// in-process Temporal server (temporaltest), the real worker, and the real
// libvirtd + QEMU of this machine (started in a network namespace by
// scripts/libvirtd-up.sh). Nothing here is mocked; a missing libvirtd fails
// the tests instead of skipping them.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/devserver/serverconfig"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/trace"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
)

func libvirtURI() string {
	if u := os.Getenv("HPCVM_TEST_LIBVIRT_URI"); u != "" {
		return u
	}
	return "qemu:///system"
}

func dialLibvirt(t testing.TB) *libvirt.Client {
	t.Helper()
	lv, err := libvirt.Dial(libvirtURI())
	require.NoError(t, err, "libvirtd must be running for the end-to-end tests: run scripts/libvirtd-up.sh (make test does)")
	t.Cleanup(func() { _ = lv.Close() })
	return lv
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	imageOnce sync.Once
	imagePath string
	imageErr  error
)

// testImage builds the bootable test guest once per machine: a kernel and a
// busybox initramfs that takes its DHCP lease, runs the QEMU guest agent
// and powers off on ACPI.
func testImage(t testing.TB) string {
	t.Helper()
	imageOnce.Do(func() {
		// Named by what it is built from: a change to the guest rebuilds it.
		h := sha256.New()
		sources, _ := filepath.Glob("../scripts/testimage/*")
		for _, f := range append([]string{"../scripts/make-test-image.sh"}, sources...) {
			b, err := os.ReadFile(f)
			if err != nil {
				imageErr = err
				return
			}
			fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
			h.Write(b)
		}
		imagePath = fmt.Sprintf("/var/tmp/hpcvm-test-guest-%x.qcow2", h.Sum(nil)[:6])
		// Marked as used: another checkout's tests remove only images
		// that no test used for a day, never one a running test uploads.
		now := time.Now()
		if err := os.Chtimes(imagePath, now, now); err == nil {
			return
		}
		old, _ := filepath.Glob("/var/tmp/hpcvm-test-guest*.qcow2")
		for _, o := range old {
			if st, err := os.Stat(o); err == nil && now.Sub(st.ModTime()) > 24*time.Hour {
				_ = os.Remove(o)
			}
		}
		out, err := exec.Command("bash", "../scripts/make-test-image.sh", imagePath).CombinedOutput()
		if err != nil {
			imageErr = fmt.Errorf("building the test guest image: %v\n%s", err, out)
		}
	})
	require.NoError(t, imageErr)
	return imagePath
}

// testTemporal is the Temporal server a test talks to: the in-process
// temporaltest server, or a production-shaped one (prodtemporal_test.go).
type testTemporal interface {
	// GetDefaultClient is the client the test (and so the CLI's side)
	// uses in the test's namespace.
	GetDefaultClient() client.Client
	GetDefaultNamespace() string
	GetFrontendHostPort() string
}

// env is one test's world: a Temporal server, a worker for a unique host
// name, and a unique cluster whose leftovers are checked at the end.
type env struct {
	t  testing.TB
	ts testTemporal
	// workerClient is the in-process worker's client when it differs from
	// ts's (a certificate with other rights); nil: ts.GetDefaultClient().
	workerClient client.Client
	// cliConn and workerConn are the connection flags (TLS) the CLI and a
	// worker process add to --temporal-address and --namespace.
	cliConn, workerConn []string
	lv                  *libvirt.Client
	host                string
	cluster             string
	poolRoot            string
	config              string
}

func newEnv(t testing.TB) *env {
	lv := dialLibvirt(t)
	var ts *temporaltest.TestServer
	// The dev server's settings, so tests and benchmarks see what
	// `make run` gives an operator.
	config := temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(serverconfig.Dynamic()))
	if tt, ok := t.(*testing.T); ok {
		ts = temporaltest.NewServer(temporaltest.WithT(tt), config)
	} else { // a benchmark: temporaltest takes only *testing.T
		ts = temporaltest.NewServer(config)
		t.Cleanup(ts.Stop)
	}
	_, err := hostworker.EnsureSearchAttributes(context.Background(), ts.GetDefaultClient(), ts.GetDefaultNamespace())
	require.NoError(t, err)
	return newEnvOn(t, ts, lv)
}

// newEnvOn is a test's world on a Temporal server that is already there.
func newEnvOn(t testing.TB, ts testTemporal, lv *libvirt.Client) *env {
	suffix := randomSuffix()
	e := &env{t: t, ts: ts, lv: lv, host: "e2e-" + suffix, cluster: "e2e-" + suffix}
	root, err := os.MkdirTemp("/var/tmp", "hpcvm-e2e-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(root, 0o755)) // QEMU's user must reach the disks
	e.poolRoot = root
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	return e
}

// writeConfig writes cluster.yaml for a 1 controller + 2 compute cluster
// under TCG (Linux guests hang in early boot under nested KVM here);
// compute02CPUs sets compute-02's vCPUs ("" means 1).
func (e *env) writeConfig(compute02CPUs string) {
	cpus := 1
	if compute02CPUs != "" {
		n, err := strconv.Atoi(compute02CPUs)
		require.NoError(e.t, err)
		cpus = n
	}
	e.writeSpec(clusterFile{computes: []string{"compute-01", "compute-02"}, cpus: map[string]int{"compute-02": cpus}, leaseController: true})
}

// testNetns is the network namespace scripts/libvirtd-up.sh runs the test
// libvirtd in.
const testNetns = "hpcvm-test"

// auditLog is the host audit log of the test's workers (one for all the
// workers a test starts, as on a host).
func (e *env) auditLog() string { return filepath.Join(e.poolRoot, "host-changes.jsonl") }

// startWorker runs the host worker in-process, as hpcvm-worker does.
func (e *env) startWorker() worker.Worker { return e.startWorkerWith(func(*hostworker.Options) {}) }

// startWorkerWith is startWorker with options changed, e.g. a fixture sysfs.
func (e *env) startWorkerWith(change func(*hostworker.Options)) worker.Worker {
	o := hostworker.Options{Host: e.host,
		// The test image and the pools live under /var/tmp.
		ImageRoots: []string{"/var/tmp"}, PoolRoots: []string{"/var/tmp"}, ShareRoots: []string{"/var/tmp"}, DiscoveryRoots: []string{"/var/tmp"},
		// Host changes go where the test libvirtd's bridges are, never
		// into this machine's namespace; the audit log is the test's.
		Netns: testNetns, AuditLog: e.auditLog()}
	change(&o)
	c := e.workerClient
	if c == nil {
		c = e.ts.GetDefaultClient()
	}
	w := hostworker.New(c, e.lv, o)
	require.NoError(e.t, w.Start())
	e.t.Cleanup(w.Stop)
	return w
}

// hpcvm runs the CLI with the test server's address and returns its exit
// code and output.
func (e *env) hpcvm(args ...string) (int, string) {
	var out, errOut bytes.Buffer
	start := time.Now()
	code := cli.Main(e.cliArgs(args...), strings.NewReader(""), &out, &errOut)
	e.t.Logf("hpcvm %s → exit %d in %s\n%s%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), out.String(), errOut.String())
	return code, out.String() + errOut.String()
}

// cliArgs are the CLI's arguments for a command (args[0]) of the env's
// cluster, with the test server's address.
func (e *env) cliArgs(args ...string) []string {
	return append([]string{args[0], "-c", e.config, "--trace-dir", e.traceDir(),
		"--temporal-address", e.ts.GetFrontendHostPort(), "--namespace", e.ts.GetDefaultNamespace()}, append(e.cliConn, args[1:]...)...)
}

// traceDir is where the CLI run by e.hpcvm writes XML traces.
func (e *env) traceDir() string { return filepath.Join(e.poolRoot, "traces") }

// TestMain keeps the XML traces and inventories of the CLI runs made in
// tests (other than the traces of env.hpcvm) out of the source tree.
func TestMain(m *testing.M) {
	// Run inside the test namespace by hostResolve: one DNS question.
	if server := os.Getenv(resolveHelperEnv); server != "" {
		fmt.Println(resolveOnce(server, os.Args[len(os.Args)-1]))
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "hpcvm-e2e-traces-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("HPCVM_TRACE_DIR", dir)
	os.Setenv("HPCVM_INVENTORY", filepath.Join(dir, "inventory.ini"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// leftovers lists every libvirt object or file that still carries the
// cluster's name.
func (e *env) leftovers() []string {
	var left []string
	for _, cmd := range [][]string{
		{"list", "--all", "--name"}, {"net-list", "--all", "--name"}, {"pool-list", "--all", "--name"},
	} {
		out, err := exec.Command("virsh", append([]string{"-c", libvirtURI(), "-q"}, cmd...)...).Output()
		require.NoError(e.t, err)
		for _, name := range strings.Fields(string(out)) {
			if strings.Contains(name, e.cluster) {
				left = append(left, cmd[0]+": "+name)
			}
		}
	}
	// Host changes: the routing rules tagged with the cluster.
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("ip", "netns", "exec", testNetns, "iptables", "-w", "-t", table, "-S").Output()
		require.NoError(e.t, err)
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, `"hpcvm-routed:`+e.cluster+`"`) {
				left = append(left, "iptables "+table+": "+l)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(e.poolRoot, e.cluster)); err == nil {
		left = append(left, "directory "+filepath.Join(e.poolRoot, e.cluster))
	}
	return left
}

// mustLeaveNothing destroys the cluster at the end of a test whatever
// happened, so a failed test does not leak into the next.
func (e *env) mustLeaveNothing() {
	e.t.Cleanup(func() {
		if len(e.leftovers()) == 0 {
			return
		}
		code, out := e.hpcvm("destroy", "--yes")
		if code != 0 {
			e.t.Errorf("cleanup destroy failed: %s", out)
		}
		if left := e.leftovers(); len(left) > 0 {
			e.t.Errorf("left behind: %v", left)
		}
	})
}

func virsh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", libvirtURI()}, args...)...).CombinedOutput()
	require.NoError(t, err, "virsh %v: %s", args, out)
	return string(out)
}

// waitForLeases polls the cluster network's DHCP leases until n guests have
// one, and returns virsh's lease table.
func (e *env) waitForLeases(n int, deadline time.Duration) string {
	e.t.Helper()
	var out string
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		out = virsh(e.t, "net-dhcp-leases", e.cluster+"-network")
		if strings.Count(out, "ipv4") >= n {
			return out
		}
	}
	e.t.Fatalf("only %d of %d guests took a DHCP lease within %s:\n%s", strings.Count(out, "ipv4"), n, deadline, out)
	return out
}

// readTrace reads the trace_metadata.json of the trace folder a CLI run
// printed ("XML trace folder: DIR").
func (e *env) readTrace(out string) trace.Metadata {
	e.t.Helper()
	_, rest, found := strings.Cut(out, "XML trace folder: ")
	require.True(e.t, found, "the run printed no trace folder:\n%s", out)
	folder, _, _ := strings.Cut(rest, "\n")
	require.Equal(e.t, e.traceDir(), filepath.Dir(folder))
	raw, err := os.ReadFile(filepath.Join(folder, "trace_metadata.json"))
	require.NoError(e.t, err)
	var m trace.Metadata
	require.NoError(e.t, json.Unmarshal(raw, &m))
	require.Equal(e.t, folder, m.TraceFolder)
	m.TraceFolder = filepath.Base(folder)
	for _, name := range m.FileListing {
		_, err := os.Stat(filepath.Join(folder, name))
		require.NoError(e.t, err, "the metadata lists %s", name)
	}
	return m
}

// traceSequence is the sequence number of a trace's record.
func (e *env) traceSequence(m trace.Metadata, kind, op, target string) int {
	for _, r := range m.XMLOperations {
		if r.XMLType == kind && r.Operation == op && r.TargetName == target {
			return r.Sequence
		}
	}
	e.t.Fatalf("the trace has no %s %s of %s", op, kind, target)
	return 0
}

// stepSummaries are the summaries the steps of the cluster's newest run of
// workflow type op carry in its history, as the Web UI shows them.
func (e *env) stepSummaries(op string) []string {
	e.t.Helper()
	c := e.ts.GetDefaultClient()
	desc, err := c.DescribeWorkflowExecution(context.Background(), api.WorkflowID(e.cluster), "")
	require.NoError(e.t, err)
	require.Equal(e.t, op, desc.GetWorkflowExecutionInfo().GetType().GetName())
	it := c.GetWorkflowHistory(context.Background(), api.WorkflowID(e.cluster), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(e.t, err)
		if p := ev.GetUserMetadata().GetSummary(); p != nil && ev.GetActivityTaskScheduledEventAttributes() != nil {
			var s string
			require.NoError(e.t, converter.GetDefaultDataConverter().FromPayload(p, &s))
			out = append(out, s)
		}
	}
	return out
}

// progress is the steps of the cluster's latest run, as its progress
// query answers (a finished run answers too).
func (e *env) progress() []api.Step {
	e.t.Helper()
	v, err := e.ts.GetDefaultClient().QueryWorkflow(context.Background(), api.WorkflowID(e.cluster), "", api.ProgressQuery)
	require.NoError(e.t, err)
	var steps []api.Step
	require.NoError(e.t, v.Get(&steps))
	return steps
}

// plannedIP is the address the cluster's plan gives vm.
func (e *env) plannedIP(vm string) (string, error) {
	spec, err := cluster.Load(e.config)
	if err != nil {
		return "", err
	}
	plan, err := cluster.NewPlan(spec)
	if err != nil {
		return "", err
	}
	v, ok := plan.VM(vm)
	if !ok {
		return "", fmt.Errorf("the plan has no VM %s", vm)
	}
	return v.IP, nil
}

// ansibleInventoryList is `ansible-inventory -i file --list`, parsed: what
// Ansible makes of an inventory.
func ansibleInventoryList(t *testing.T, file string) map[string]any {
	t.Helper()
	cmd := exec.Command("ansible-inventory", "-i", file, "--list")
	cmd.Env = append(os.Environ(), "ANSIBLE_INVENTORY_UNPARSED_FAILED=true", "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_HOME="+t.TempDir())
	out, err := cmd.Output()
	require.NoError(t, err, "ansible-inventory -i %s: %v", file, err)
	var list map[string]any
	require.NoError(t, json.Unmarshal(out, &list), "%s", out)
	return list
}

// waitForRuns waits until Temporal's visibility lists at least n runs for
// query (it is updated a moment after a run changes) and returns their IDs.
func (e *env) waitForRuns(query string, n int) []string {
	e.t.Helper()
	c := e.ts.GetDefaultClient()
	var ids []string
	require.Eventually(e.t, func() bool {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		require.NoError(e.t, err, query)
		ids = nil
		for _, ex := range resp.GetExecutions() {
			ids = append(ids, ex.GetExecution().GetRunId())
		}
		return len(ids) >= n
	}, 15*time.Second, 200*time.Millisecond, "visibility lists %d run(s) for %s", n, query)
	return ids
}
