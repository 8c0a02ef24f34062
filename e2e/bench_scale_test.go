package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/workflows"
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
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %9s %9s %6s %9s %9s %6s %21s %9s %9s %8s\n", "VMs", "start s", "virsh s", "ratio", "destroy s", "virsh s", "ratio", "events/MiB", "max task", "timed out", "retried")
	for i := 0; i < b.N; i++ {
		for _, computes := range []int{7, 31, 99} {
			hb.computes = computes
			hp := hb.hpcvmRound(b)
			// The histories of the two runs just made.
			var events []string
			var maxTask time.Duration
			var timeouts, retried int
			for _, op := range []string{workflows.StartClusterName, workflows.DestroyClusterName} {
				n, size, longest, to, re := historyFigures(b, c, workflows.WorkflowID(hb.cluster), op)
				events = append(events, fmt.Sprintf("%d/%.1f", n, float64(size)/(1<<20)))
				maxTask = max(maxTask, longest)
				timeouts += to
				retried += re
			}
			sh := hb.virshRound(b, lv)
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
}

// historyFigures reads the newest run of type op under workflow id: its
// event count, the size of its events, its longest workflow task, and how
// many workflow tasks timed out and steps needed another attempt (what an
// overloaded machine costs a run).
func historyFigures(t testing.TB, c client.Client, id, op string) (n, size int, longest time.Duration, taskTimeouts, retried int) {
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
	started := map[int64]time.Time{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		n++
		size += proto.Size(ev)
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_STARTED {
			started[ev.GetEventId()] = ev.GetEventTime().AsTime()
		}
		if a := ev.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			longest = max(longest, ev.GetEventTime().AsTime().Sub(started[a.GetStartedEventId()]))
		}
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT {
			taskTimeouts++
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			retried++
		}
	}
	return n, size, longest, taskTimeouts, retried
}
