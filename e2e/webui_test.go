package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/freeports"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// startProcess runs a binary of the project with its output in a log file
// of the test, and stops it (by its PID) when the test ends.
func startProcess(t *testing.T, logFile, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	log, err := os.Create(logFile)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		_ = log.Close()
	})
}

// chromium runs Debian's Chromium headless on url with args, isolated from
// the network beyond loopback (no background connections, a fresh profile).
func chromium(t *testing.T, url string, args ...string) string {
	t.Helper()
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=30000", "--run-all-compositor-stages-before-draw"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "chromium", append(full, url)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), "chromium: %s", errOut.String())
	return out.String()
}

// scheduledRowsWithSummary counts the Activity Task Scheduled rows of a
// history page, and those of them that show a summary in their own row.
func scheduledRowsWithSummary(dom string) (rows, withSummary int) {
	for rest := dom; ; {
		i := strings.Index(rest, "Activity Task Scheduled")
		if i < 0 {
			return rows, withSummary
		}
		rest = rest[i+len("Activity Task Scheduled"):]
		row := rest
		if end := strings.Index(row, "</tr>"); end >= 0 {
			row = row[:end]
		}
		rows++
		if strings.Contains(row, `<iframe title="Summary"`) {
			withSummary++
		}
	}
}

// The Temporal Web UI of hpcvm-devserver, opened in headless Chromium on a
// real StartCluster run: the run's history shows every step by the object
// it acts on, and the run is found by cluster in the workflow list.
func TestWebUIShowsNamedSteps(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	dir := t.TempDir()
	bins := map[string]string{}
	for b, src := range map[string]string{"devserver": "devserver", "worker": filepath.Join("cmd", "hpcvm-worker")} {
		bins[b] = filepath.Join(dir, "hpcvm-"+b)
		// Each built in its own module (devserver/ has its own go.mod),
		// as `make build` builds them.
		cmd := exec.Command("go", "build", "-o", bins[b], ".")
		cmd.Dir = filepath.Join("..", src)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	// One block: the dev server's 4 ports, then the Web UI's.
	base := freeports.Block(t, 4)
	ui := base + 4
	frontend := fmt.Sprintf("127.0.0.1:%d", base)
	startProcess(t, filepath.Join(e.poolRoot, "devserver.log"), bins["devserver"], "--ip", "127.0.0.1", "--port", fmt.Sprint(base),
		"--http-port", "0", "--ui-port", fmt.Sprint(ui), "--db-file", filepath.Join(dir, "temporal.db"), "--log-level", "warn")
	var c client.Client
	require.Eventually(t, func() bool {
		var err error
		c, err = client.Dial(client.Options{HostPort: frontend})
		if err != nil {
			return false
		}
		_, err = c.CheckHealth(context.Background(), &client.CheckHealthRequest{})
		return err == nil
	}, 2*time.Minute, 500*time.Millisecond, "the dev server answers")
	defer c.Close()
	startProcess(t, filepath.Join(e.poolRoot, "worker.log"), bins["worker"], "--temporal-address", frontend,
		"--host", e.host, "--libvirt-uri", libvirtURI(), "--image-root", "/var/tmp", "--pool-root", "/var/tmp")

	hpcvm := func(args ...string) (int, string) {
		var out bytes.Buffer
		full := append([]string{args[0], "-c", e.config, "--trace-dir", e.traceDir(), "--temporal-address", frontend}, args[1:]...)
		code := cli.Main(full, strings.NewReader(""), &out, &out)
		t.Logf("hpcvm %s → %d\n%s", strings.Join(args, " "), code, out.String())
		return code, out.String()
	}
	code, out := hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	t.Cleanup(func() {
		code, out := hpcvm("destroy", "--yes")
		assert.Equal(t, cli.ExitOK, code, out)
		assert.Empty(t, e.leftovers())
	})
	desc, err := c.DescribeWorkflowExecution(context.Background(), api.WorkflowID(e.cluster), "")
	require.NoError(t, err)
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()

	uiBase := fmt.Sprintf("http://127.0.0.1:%d", ui)
	resp, err := http.Get(uiBase + "/")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the Web UI answers")

	history := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/history", uiBase, api.WorkflowID(e.cluster), runID)
	// Every step on the page carries its summary. The Web UI renders a
	// summary as markdown inside a sandboxed iframe, which a DOM dump does
	// not show: its text is checked through Temporal's API (stepSummaries
	// in the lifecycle test) and can be read on the screenshot below. The
	// page fills its table as the history arrives: look again if it is
	// not there yet.
	var scheduled, summaries int
	for try := 0; try < 3 && (scheduled == 0 || summaries < scheduled); try++ {
		dom := chromium(t, history, "--dump-dom", "--window-size=1600,6000")
		scheduled, summaries = scheduledRowsWithSummary(dom)
		if try == 0 {
			assert.Contains(t, dom, "StartCluster")
			assert.Contains(t, dom, "Activity Type")
		}
	}
	assert.Positive(t, scheduled, "the history page lists the run's steps")
	assert.Equal(t, scheduled, summaries, "every step on the history page has a summary")

	// Kept for people: a picture of the page (path in the test log).
	artifacts := os.Getenv("HPCVM_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join("..", "artifacts")
	}
	require.NoError(t, os.MkdirAll(artifacts, 0o755))
	shot, err := filepath.Abs(filepath.Join(artifacts, "webui-start-history.png"))
	require.NoError(t, err)
	_ = chromium(t, history, "--screenshot="+shot, "--window-size=1600,1400", "--hide-scrollbars")
	st, err := os.Stat(shot)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(10_000), "a screenshot with something on it")
	t.Logf("screenshot of the run's history in the Web UI: %s", shot)

	// The run list, filtered by the search attribute hpcvm sets.
	list := fmt.Sprintf("%s/namespaces/default/workflows?query=%s", uiBase, strings.ReplaceAll(fmt.Sprintf("HpcvmCluster=\"%s\"", e.cluster), "\"", "%22"))
	dom := chromium(t, list, "--dump-dom", "--window-size=1600,2000")
	assert.Contains(t, dom, api.WorkflowID(e.cluster), "the run is listed by cluster")

	// The README's link to the operations: status answers through the
	// host's questions run, which the link leaves out; the start is there.
	code, out = hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	_, err = c.DescribeWorkflowExecution(context.Background(), api.HostQuestionsID(e.host), "")
	require.NoError(t, err, "status was answered by the host's questions run")
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile(`http://127\.0\.0\.1:8233(/namespaces/default/workflows\?query=WorkflowType[^)'\s]*\))`).FindSubmatch(readme)
	require.NotNil(t, m, "README.md links to the operations in the Web UI")
	operations := uiBase + string(m[1])
	var opsDom string
	for try := 0; try < 3 && !strings.Contains(opsDom, api.WorkflowID(e.cluster)); try++ {
		opsDom = chromium(t, operations, "--dump-dom", "--window-size=1600,2000")
	}
	assert.Contains(t, opsDom, api.WorkflowID(e.cluster), "the README's operations link lists the start")
	assert.NotContains(t, opsDom, api.HostQuestionsID(e.host), "the README's operations link leaves out the questions run")
	assert.NotContains(t, opsDom, api.HostQuestionsName)
	// The README's screenshot command (its flags are chromium's here).
	runsShot, err := filepath.Abs(filepath.Join(artifacts, "webui-operations.png"))
	require.NoError(t, err)
	_ = chromium(t, operations, "--screenshot="+runsShot, "--window-size=1600,1400", "--hide-scrollbars")
	st, err = os.Stat(runsShot)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), int64(10_000), "a screenshot with something on it")
}
