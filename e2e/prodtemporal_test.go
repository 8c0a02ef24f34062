package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/devserver/prodserver"
	"github.com/hpcvm/hpcvm/devserver/serverconfig"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// prodTemporal is a production-shaped server seen from a test: the
// default client is the operator's (CLI) certificate.
type prodTemporal struct {
	srv *prodserver.Server
	cli client.Client
	// addr is where clients dial ("": the frontend itself; else a proxy
	// in front of it).
	addr string
}

func (p prodTemporal) GetDefaultClient() client.Client { return p.cli }
func (p prodTemporal) GetDefaultNamespace() string     { return p.srv.Namespace() }
func (p prodTemporal) GetFrontendHostPort() string {
	if p.addr != "" {
		return p.addr
	}
	return p.srv.FrontendAddr()
}

// prodWorld is one production-shaped Temporal with its certificates.
type prodWorld struct {
	temporal               prodTemporal
	srv                    *prodserver.Server
	pki                    *prodserver.PKI
	admin, worker, cliCert prodserver.ClientCert
	workerClient           client.Client
}

// Common names and what the server lets them do (prodserver.Access).
const (
	adminCN    = "hpcvm-admin"    // the Temporal administrator: everything
	workerCN   = "hpcvm-worker"   // every host worker: namespace writer
	operatorCN = "hpcvm-operator" // the CLI: namespace writer
)

// newProdWorld starts a Temporal server with PostgreSQL persistence (the
// project's instance, `make postgres`; HPCVM_TEST_POSTGRES_ENV names
// another description file), mutual TLS, roles by certificate and a
// namespace of its own. No search attribute is registered yet: that is
// the admin's step.
func newProdWorld(t testing.TB) *prodWorld {
	envFile := os.Getenv("HPCVM_TEST_POSTGRES_ENV")
	if envFile == "" {
		envFile = prodserver.DefaultPostgresEnvFile
	}
	pg, err := prodserver.PostgresFromEnvFile(envFile)
	require.NoError(t, err)
	certDir := t.TempDir()
	pki, err := prodserver.NewPKI(certDir)
	require.NoError(t, err)
	w := &prodWorld{pki: pki}
	for cn, c := range map[string]*prodserver.ClientCert{adminCN: &w.admin, workerCN: &w.worker, operatorCN: &w.cliCert} {
		*c, err = pki.IssueClient(cn)
		require.NoError(t, err)
	}
	ctx := context.Background()
	w.srv, err = prodserver.Start(ctx, prodserver.Options{
		Postgres: pg, PKI: pki, Namespace: "hpcvm-ci-" + randomSuffix(),
		Access:    prodserver.Access{Admins: []string{adminCN}, Writers: []string{workerCN, operatorCN}},
		AdminCert: w.admin, Dynamic: serverconfig.Dynamic(), LogLevel: "error",
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, w.srv.Stop(), "stopping the server and dropping its databases") })
	cliClient, err := w.srv.Dial(ctx, w.cliCert, nil)
	require.NoError(t, err)
	t.Cleanup(cliClient.Close)
	w.workerClient, err = w.srv.Dial(ctx, w.worker, nil)
	require.NoError(t, err)
	t.Cleanup(w.workerClient.Close)
	w.temporal = prodTemporal{srv: w.srv, cli: cliClient}
	return w
}

