package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// crashSteps are the steps BenchmarkCrashRecovery kills the worker in, by
// activity type, and the operation they belong to.
var crashSteps = []struct{ op, activity string }{
	{api.StartClusterName, "EnsureNetwork"},
	{api.StartClusterName, "EnsurePool"},
	{api.StartClusterName, "UploadBaseImage"},
	{api.StartClusterName, "EnsureVolume"},
	{api.StartClusterName, "EnsureDomain"},
	{api.StartClusterName, "StartDomain"},
	{api.DestroyClusterName, "InspectCluster"},
	{api.DestroyClusterName, "DeleteDomain"},
	{api.DestroyClusterName, "DeleteVolume"},
	{api.DestroyClusterName, "DeletePool"},
	{api.DestroyClusterName, "DeleteNetwork"},
}

// BenchmarkCrashRecovery measures what a worker killed with `kill -9` and
// restarted at once costs a run, at each step. Each round runs start and
// destroy of a 1 + 3 cluster (512 MiB random raw base image, so the
// upload is long enough to be caught) once undisturbed, then once per step
// with the worker killed while an activity of that step is pending (the
// server lists it as started, or, for a step of milliseconds, scheduled:
// the table says which); the time lost is the crashed run's time
// minus the undisturbed run's, in the same round. It prints min, median and
// max per step, and which step was really running at the kill.
//
//	go test -run '^$' -bench CrashRecovery -benchtime 1x ./e2e/
func BenchmarkCrashRecovery(b *testing.B) {
	e := newEnv(b)
	bin := buildWorker(b)
	image := filepath.Join(e.poolRoot, "base.img")
	writeRandomFile(b, image, 512<<20)
	e.writeSpec(clusterFile{computes: []string{"compute-01", "compute-02", "compute-03"}, baseImage: image})
	c := e.ts.GetDefaultClient()
	worker := e.startWorkerProcess(bin)

	// run submits op and waits for it; with kill, the worker is killed once
	// an activity of that type runs and a new one started at once.
	var last client.WorkflowRun // the newest run, for explain
	var killedAt, lastBegan, lastReturned time.Time
	run := func(op, kill string) (time.Duration, string) {
		began := time.Now()
		r := e.submit(op, api.Options{})
		last = r
		caught := ""
		if kill != "" {
			if caught = waitForActivity(b, c, r, kill); caught == "" {
				caught = "missed: the run was done first" // no kill
			} else {
				require.NoError(b, worker.Process.Signal(syscall.SIGKILL))
				killedAt = time.Now()
				_, _ = worker.Process.Wait()
				worker = e.startWorkerProcess(bin)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		require.NoError(b, r.Get(ctx, nil), "%s (worker killed in %q)", op, kill)
		lastBegan, lastReturned = began, time.Now()
		return time.Since(began), caught
	}

	lost := map[string][]time.Duration{}
	caughtIn := map[string]map[string]int{}
	b.ResetTimer()
	// Rounds inside one benchmark call: go test runs a benchmark once with
	// b.N = 1 before the -benchtime count, and a round takes minutes.
	const rounds = 3
	for i := 0; i < b.N*rounds; i++ {
		undisturbed := map[string]time.Duration{}
		undisturbed[api.StartClusterName], _ = run(api.StartClusterName, "")
		undisturbed[api.DestroyClusterName], _ = run(api.DestroyClusterName, "")
		for _, s := range crashSteps {
			if s.op == api.DestroyClusterName {
				run(api.StartClusterName, "")
			}
			took, caught := run(s.op, s.activity)
			if !strings.HasPrefix(caught, "missed") {
				lost[s.activity] = append(lost[s.activity], took-undisturbed[s.op])
				if took-undisturbed[s.op] > 5*time.Second {
					explain(b, c, last, lastBegan, killedAt, lastReturned, filepath.Join(e.poolRoot, "worker.log"))
				}
			}
			if caughtIn[s.activity] == nil {
				caughtIn[s.activity] = map[string]int{}
			}
			caughtIn[s.activity][caught]++
			if s.op == api.StartClusterName {
				run(api.DestroyClusterName, "")
			}
		}
	}
	b.StopTimer()
	e.mustLeaveNothing()

	var worst time.Duration
	var table strings.Builder
	fmt.Fprintf(&table, "time lost per kill -9 (restarted at once), %d rounds:\n%-16s %8s %8s %8s  running at the kill\n", b.N*rounds, "step", "min", "median", "max")
	for _, s := range crashSteps {
		d := lost[s.activity]
		if len(d) == 0 {
			fmt.Fprintf(&table, "%-16s never caught running: %s\n", s.activity, caughtSummary(caughtIn[s.activity]))
			continue
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		fmt.Fprintf(&table, "%-16s %7.2fs %7.2fs %7.2fs  %v\n", s.activity, d[0].Seconds(), d[len(d)/2].Seconds(), d[len(d)-1].Seconds(), caughtSummary(caughtIn[s.activity]))
		worst = max(worst, d[len(d)-1])
	}
	fmt.Print("\n" + table.String()) // go test cuts a benchmark's log short
	b.ReportMetric(worst.Seconds(), "worst-lost-s")
}

// explain prints what happened in run r after the kill, and the new
// worker's log: a crash that cost more than 5 s is a finding.
// Its timeline says where the time went: before the kill (a slow run, not
// a slow recovery), between the kill and the run's end, or after the end
// (the client learning of it).
func explain(t testing.TB, c client.Client, r client.WorkflowRun, began, killed, returned time.Time, workerLog string) {
	var out strings.Builder
	var first, closed time.Time
	var gaps []string
	var prev time.Time
	names := map[int64]string{}
	var events strings.Builder
	defer func() {
		fmt.Fprintf(&out, "\nslow run %s: submitted; workflow started %+.3fs later; killed %+.3fs after submit; closed %+.3fs after the kill; the client saw the end %+.3fs after it closed\n",
			r.GetRunID(), first.Sub(began).Seconds(), killed.Sub(began).Seconds(), closed.Sub(killed).Seconds(), returned.Sub(closed).Seconds())
		if len(gaps) > 0 {
			fmt.Fprintf(&out, "gaps of more than a second between events: %s\n", strings.Join(gaps, "; "))
		}
		fmt.Fprintf(&out, "events after the kill:\n%s", events.String())
		log, _ := os.ReadFile(workerLog)
		fmt.Fprintf(&out, "new worker's log:\n%s\n", log)
		fmt.Print(out.String())
	}()
	it := c.GetWorkflowHistory(context.Background(), r.GetID(), r.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		detail := ""
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			names[ev.GetEventId()] = a.GetActivityType().GetName()
			detail = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			detail = fmt.Sprintf("%s attempt %d %s", names[a.GetScheduledEventId()], a.GetAttempt(), a.GetLastFailure().GetMessage())
		}
		at := ev.GetEventTime().AsTime()
		if first.IsZero() {
			first = at
		}
		closed = at
		if !prev.IsZero() && at.Sub(prev) > time.Second {
			gaps = append(gaps, fmt.Sprintf("%.3fs before %s %s (%+.3fs after the kill)", at.Sub(prev).Seconds(), ev.GetEventType(), detail, at.Sub(killed).Seconds()))
		}
		if at.After(prev) {
			prev = at
		}
		if since := at.Sub(killed); since > -500*time.Millisecond {
			fmt.Fprintf(&events, "  %+8.3fs %s %s\n", since.Seconds(), ev.GetEventType(), detail)
		}
	}
}

// waitForActivity waits until the server lists an activity of that type as
// pending (running, or waiting for a worker) for r, and returns what was
// pending then (the types, joined by "+"); "" if the run ended first.
func waitForActivity(t testing.TB, c client.Client, r client.WorkflowRun, activityType string) string {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		d, err := c.DescribeWorkflowExecution(context.Background(), r.GetID(), r.GetRunID())
		require.NoError(t, err)
		if d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return "" // it was quicker than the look
		}
		// A step of a few milliseconds may be seen only while it waits
		// for the worker: that counts too (it is what a kill then hits).
		var running []string
		found := false
		for _, a := range d.GetPendingActivities() {
			name := a.GetActivityType().GetName()
			if a.GetState() == enums.PENDING_ACTIVITY_STATE_SCHEDULED {
				name += "(scheduled)"
			}
			running = append(running, name)
			found = found || a.GetActivityType().GetName() == activityType
		}
		if found {
			sort.Strings(running)
			return strings.Join(running, "+")
		}
	}
	t.Fatalf("no %s ran within 2 minutes", activityType)
	return ""
}

// caughtSummary shows what was running at the kills of one step, most
// frequent first: "StartDomain+StartDomain ×2, EnsureDomain ×1".
func caughtSummary(caught map[string]int) string {
	keys := make([]string, 0, len(caught))
	for k := range caught {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if caught[keys[i]] != caught[keys[j]] {
			return caught[keys[i]] > caught[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, caught[k])
	}
	return strings.Join(parts, ", ")
}
