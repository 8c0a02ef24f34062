package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/workflows"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// submit starts operation op on the cluster, or attaches to the same
// operation if one is already running; a different running operation is
// refused with its name. All operations share the cluster's workflow ID, so
// Temporal enforces this across processes and machines.
func submit(ctx context.Context, c client.Client, op string, req workflows.Request) (client.WorkflowRun, bool, error) {
	for attempt := 0; ; attempt++ {
		run, attached, err := trySubmit(ctx, c, op, req)
		if !errors.Is(err, errClosedMeanwhile) || attempt == 2 {
			return run, attached, err
		}
	}
}

// errClosedMeanwhile: the run that held the ID ended between our start
// request and our look at it; submitting again will go through.
var errClosedMeanwhile = errors.New("the running operation ended meanwhile")

func trySubmit(ctx context.Context, c client.Client, op string, req workflows.Request) (client.WorkflowRun, bool, error) {
	spec := req.Spec
	id := workflows.WorkflowID(spec.Cluster.Name)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                workflows.TaskQueue(spec.Cluster.Host),
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("%s %s on %s", op, spec.Cluster.Name, spec.Cluster.Host),
	}, op, req)
	if err == nil {
		return run, false, nil
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		return nil, false, unreachable(err)
	}
	desc, derr := c.DescribeWorkflowExecution(ctx, id, "")
	if derr != nil {
		return nil, false, unreachable(derr)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, false, errClosedMeanwhile
	}
	running := info.GetType().GetName()
	if running == op {
		return c.GetWorkflow(ctx, id, info.GetExecution().GetRunId()), true, nil
	}
	return nil, false, fail(ExitBusy, "cluster %s is busy: %s (workflow %s, run %s) has been running since %s; wait for it, or stop it with `hpcvm cancel`",
		spec.Cluster.Name, running, id, info.GetExecution().GetRunId(), info.GetStartTime().AsTime().Local().Format(time.RFC3339))
}

func unreachable(err error) error {
	return fail(ExitUnreachable, "Temporal refused the request: %v", err)
}

// noWorkerWarning is how long a run may go unanswered before the operator
// is told that perhaps no worker serves the host.
const noWorkerWarning = 5 * time.Second

// warnIfNoWorker tells the operator when no worker polls the run's queue:
// the run is safely queued, but nothing happens until one starts.
func (a *app) warnIfNoWorker(ctx context.Context, c client.Client, run client.WorkflowRun) {
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return
	}
	q := desc.GetExecutionConfig().GetTaskQueue().GetName()
	resp, err := c.DescribeTaskQueue(ctx, q, enums.TASK_QUEUE_TYPE_WORKFLOW)
	if err == nil && len(resp.GetPollers()) == 0 {
		fmt.Fprintf(a.errOut, "warning: no hpcvm-worker has polled task queue %s: the run waits until one runs (hpcvm-worker --host %s)\n", q, strings.TrimPrefix(q, "hpcvm.host."))
	}
}

// follow waits for the run, printing its progress as it changes, and turns
// its outcome into an exit code. Interrupting the wait leaves the run going.
func (a *app) follow(ctx context.Context, c client.Client, run client.WorkflowRun, result any) error {
	fmt.Fprintf(a.out, "run %s of workflow %s\n", run.GetRunID(), run.GetID())
	done := make(chan error, 1)
	go func() { done <- run.Get(context.Background(), result) }()
	shown := map[string]string{}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	begun, warned := time.Now(), false
	answered := false
	for {
		select {
		case err := <-done:
			a.showProgress(c, run, shown)
			return outcome(err)
		case <-tick.C:
			answered = a.showProgress(c, run, shown) || answered
			if !answered && !warned && time.Since(begun) > noWorkerWarning {
				warned = true
				a.warnIfNoWorker(ctx, c, run)
			}
		case <-ctx.Done():
			return fail(ExitInterrupted, "stopped following; the run goes on in Temporal (workflow %s). Follow it in the Web UI or with `hpcvm status`; stop it with `hpcvm cancel`", run.GetID())
		}
	}
}

// showProgress prints the steps that changed; it reports whether the run
// answered, i.e. a worker has picked it up.
func (a *app) showProgress(c client.Client, run client.WorkflowRun, shown map[string]string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
	if err != nil {
		return false // not picked up yet, or finished: the next tick or the result tells
	}
	var steps []workflows.Step
	if v.Get(&steps) != nil {
		return true
	}
	for _, s := range steps {
		key := s.Status + "|" + s.Detail
		if shown[s.Name] == key {
			continue
		}
		shown[s.Name] = key
		line := fmt.Sprintf("  %-12s %s", s.Status, s.Name)
		if s.Detail != "" {
			line += ": " + s.Detail
		}
		fmt.Fprintln(a.out, line)
	}
	return true
}

// outcome maps a run's error to an exit error with the run's own message.
func outcome(err error) error {
	if err == nil {
		return nil
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		msg := "the run was cancelled"
		var f workflows.Failure
		if canceled.HasDetails() && canceled.Details(&f) == nil {
			if len(f.RolledBack) > 0 {
				msg += "; rolled back: " + joinList(f.RolledBack)
			}
			if len(f.NotUndone) > 0 {
				msg += "; COULD NOT UNDO: " + joinList(f.NotUndone) + " (fix the cause, then run `hpcvm destroy`)"
			}
		}
		return &exitError{code: ExitFailed, msg: msg, cancelledClean: len(f.NotUndone) == 0}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		code := ExitFailed
		if appErr.Type() == activities.ErrTypeBadInput {
			code = ExitBadInput
		}
		ee := &exitError{code: code, msg: appErr.Message()}
		if appErr.HasDetails() {
			ee.details = func(into any) error { return appErr.Details(into) }
		}
		return ee
	}
	var terminated *temporal.TerminatedError
	if errors.As(err, &terminated) {
		return fail(ExitFailed, "the run was terminated (not rolled back): run `hpcvm destroy` or `hpcvm start` to settle the cluster")
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return fail(ExitFailed, "the run timed out: %v", err)
	}
	return fail(ExitUnreachable, "lost track of the run: %v", err)
}

func joinList(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