// connFlags are the hpcvm / hpcvm-worker flags that present cert.
func (w *prodWorld) connFlags(cert prodserver.ClientCert) []string {
	return []string{"--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile, "--tls-ca", w.pki.CAFile, "--tls-server-name", w.pki.ServerName}
}

// env is a test's world on this server: the CLI with the operator's
// certificate, workers with the worker's.
func (w *prodWorld) env(t testing.TB) *env {
	e := newEnvOn(t, w.temporal, dialLibvirt(t))
	e.workerClient = w.workerClient
	e.cliConn, e.workerConn = w.connFlags(w.cliCert), w.connFlags(w.worker)
	return e
}

// TestProductionTemporal runs the core of the end-to-end tests against a
// Temporal server as a team runs it: PostgreSQL, mTLS, a namespace other
// than default, search attributes registered once by an administrator,
// workers and CLI without operator rights.
func TestProductionTemporal(t *testing.T) {
	w := newProdWorld(t)
	bin := buildWorker(t)

	t.Run("a worker without operator rights names the missing search attributes and the admin's command", func(t *testing.T) {
		_, err := hostworker.EnsureSearchAttributes(context.Background(), w.workerClient, w.srv.Namespace())
		var missing *hostworker.MissingSearchAttributesError
		require.True(t, errors.As(err, &missing), "%v", err)
		assert.Equal(t, []string{"HpcvmCluster", "HpcvmHost", "HpcvmOperation"}, missing.Missing)

		// The worker process refuses to start, and says why.
		e := w.env(t)
		proc := e.startWorkerProcess(bin)
		exited := make(chan error, 1)
		go func() { exited <- proc.Wait() }()
		select {
		case err := <-exited:
			require.Error(t, err, "the worker exits with an error")
		case <-time.After(time.Minute):
			t.Fatal("the worker did not exit within a minute although the namespace lacks the search attributes")
		}
		log, err := os.ReadFile(filepath.Join(e.poolRoot, "worker.log"))
		require.NoError(t, err)
		assert.Contains(t, string(log), "lacks hpcvm's search attributes HpcvmCluster, HpcvmHost, HpcvmOperation")
		assert.Contains(t, string(log), "temporal operator search-attribute create --namespace "+w.srv.Namespace()+" --name HpcvmCluster --type Keyword")
	})

	// The admin step, once: what an administrator does for the team.
	adminClient, err := w.srv.Dial(context.Background(), w.admin, nil)
	require.NoError(t, err)
	added, err := hostworker.EnsureSearchAttributes(context.Background(), adminClient, w.srv.Namespace())
	adminClient.Close()
	require.NoError(t, err)
	require.Len(t, added, 3)

	t.Run("start, status, stop and destroy", func(t *testing.T) {
		e := w.env(t)
		e.writeConfig("")
		e.startWorker()
		e.mustLeaveNothing()

		code, out := e.hpcvm("start")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, "created 9 object(s), started 3 VM(s)")
		// The run carries hpcvm's search attributes in the namespace's
		// (PostgreSQL) visibility store.
		e.waitForRuns(`HpcvmCluster = "`+e.cluster+`" AND HpcvmOperation = "start"`, 1)

		code, out = e.hpcvm("status")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, "Status: running")
		// list reads the namespace's visibility (PostgreSQL) by search attribute.
		code, out = e.hpcvmBare("list")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, e.cluster)

		// The same, configured only as the SDKs are: a temporal.toml
		// profile (address, namespace, mTLS), no connection flag.
		toml := filepath.Join(t.TempDir(), "temporal.toml")
		require.NoError(t, os.WriteFile(toml, []byte(fmt.Sprintf(`[profile.ci]
address = %q
namespace = %q
[profile.ci.tls]
client_cert_path = %q
client_key_path = %q
server_ca_cert_path = %q
server_name = %q
`, w.srv.FrontendAddr(), w.srv.Namespace(), w.cliCert.CertFile, w.cliCert.KeyFile, w.pki.CAFile, w.pki.ServerName)), 0o600))
		t.Setenv("TEMPORAL_CONFIG_FILE", toml)
		var stdout, stderr bytes.Buffer
		code = cli.Main([]string{"status", "-c", e.config, "--temporal-profile", "ci"}, strings.NewReader(""), &stdout, &stderr)
		require.Equal(t, cli.ExitOK, code, "%s%s", stdout.String(), stderr.String())
		assert.Contains(t, stdout.String(), "Status: running")

		e.waitForLeases(3, 2*time.Minute) // booted: they answer ACPI
		code, out = e.hpcvm("stop", "--timeout", "60s")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, "3 shut down cleanly, 0 forced off")
		for _, vm := range []string{"controller-01", "compute-01", "compute-02"} {
			st, err := e.lv.DomainState(e.cluster + "-" + vm)
			require.NoError(t, err)
			assert.Equal(t, "shut off", string(st), vm)
		}

		code, out = e.hpcvm("destroy", "--yes")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Empty(t, e.leftovers())
		e.waitForRuns(`HpcvmCluster = "`+e.cluster+`" AND HpcvmOperation = "destroy"`, 1)
		e.logRunFigures(api.StartClusterName, api.StopClusterName, api.DestroyClusterName)
	})

	t.Run("a worker killed mid-start: the run completes on the next", func(t *testing.T) {
		e := w.env(t)
		e.writeConfig("")
		e.mustLeaveNothing()
		first := e.startWorkerProcess(bin)
		run := e.submitStart(api.Options{})
		killedAt := waitForStep(t, w.temporal.cli, run, "pool ")
		require.NoError(t, first.Process.Signal(syscall.SIGKILL))
		_, _ = first.Process.Wait()
		started := 0
		for _, s := range killedAt {
			if strings.HasPrefix(s.Name, "start ") && s.Status == api.StepDone {
				started++
			}
		}
		require.Less(t, started, 3, "the kill came before the run had started every VM")

		restarted := time.Now()
		e.startWorkerProcess(bin)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var res api.StartResult
		require.NoError(t, run.Get(ctx, &res), "the run completes on the new worker")
		t.Logf("run finished %s after the new worker started", time.Since(restarted).Round(10*time.Millisecond))
		t.Logf("task figures of the interrupted start: %s", runTaskFigures(t, w.temporal.cli, run.GetID(), run.GetRunID()))

		code, out := e.hpcvm("destroy", "--yes")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Empty(t, e.leftovers())
	})
}

