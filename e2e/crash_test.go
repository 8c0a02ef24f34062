package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/templates"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// buildWorker compiles hpcvm-worker once for the crash test, with the
// build tags given (the upgrade drill's releases).
func buildWorker(t testing.TB, tags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hpcvm-worker")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out, err := exec.Command("go", append(args, "../cmd/hpcvm-worker")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// startWorkerProcess runs hpcvm-worker as its own process, as on a host.
func (e *env) startWorkerProcess(bin string) *exec.Cmd {
	args := append([]string{"--temporal-address", e.ts.GetFrontendHostPort(), "--namespace", e.ts.GetDefaultNamespace(),
		"--host", e.host, "--libvirt-uri", libvirtURI(), "--log-level", "info",
		"--image-root", "/var/tmp", "--pool-root", "/var/tmp"}, e.workerConn...)
	cmd := exec.Command(bin, args...)
	log, err := os.Create(filepath.Join(e.poolRoot, "worker.log"))
	require.NoError(e.t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_, _ = cmd.Process.Wait()
		}
	})
	return cmd
}

func TestWorkerKilledMidStartResumes(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	bin := buildWorker(t)
	first := e.startWorkerProcess(bin)

	c := e.ts.GetDefaultClient()
	ctx := context.Background()
	run := e.submitStart(api.Options{})

	// Kill the worker as soon as the run is in the middle: the pool exists
	// but not every VM has been started yet.
	killedAt := waitForStep(t, c, run, "pool ")
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_, _ = first.Process.Wait()
	t.Logf("worker killed with -9 at: %+v", killedAt)
	var started int
	for _, s := range killedAt {
		if strings.HasPrefix(s.Name, "start ") && s.Status == api.StepDone {
			started++
		}
	}
	require.Less(t, started, 3, "the kill came before the run had started every VM")

	restarted := time.Now()
	second := e.startWorkerProcess(bin)
	getCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var res api.StartResult
	require.NoError(t, run.Get(getCtx, &res), "the run completes on the restarted worker")
	// How long the run took from the new worker's start: the time a crash
	// costs (a figure for the benchmarks, not a timed assertion).
	t.Logf("run finished %s after the new worker started", time.Since(restarted).Round(10*time.Millisecond))

	// The worker process names its version to the CLI.
	code, out := e.hpcvm("version")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "client: hpcvm ")
	assert.Contains(t, out, fmt.Sprintf("worker (host %s): hpcvm ", e.host))
	assert.Contains(t, out, fmt.Sprintf(", pid %d)", second.Process.Pid))
	// Without a file or --host: every host a cluster of the namespace is on.
	code, out = e.hpcvmBare("version")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, fmt.Sprintf("worker (host %s): hpcvm ", e.host))
	if os.Getenv("HPCVM_DUMP_HISTORY") != "" {
		it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			name := ""
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				name = a.GetActivityType().GetName()
			}
			t.Logf("%s %3d %-40s %s", ev.GetEventTime().AsTime().Sub(restarted).Round(10*time.Millisecond), ev.GetEventId(), ev.GetEventType(), name)
		}
	}

	// Nothing duplicated, nothing leaked: exactly the planned objects.
	domains, err := e.lv.ListDomains(templates.MetadataNamespace)
	require.NoError(t, err)
	var ours []string
	for _, d := range domains {
		if strings.HasPrefix(d.Name, e.cluster+"-") {
			ours = append(ours, d.Name)
			assert.Equal(t, "running", string(d.State), d.Name)
		}
	}
	assert.ElementsMatch(t, []string{e.cluster + "-controller-01", e.cluster + "-compute-01", e.cluster + "-compute-02"}, ours)
	vols, err := e.lv.ListVolumes(e.cluster + "-pool")
	require.NoError(t, err)
	var volNames []string
	for _, v := range vols {
		volNames = append(volNames, v.Name)
	}
	assert.ElementsMatch(t, []string{e.cluster + "-base.qcow2", "controller-01.qcow2", "compute-01.qcow2", "compute-02.qcow2"}, volNames)
	base, err := e.lv.LookupVolume(e.cluster+"-pool", e.cluster+"-base.qcow2")
	require.NoError(t, err)
	st, err := os.Stat(testImage(t))
	require.NoError(t, err)
	assert.Equal(t, uint64(st.Size()), base.Physical, "the base image arrived whole")

	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
	_ = second
}

// waitForStep polls the run's progress until a step whose name starts with
// prefix is done, and returns the progress at that moment.
func waitForStep(t *testing.T, c client.Client, run client.WorkflowRun, prefix string) []api.Step {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		v, err := c.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), api.ProgressQuery)
		if err != nil {
			continue
		}
		var steps []api.Step
		require.NoError(t, v.Get(&steps))
		for _, s := range steps {
			if strings.HasPrefix(s.Name, prefix) && s.Status == api.StepDone {
				return steps
			}
		}
	}
	t.Fatalf("the run never finished a step %q...", prefix)
	return nil
}

// submitStart submits StartCluster for the env's cluster as the CLI does,
// without following it, so a test can act while it runs.
func (e *env) submitStart(opts api.Options) client.WorkflowRun {
	return e.submit(api.StartClusterName, opts)
}

// submit submits the operation op (a workflow type) for the env's cluster
// as the CLI does, without following it.
func (e *env) submit(op string, opts api.Options) client.WorkflowRun {
	e.t.Helper()
	spec, err := cluster.Load(e.config)
	require.NoError(e.t, err)
	run, err := e.ts.GetDefaultClient().ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: api.WorkflowID(spec.Cluster.Name), TaskQueue: api.ControlQueue, Memo: map[string]any{"host": spec.Cluster.Host},
		WorkflowTaskTimeout: api.WorkflowTaskTimeout,
	}, op, api.Request{Spec: spec, Options: opts})
	require.NoError(e.t, err)
	return run
}
