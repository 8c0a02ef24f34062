package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/internal/freeports"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

const (
	testTaskQueue  = "devserver-test"
	continueSignal = "continue"
	// childArgsEnv makes the test binary act as hpcvm-devserver (see TestMain).
	childArgsEnv = "HPCVM_DEVSERVER_TEST_CHILD_ARGS"
)

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(childArgsEnv); ok {
		cmd := newRootCommand()
		cmd.SetArgs(strings.Split(args, "\n"))
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitForSignalWorkflow blocks until it is signalled, so it is still running
// across a server restart, then returns a greeting.
func waitForSignalWorkflow(ctx workflow.Context, name string) (string, error) {
	var suffix string
	workflow.GetSignalChannel(ctx, continueSignal).Receive(ctx, &suffix)
	return "hello " + name + suffix, nil
}

func testOptions(t *testing.T, dbFile string) options {
	base := freeports.Block(t, defaultHTTPPortOffset+1)
	opts := defaultOptions()
	opts.DBFile = dbFile
	opts.Port = base
	opts.HTTPPort = base + defaultHTTPPortOffset
	opts.UIPort = base + defaultHTTPPortOffset + 1
	opts.Namespaces = []string{"default", "hpcvm-test"}
	opts.LogLevel = "none"
	return opts
}

func startServer(t *testing.T, opts options) *devServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.stop() })
	return s
}

func dial(t *testing.T, opts options, namespace string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: opts.frontendAddr(), Namespace: namespace, Logger: quietSDKLogger{}})
	require.NoError(t, err)
	return c
}

func TestWorkflowSurvivesRestart(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "state", "temporal.db") // "state" does not exist yet
	opts := testOptions(t, dbFile)

	// First start: creates the DB file, applies the schema, registers namespaces.
	s := startServer(t, opts)
	require.Contains(t, s.readyLine(), "frontend "+opts.frontendAddr())
	require.FileExists(t, dbFile)

	c := dial(t, opts, "hpcvm-test")
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:        "survives-restart",
		TaskQueue: testTaskQueue,
	}, waitForSignalWorkflow, "vm")
	require.NoError(t, err)
	// No worker yet: the workflow stays running, waiting for a worker and a signal.
	c.Close()
	require.NoError(t, s.stop())

	// Second start on the same file: no schema setup, same namespaces, and the
	// execution is still there.
	s = startServer(t, opts)
	c = dial(t, opts, "hpcvm-test")
	defer c.Close()

	require.Equal(t, "hello vm!", resumeAndFinish(t, c, run, "!"))

	desc, err := c.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.GetWorkflowExecutionInfo().GetStatus())

	// The default namespace was registered too.
	dc := dial(t, opts, "default")
	defer dc.Close()
	_, err = dc.WorkflowService().DescribeNamespace(context.Background(), &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
	require.NoError(t, err)
}

func TestValidateRejectsBadOptions(t *testing.T) {
	cases := map[string]func(*options){
		"empty db":          func(o *options) { o.DBFile = "" },
		"bad ip":            func(o *options) { o.IP = "localhost" },
		"port range":        func(o *options) { o.Port = 65534 },
		"ui on internal":    func(o *options) { o.UIPort = o.Port + 2 },
		"http equals ui":    func(o *options) { o.HTTPPort = o.UIPort },
		"no namespace":      func(o *options) { o.Namespaces = nil },
		"short retention":   func(o *options) { o.Retention = time.Hour },
		"unknown log level": func(o *options) { o.LogLevel = "loud" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			o := defaultOptions()
			mutate(&o)
			require.Error(t, o.validate())
		})
	}
	o := defaultOptions()
	require.NoError(t, o.validate())
}

// child is hpcvm-devserver running in its own process (the test binary
// re-executed through TestMain).
type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan error
}

// startChild runs the dev server in a subprocess and waits for its ready line.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+strings.Join(args, "\n"))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &child{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "temporal dev server ready:") {
				ready <- sc.Text()
			}
		}
	}()
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // no-op once it has exited

	select {
	case line := <-ready:
		t.Logf("child %d: %s", cmd.Process.Pid, line)
		return c
	case err := <-c.exited:
		t.Fatalf("dev server exited before ready: %v\n%s", err, c.stderr)
	case <-time.After(3 * time.Minute):
		t.Fatalf("dev server not ready within 3m\n%s", c.stderr)
	}
	return nil
}

// terminate sends SIGTERM and waits for a clean exit.
func (c *child) terminate(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-c.exited:
		require.NoError(t, err, "dev server exit status; stderr:\n%s", c.stderr)
	case <-time.After(time.Minute):
		t.Fatalf("dev server did not exit within 1m of SIGTERM\n%s", c.stderr)
	}
}

// TestRestartAcrossProcesses checks persistence the way a user sees it: the
// server process is stopped with SIGTERM and a new process opens the file.
func TestRestartAcrossProcesses(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	opts := testOptions(t, dbFile)
	args := []string{
		"--db-file", dbFile,
		"--port", strconv.Itoa(opts.Port),
		"--http-port", "0",
		"--ui-port", "0",
		"--namespace", "hpcvm-test",
		"--log-level", "error",
	}

	p := startChild(t, args...)
	c := dial(t, opts, "hpcvm-test")
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:        "survives-process-restart",
		TaskQueue: testTaskQueue,
	}, waitForSignalWorkflow, "process")
	require.NoError(t, err)
	c.Close()
	p.terminate(t)

	// After a clean stop the main file holds everything (WAL checkpointed).
	if fi, err := os.Stat(dbFile + "-wal"); err == nil {
		require.Zero(t, fi.Size(), "WAL not checkpointed on shutdown")
	}

	p = startChild(t, args...)
	defer p.terminate(t)
	c = dial(t, opts, "hpcvm-test")
	defer c.Close()
	require.Equal(t, "hello process?", resumeAndFinish(t, c, run, "?"))
}

// resumeAndFinish checks that run is still running after the restart, then
// lets a worker finish it and returns its result.
func resumeAndFinish(t *testing.T, c client.Client, run client.WorkflowRun, signal string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())

	w := worker.New(c, testTaskQueue, worker.Options{})
	w.RegisterWorkflow(waitForSignalWorkflow)
	require.NoError(t, w.Start())
	defer w.Stop()
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), continueSignal, signal))
	var result string
	require.NoError(t, c.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, &result))
	return result
}
