package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
)

// BenchmarkScale starts and destroys clusters of 1 + 7, 1 + 31 and 1 + 99
// VMs (64 MiB, blank 1 GiB qcow2 base image) with hpcvm and with the 8-way
// virsh script, and reports how the times grow, how long the histories get
// (Temporal's limits: 51,200 events, 50 MiB), the longest workflow task,
// and what the load cost: workflow tasks timed out, steps retried.
//
//	go test -run '^$' -bench Scale -benchtime 1x -timeout 60m ./e2e/
func BenchmarkScale(b *testing.B) {
	lv := dialLibvirt(b)
	hb := newBenchEnv(b)
	hb.memoryMB = 64
	c := hb.ts.GetDefaultClient()
	var table, retries strings.Builder
	fmt.Fprintf(&table, "%-8s %9s %9s %6s %9s %9s %6s %21s %9s %9s %8s\n", "VMs", "start s", "virsh s", "ratio", "destroy s", "virsh s", "ratio", "events/MiB", "max task", "timed out", "retried")
	for i := 0; i < b.N; i++ {
		for _, computes := range []int{7, 31, 99} {
			hb.computes = computes
			hp := hb.hpcvmRound(b)
			// The histories of the two runs just made.
			var events []string
			var maxTask time.Duration
			var timeouts, retried int
			for _, op := range []string{api.StartClusterName, api.DestroyClusterName} {
				f := historyFigures(b, c, api.WorkflowID(hb.cluster), op)
				events = append(events, fmt.Sprintf("%d/%.1f", f.events, float64(f.size)/(1<<20)))
				maxTask = max(maxTask, f.longestTask)
				timeouts += f.taskTimeouts
				retried += f.retried
				// Which steps were retried, and why: a count alone does
				// not say whether the load or hpcvm cost the attempt.
				for _, r := range f.retries {
					fmt.Fprintf(&retries, "1+%d %s: %s\n", computes, op, r)
				}
			}
			sh := hb.virshRound(b, lv, 8)
			get := func(f []figure, name string) float64 {
				for _, x := range f {
					if x.name == name {
						return x.value
					}
				}
				b.Fatalf("no figure %q", name)
				return 0
			}
			hs, hd := get(hp, "hpcvm start"), get(hp, "hpcvm destroy")
			vs, vd := get(sh, "virsh start"), get(sh, "virsh destroy")
			fmt.Fprintf(&table, "1+%-6d %9.1f %9.1f %6.2f %9.1f %9.1f %6.2f %21s %9s %9d %8d\n", computes, hs, vs, hs/vs, hd, vd, hd/vd,
				strings.Join(events, " "), maxTask.Round(time.Millisecond), timeouts, retried)
		}
	}
	fmt.Print("\nscale (events/MiB: start run, destroy run):\n" + table.String())
	if retries.Len() > 0 {
		fmt.Print("\nretried steps:\n" + retries.String())
	}
}

// runFigures is what a run's history says about where its time went.
type runFigures struct {
	events, size int           // events and their encoded size
	longestTask  time.Duration // longest workflow task
	taskTimeouts int           // workflow tasks that timed out
	retried      int           // steps that needed another attempt
	retries      []string      // each of them: type, attempts, the failure before the last attempt
	maxWait      time.Duration // longest wait of a step for a worker (scheduled to started)
	slowest      string        // the step that took longest, scheduled to closed
}

// historyFigures reads the newest run of type op under workflow id: how big
// its history is, and what an overloaded machine cost it (slow or timed-out
// workflow tasks, retried steps, steps waiting for a worker).
func historyFigures(t testing.TB, c client.Client, id, op string) runFigures {
	ctx := context.Background()
	var runID string
	for deadline := time.Now().Add(30 * time.Second); runID == ""; time.Sleep(100 * time.Millisecond) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = '%s' AND WorkflowType = '%s'", id, op),
		})
		require.NoError(t, err)
		if len(resp.GetExecutions()) > 0 {
			runID = resp.GetExecutions()[0].GetExecution().GetRunId()
		}
		require.True(t, time.Now().Before(deadline), "no %s run of %s in visibility", op, id)
	}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var f runFigures
	at := map[int64]time.Time{} // workflow task started and activity scheduled events
	activity := map[int64]string{}
	var slowest time.Duration
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		f.events++
		f.size += proto.Size(ev)
		when := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			at[ev.GetEventId()] = when
		case enums.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			f.taskTimeouts++
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			at[ev.GetEventId()] = when
			activity[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		}
		if a := ev.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			f.longestTask = max(f.longestTask, when.Sub(at[a.GetStartedEventId()]))
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			f.maxWait = max(f.maxWait, when.Sub(at[a.GetScheduledEventId()]))
			if a.GetAttempt() > 1 {
				f.retried++
				f.retries = append(f.retries, fmt.Sprintf("%s attempt %d after: %s", activity[a.GetScheduledEventId()], a.GetAttempt(), a.GetLastFailure().GetMessage()))
			}
		}
		var scheduled int64
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			scheduled = a.GetScheduledEventId()
		} else if a := ev.GetActivityTaskFailedEventAttributes(); a != nil {
			scheduled = a.GetScheduledEventId()
		} else if a := ev.GetActivityTaskTimedOutEventAttributes(); a != nil {
			scheduled = a.GetScheduledEventId()
		}
		if took := when.Sub(at[scheduled]); scheduled != 0 && took > slowest {
			slowest = took
			f.slowest = fmt.Sprintf("%s %s", activity[scheduled], took.Round(time.Millisecond))
		}
	}
	return f
}
