package workflows

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays every history the recorder wrote
// (testdata/histories/*.json: real server histories of start, stop, destroy
// and describe) against the current workflow code. A workflow whose steps
// changed without a workflow.GetVersion guard fails here with a
// nondeterminism error: runs already under way on a worker would fail the
// same way after an upgrade.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in %s: record them (see README.md, \"Workflow histories and versioning\")", historiesDir)
	sort.Strings(files)

	// Every scenario has at least one recording.
	recorded := map[string]bool{}
	for _, f := range files {
		recorded[scenarioOf(f)] = true
	}
	expect := map[string]historyScenario{}
	for _, sc := range historyScenarios() {
		expect[sc.name] = sc
		assert.True(t, recorded[sc.name], "no recorded history of scenario %s in %s", sc.name, historiesDir)
	}

	realActivities := map[string]bool{}
	for _, n := range activityNames() {
		realActivities[n] = true
	}

	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			hist := readHistory(t, file)
			scheduled := scheduledActivities(hist)
			for name := range scheduled {
				assert.True(t, realActivities[name], "the history schedules activity %s, which the real worker does not register", name)
			}
			// The file is still the scenario it is named after (a
			// history of a scenario no longer recorded still replays).
			if sc, ok := expect[scenarioOf(file)]; ok {
				checkScenario(t, sc, hist, scheduled)
			}

			replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{})
			require.NoError(t, err)
			Register(replayer)
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(testLogger(t), file),
				"%s no longer replays: guard the workflow change with workflow.GetVersion", file)
		})
	}
}

// scenarioOf is the scenario a history file records: <scenario>.<set>.json.
func scenarioOf(file string) string {
	return strings.SplitN(filepath.Base(file), ".", 2)[0]
}

func readHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, hist.Events)
	return hist
}

func scheduledActivities(hist *historypb.History) map[string]bool {
	out := map[string]bool{}
	for _, ev := range hist.Events {
		if attr := ev.GetActivityTaskScheduledEventAttributes(); attr != nil {
			out[attr.GetActivityType().GetName()] = true
		}
	}
	return out
}

func checkScenario(t *testing.T, sc historyScenario, hist *historypb.History, scheduled map[string]bool) {
	t.Helper()
	first, last := hist.Events[0], hist.Events[len(hist.Events)-1]
	assert.Equal(t, sc.workflow, first.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName())
	assert.Equal(t, sc.closed, last.GetEventType())
	if sc.failureType != "" {
		assert.Equal(t, sc.failureType, last.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetApplicationFailureInfo().GetType())
	}
	for _, name := range sc.scheduled {
		assert.True(t, scheduled[name], "%s is not scheduled", name)
	}
	for _, name := range sc.notScheduled {
		assert.False(t, scheduled[name], "%s is scheduled", name)
	}
	seen := map[enumspb.EventType]bool{}
	for _, ev := range hist.Events {
		seen[ev.GetEventType()] = true
	}
	for _, et := range sc.events {
		assert.True(t, seen[et], "no %s event", et)
	}
}

// testLogger logs the SDK's warnings and errors into the test's output.
func testLogger(t *testing.T) sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The workflow decides nothing from the file: a recorded start replays
// whatever the rules now say of its file (here: one they refuse, with a
// controller of 1 MiB and a GPU the host does not have), because the
// preflight's answer is in the history. Rules, templates and checks change
// without a version marker.
func TestRecordedStartReplaysWhateverTheRulesNowSay(t *testing.T) {
	hist := readHistory(t, filepath.Join(historiesDir, "start-success."+baselineSet+".json"))
	started := hist.Events[0].GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(t, started)
	payload := started.GetInput().GetPayloads()[0]
	var req map[string]any
	require.NoError(t, json.Unmarshal(payload.GetData(), &req))
	spec := req["spec"].(map[string]any)
	spec["controller"].(map[string]any)["memory_mb"] = 1
	nodes := spec["compute_nodes"].([]any)
	nodes[0].(map[string]any)["pcie_passthrough"] = map[string]any{"enabled": true,
		"devices": []any{map[string]any{"pci_address": "0000:65:00.0", "device_type": "gpu"}}}
	data, err := json.Marshal(req)
	require.NoError(t, err)
	payload.Data = data
	replayer, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{})
	require.NoError(t, err)
	Register(replayer)
	require.NoError(t, replayer.ReplayWorkflowHistory(testLogger(t), hist))
}

// workflowChanges lists every version marker of the workflow code
// (workflow.GetVersion's change ID) with the recorded set of the release
// that introduced it. The retirement rule (README.md, "Upgrading a
// worker"): a release removes the markers of the release before it, with
// that release's set.
var workflowChanges = map[string]string{}

// At most two sets are kept (this release's and the one before), and every
// marker in the workflow code is listed with a set that is kept.
func TestVersionMarkersAreRetired(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	sets := map[string]bool{}
	for _, f := range files {
		parts := strings.Split(filepath.Base(f), ".")
		require.Len(t, parts, 3, "%s is not <scenario>.<set>.json", f)
		sets[parts[1]] = true
	}
	assert.True(t, sets[baselineSet], "the baseline set %s is kept until the release after next retires it", baselineSet)
	assert.LessOrEqual(t, len(sets), 2, "sets kept: %v; retire the oldest with its markers", sets)

	marker := regexp.MustCompile(`GetVersion\(\s*\w+,\s*"([^"]+)"`)
	// A change ID the rule cannot read (a constant, a variable) is refused.
	anyMarker := regexp.MustCompile(`GetVersion\(`)
	sources, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, src := range sources {
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		// The upgrade drill's build is a release of its own.
		if strings.HasSuffix(src, "_test.go") || strings.Contains(string(data), "//go:build upgradedrill") {
			continue
		}
		assert.Equal(t, len(anyMarker.FindAllString(string(data), -1)), len(marker.FindAllString(string(data), -1)),
			"%s: give every workflow.GetVersion its change ID as a string literal, so that this rule can check it", src)
		for _, m := range marker.FindAllStringSubmatch(string(data), -1) {
			set, listed := workflowChanges[m[1]]
			if assert.True(t, listed, "%s: marker %q is not in workflowChanges", src, m[1]) {
				assert.True(t, sets[set], "%s: marker %q belongs to set %s, which is no longer kept: retire it", src, m[1], set)
			}
		}
	}
	for id, set := range workflowChanges {
		assert.True(t, sets[set], "workflowChanges lists %q of set %s, which is no longer kept", id, set)
	}
}
