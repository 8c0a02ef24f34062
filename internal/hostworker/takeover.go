package hostworker

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/buildinfo"
	commonpb "go.temporal.io/api/common/v1"
	enums "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
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

// identityPattern: "hpcvm-worker <host> pid <pid> started <ticks> pidns
// <inode> boot <boot id> machine <machine id>@<hostname>". The process's
// start time (in clock ticks since boot) and the boot id make the pid
// unambiguous (a reused pid or a reboot is another process); the machine id
// and the pid namespace say whether that pid can be looked up from here at
// all (another machine with the same hostname, or another container, cannot).
var identityPattern = regexp.MustCompile(`^hpcvm-worker \S+ pid (\d+) started (\d+) pidns (\d+) boot (\S+) machine (\S+)@`)

// Identity is the Temporal identity of this worker process, serving host.
// When this process cannot describe itself fully, the identity is one that
// no successor will ever judge dead.
func Identity(host string) string {
	hostname, _ := os.Hostname()
	pid := os.Getpid()
	ticks, _, err := processStart(pid)
	ns, nsErr := pidNamespace()
	boot, machine := bootID(), machineID()
	// The worker's version ends the identity, in brackets: `hpcvm version`
	// reads it from the host's pollers.
	version := " [" + buildinfo.Version() + "]"
	if err != nil || nsErr != nil || boot == "" || machine == "" {
		return fmt.Sprintf("hpcvm-worker %s pid %d@%s%s", host, pid, hostname, version)
	}
	return fmt.Sprintf("hpcvm-worker %s pid %d started %d pidns %d boot %s machine %s@%s%s", host, pid, ticks, ns, boot, machine, hostname, version)
}

// deadOnThisMachine reports whether identity names an hpcvm worker process
// of this machine and pid namespace that no longer runs. Anything it cannot
// prove dead (another machine or container, another kind of worker, an
// unreadable /proc) is alive.
func deadOnThisMachine(identity string) bool {
	m := identityPattern.FindStringSubmatch(identity)
	if m == nil {
		return false
	}
	if machine := machineID(); machine == "" || machine != m[5] {
		return false
	}
	boot := bootID()
	if boot == "" {
		return false
	}
	if boot != m[4] {
		return true // this machine rebooted since
	}
	if ns, err := pidNamespace(); err != nil || strconv.FormatUint(ns, 10) != m[3] {
		return false // another container: its pids mean nothing here
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		return false
	}
	ticks, zombie, err := processStart(pid)
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		return false
	}
	// A killed worker not yet reaped by its parent is dead too; a live pid
	// that started at another time is another process.
	return zombie || strconv.FormatUint(ticks, 10) != m[2]
}

// processStart reads /proc/<pid>/stat: field 22, when the process started,
// and whether it is a zombie (state Z or X).
func processStart(pid int) (uint64, bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	return ticks, fields[0] == "Z" || fields[0] == "X", err
}

// pidNamespace is the inode of this process's pid namespace.
func pidNamespace() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func machineID() string {
	for _, f := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// TakeOver hands on what a dead predecessor left: every running workflow
// on host's queue forgets its sticky queue (its next task comes to a live
// worker at once), and every step a dead worker of this machine had
// started, for a run on host's queue or on the control queue, is failed
// as ErrTypeWorkerDied, which the workflows retry at once. It returns how
// many steps it handed on.
//
// Run it before the worker polls: the server fails whichever attempt of a
// step is running when asked (by workflow and activity id), so the step must
// not be retried by this worker meanwhile. Each step is looked at again
// just before it is failed, so a retry another worker has begun meanwhile
// is left alone.
func TakeOver(ctx context.Context, c client.Client, namespace, host string, log *zap.Logger) (int, error) {
	handed := 0
	for _, queue := range []string{api.TaskQueue(host), api.ControlQueue} {
		n, err := takeOverQueue(ctx, c, namespace, queue, queue != api.ControlQueue, log)
		handed += n
		if err != nil {
			return handed, err
		}
	}
	return handed, nil
}

// takeOverQueue hands on the dead worker's steps of the runs on queue;
// resetSticky: every run forgets its sticky queue (on the control queue,
// only a run whose step was handed on: the others' sticky worker may well
// be alive on another host).
func takeOverQueue(ctx context.Context, c client.Client, namespace, queue string, resetSticky bool, log *zap.Logger) (int, error) {
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
			// The task a handed-on step makes must not wait on a dead
			// worker's sticky queue: reset first.
			reset := sync.OnceFunc(func() {
				if _, err := c.WorkflowService().ResetStickyTaskQueue(ctx, &workflowservice.ResetStickyTaskQueueRequest{
					Namespace: namespace,
					Execution: &commonpb.WorkflowExecution{WorkflowId: wf.GetWorkflowId(), RunId: wf.GetRunId()},
				}); err != nil {
					log.Warn("cannot reset the sticky queue of a run", zap.String("workflow_id", wf.GetWorkflowId()), zap.Error(err))
				}
			})
			if resetSticky {
				reset()
			}
			for _, a := range d.GetPendingActivities() {
				if !runningOnADeadWorker(a) {
					continue
				}
				if again, err := c.DescribeWorkflowExecution(ctx, wf.GetWorkflowId(), wf.GetRunId()); err != nil || !stillTheSame(again.GetPendingActivities(), a) {
					continue
				}
				reset()
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

// runningOnADeadWorker: the step was started (and maybe asked to cancel) on
// a worker of this machine that is gone.
func runningOnADeadWorker(a *workflowpb.PendingActivityInfo) bool {
	switch a.GetState() {
	case enums.PENDING_ACTIVITY_STATE_STARTED, enums.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED:
		return deadOnThisMachine(a.GetLastWorkerIdentity())
	}
	return false
}

// stillTheSame: the same attempt of a is still running on the same worker.
func stillTheSame(now []*workflowpb.PendingActivityInfo, a *workflowpb.PendingActivityInfo) bool {
	for _, n := range now {
		if n.GetActivityId() == a.GetActivityId() {
			return runningOnADeadWorker(n) && n.GetAttempt() == a.GetAttempt() &&
				n.GetLastWorkerIdentity() == a.GetLastWorkerIdentity() &&
				n.GetLastStartedTime().AsTime().Equal(a.GetLastStartedTime().AsTime())
		}
	}
	return false
}
