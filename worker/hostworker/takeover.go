package hostworker

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/hpcvm/hpcvm/workflows"
	commonpb "go.temporal.io/api/common/v1"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
)

// A worker that dies (kill -9, OOM, power) leaves its running steps started
// at Temporal: each is retried only when its heartbeat timeout passes, and
// the run's next workflow task waits on the dead worker's sticky queue. A
// worker restarted on the same machine can tell that its predecessor is gone
// (the process its identity names no longer runs) and hand those steps on at
// once: this is what makes a crash cost a run well under a second instead of
// the heartbeat timeout.

// ErrTypeWorkerDied is the (retryable) failure a successor gives the steps
// of a dead worker, so that they are retried at once.
const ErrTypeWorkerDied = "WorkerDied"

// identityFormat: "hpcvm-worker <host> pid <pid> started <ticks> boot <boot id>@<machine>".
// The process's start time (in clock ticks since boot) and the boot id make
// the pid unambiguous: a reused pid or a reboot is a different process.
var identityPattern = regexp.MustCompile(`^hpcvm-worker \S+ pid (\d+) started (\d+) boot (\S+)@(.+)$`)

// Identity is the Temporal identity of this worker process, serving host.
func Identity(host string) string {
	machine, _ := os.Hostname()
	ticks, _ := processStart(os.Getpid())
	return fmt.Sprintf("hpcvm-worker %s pid %d started %d boot %s@%s", host, os.Getpid(), ticks, bootID(), machine)
}

// deadOnThisMachine reports whether identity names an hpcvm worker process
// of this machine that no longer runs. Anything it cannot prove dead (another
// machine, another kind of worker, an unreadable /proc) is alive.
func deadOnThisMachine(identity string) bool {
	m := identityPattern.FindStringSubmatch(identity)
	if m == nil {
		return false
	}
	if machine, err := os.Hostname(); err != nil || machine != m[4] {
		return false
	}
	boot := bootID()
	if boot == "" {
		return false
	}
	if boot != m[3] {
		return true // the machine rebooted since
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		return false
	}
	ticks, err := processStart(pid)
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		return false
	}
	return strconv.FormatUint(ticks, 10) != m[2] // the pid now names another process
}

// processStart is field 22 of /proc/<pid>/stat: when the process started.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// TakeOver hands on what a dead predecessor left on host's queue: every
// running workflow on it forgets its sticky queue (its next task comes to
// a live worker at once), and every step a dead worker of this machine had
// started is failed as ErrTypeWorkerDied, which the workflows retry at
// once. It returns how many steps it handed on. Run it as the worker starts.
func TakeOver(ctx context.Context, c client.Client, namespace, host string, log *zap.Logger) (int, error) {
	queue := workflows.TaskQueue(host)
	var token []byte
	handed := 0
	for {
		page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace:     namespace,
			Query:         fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", queue),
			NextPageToken: token,
		})
		if err != nil {
			return handed, fmt.Errorf("listing the runs on task queue %s: %w", queue, err)
		}
		for _, info := range page.GetExecutions() {
			wf := info.GetExecution()
			d, err := c.DescribeWorkflowExecution(ctx, wf.GetWorkflowId(), wf.GetRunId())
			if err != nil {
				log.Warn("cannot describe a run to take over its steps", zap.String("workflow_id", wf.GetWorkflowId()), zap.Error(err))
				continue
			}
			if _, err := c.WorkflowService().ResetStickyTaskQueue(ctx, &workflowservice.ResetStickyTaskQueueRequest{
				Namespace: namespace,
				Execution: &commonpb.WorkflowExecution{WorkflowId: wf.GetWorkflowId(), RunId: wf.GetRunId()},
			}); err != nil {
				log.Warn("cannot reset the sticky queue of a run", zap.String("workflow_id", wf.GetWorkflowId()), zap.Error(err))
			}
			for _, a := range d.GetPendingActivities() {
				if a.GetState() != enums.PENDING_ACTIVITY_STATE_STARTED || !deadOnThisMachine(a.GetLastWorkerIdentity()) {
					continue
				}
				cause := temporal.NewApplicationError(fmt.Sprintf("the worker running this step (%s) died; retried by its successor", a.GetLastWorkerIdentity()), ErrTypeWorkerDied)
				err := c.CompleteActivityByID(ctx, namespace, wf.GetWorkflowId(), wf.GetRunId(), a.GetActivityId(), nil, cause)
				if err != nil {
					// Finished or retried meanwhile: nothing to hand on.
					log.Info("a dead worker's step was not handed on", zap.String("workflow_id", wf.GetWorkflowId()), zap.String("activity", a.GetActivityType().GetName()), zap.Error(err))
					continue
				}
				handed++
				log.Info("handed on a dead worker's step", zap.String("workflow_id", wf.GetWorkflowId()),
					zap.String("activity", a.GetActivityType().GetName()), zap.String("activity_id", a.GetActivityId()),
					zap.Int32("attempt", a.GetAttempt()), zap.String("dead_worker", a.GetLastWorkerIdentity()))
			}
		}
		if token = page.GetNextPageToken(); len(token) == 0 {
			return handed, nil
		}
	}
}