// taskFigures are the workflow tasks of one run as its history shows
// them: how long each waited for a worker, by queue (the worker's sticky
// queue, or the host's queue: a run's first task, a task after a worker
// change, and any whose sticky wait passed the sticky timeout; this server
// writes no event for those), how long a worker held one (a replay of the
// whole history shows here), and the tasks that timed out in a worker's
// hands. Figures for tuning the workflow task timeout
// (workflows.WorkflowTaskTimeout) and the sticky timeout
// (hostworker.DefaultStickyTimeout), not assertions.
type taskFigures struct {
	tasks                        int
	maxStickyWait, maxNormalWait time.Duration
	stickyWaits, normalWaits     int
	maxHeld                      time.Duration
	timeouts                     int
}

func (f taskFigures) String() string {
	return fmt.Sprintf("%d workflow tasks; wait for a worker: sticky max %s (%d tasks), host queue max %s (%d tasks); held by the worker: max %s; timed out: %d",
		f.tasks, f.maxStickyWait, f.stickyWaits, f.maxNormalWait, f.normalWaits, f.maxHeld, f.timeouts)
}

func runTaskFigures(t testing.TB, c client.Client, workflowID, runID string) taskFigures {
	t.Helper()
	var f taskFigures
	scheduled := map[int64]time.Time{}
	sticky := map[int64]bool{}
	started := map[int64]time.Time{}
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		at := ev.GetEventTime().AsTime()
		switch {
		case ev.GetWorkflowTaskScheduledEventAttributes() != nil:
			a := ev.GetWorkflowTaskScheduledEventAttributes()
			scheduled[ev.GetEventId()] = at
			sticky[ev.GetEventId()] = a.GetTaskQueue().GetKind() == enums.TASK_QUEUE_KIND_STICKY
			f.tasks++
		case ev.GetWorkflowTaskStartedEventAttributes() != nil:
			id := ev.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()
			started[ev.GetEventId()] = at
			wait := at.Sub(scheduled[id])
			if sticky[id] {
				f.stickyWaits++
				f.maxStickyWait = max(f.maxStickyWait, wait)
			} else {
				f.normalWaits++
				f.maxNormalWait = max(f.maxNormalWait, wait)
			}
		case ev.GetWorkflowTaskCompletedEventAttributes() != nil:
			held := at.Sub(started[ev.GetWorkflowTaskCompletedEventAttributes().GetStartedEventId()])
			f.maxHeld = max(f.maxHeld, held)
		case ev.GetWorkflowTaskTimedOutEventAttributes() != nil:
			f.timeouts++
		}
	}
	return f
}

// logRunFigures logs the task figures of the cluster's runs of the
// given workflow types, and returns them as lines.
func (e *env) logRunFigures(ops ...string) []string {
	var lines []string
	c := e.ts.GetDefaultClient()
	for _, op := range ops {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`WorkflowId = %q AND WorkflowType = %q`, api.WorkflowID(e.cluster), op)})
		require.NoError(e.t, err)
		for _, ex := range resp.GetExecutions() {
			f := runTaskFigures(e.t, c, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId())
			line := fmt.Sprintf("task figures of %s run %s: %s", op, ex.GetExecution().GetRunId(), f)
			e.t.Log(line)
			lines = append(lines, line)
		}
	}
	return lines
}
