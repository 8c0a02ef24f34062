package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// defaultCancelWait bounds how long plain cancel follows the rollback: a
// start's rollback deletes a handful of libvirt objects in seconds; minutes
// mean something is stuck, and the operator should hear so.
const defaultCancelWait = 5 * time.Minute

func (a *app) cancelCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel",
		Short: "Cancel the operation running on the cluster; a start rolls back (--force: terminate, no rollback)",
		Long: `cancel asks the running operation of the cluster to stop. A cancelled start
removes what it had created, in reverse order; cancel waits up to --wait for
that and prints what was rolled back. If the run has not ended by then, cancel
says the cancel is requested and still pending, and exits 5: the rollback
goes on in Temporal (see it with ` + "`hpcvm status`" + ` or in the Web UI).

The rollback is done by the hpcvm-worker of the cluster's host. If no worker
polls the host's task queue, cancel still records the request (the run rolls
back as soon as a worker runs again), says so and exits 3.

--force terminates the run at once, without the worker and WITHOUT ANY
ROLLBACK: what the run had created so far stays on the host. Use it when the
host's worker is gone for good or a run is stuck; then ` + "`hpcvm destroy`" + ` removes
what the cluster owns (destroy needs the worker), or ` + "`hpcvm start`" + ` completes
the cluster.`,
		Example: `  hpcvm cancel -c cluster.yaml
  hpcvm cancel --name lab --host hv1 --wait 15m
  hpcvm cancel -c cluster.yaml --force     # the worker is gone: end the run now, no rollback`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			force, _ := cmd.Flags().GetBool("force")
			wait, _ := cmd.Flags().GetDuration("wait")
			if wait <= 0 {
				return fail(ExitBadInput, "--wait must be positive, e.g. --wait 10m")
			}
			req, err := a.loadTarget()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			dialCtx, cancelDial := context.WithTimeout(ctx, 15*time.Second)
			defer cancelDial()
			c, err := a.dial(dialCtx)
			if err != nil {
				return err
			}
			defer c.Close()
			name := req.Spec.Cluster.Name
			id := api.WorkflowID(name)
			desc, err := c.DescribeWorkflowExecution(ctx, id, "")
			var notFound *serviceerror.NotFound
			switch {
			case errors.As(err, &notFound):
				return fail(ExitBadInput, "no operation has run on cluster %s", name)
			case err != nil:
				return unreachable(err)
			case desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
				return fail(ExitBadInput, "no operation is running on cluster %s", name)
			}
			info := desc.GetWorkflowExecutionInfo()
			held := heldBy{op: info.GetType().GetName(), workflowID: id, runID: info.GetExecution().GetRunId(), since: info.GetStartTime().AsTime()}
			host := hostOfRun(info)
			if force {
				return a.terminate(ctx, c, held, name, host)
			}
			return a.requestCancel(ctx, c, held, host, wait)
		},
	}
	cmd.Flags().Bool("force", false, "terminate the run now, without the worker and without rollback (then run hpcvm destroy to clean up)")
	cmd.Flags().Duration("wait", defaultCancelWait, "how long to follow the rollback before reporting the cancel as still pending (exit 5)")
	return cmd
}

// requestCancel asks the run to cancel and follows its rollback for up to
// wait.
func (a *app) requestCancel(ctx context.Context, c client.Client, h heldBy, host string, wait time.Duration) error {
	if err := c.CancelWorkflow(ctx, h.workflowID, h.runID); err != nil {
		return unreachable(err)
	}
	// Without a worker nothing would ever answer the cancel: say so now
	// instead of waiting out --wait.
	serves, err := awaitWorker(ctx, c, api.TaskQueue(host))
	var denied *serviceerror.PermissionDenied
	switch {
	case err != nil && !errors.As(err, &denied):
		return unreachable(err)
	case err == nil && !serves:
		return fail(ExitUnreachable, "cancel of %s (workflow %s, run %s) is requested, but no hpcvm-worker has polled task queue %s in the last %s: the run rolls back only once `hpcvm-worker --host %s` runs again\nto end the run now, without the worker and without rollback: hpcvm cancel --force (then `hpcvm destroy` removes what it had created)",
			h.op, h.workflowID, h.runID, api.TaskQueue(host), workerSeenWithin, host)
	}
	fmt.Fprintf(a.out, "cancel requested for %s; waiting up to %s for it to roll back\n", h.op, wait)
	waitCtx, stopWaiting := context.WithTimeout(ctx, wait)
	defer stopWaiting()
	err = a.follow(waitCtx, c, c.GetWorkflow(ctx, h.workflowID, h.runID), nil)
	if ctx.Err() == nil && errors.Is(waitCtx.Err(), context.DeadlineExceeded) {
		return fail(ExitPending, "cancel of %s (workflow %s, run %s) is requested and still pending after %s: the run has not finished rolling back. It goes on in Temporal; see it with `hpcvm status` or in the Web UI, wait longer with `hpcvm cancel --wait 30m`, or end it without rollback with `hpcvm cancel --force`",
			h.op, h.workflowID, h.runID, wait)
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.cancelledClean {
		fmt.Fprintln(a.out, ee.msg)
		return nil
	}
	if err == nil {
		fmt.Fprintln(a.out, "the operation had already finished before the cancel reached it")
	}
	return err
}

// terminate ends the run at once: Temporal records it as terminated, no
// workflow code runs, so nothing is rolled back and no worker is needed.
func (a *app) terminate(ctx context.Context, c client.Client, h heldBy, cluster, host string) error {
	from, _ := os.Hostname()
	reason := fmt.Sprintf("hpcvm cancel --force (from %s): terminated without rollback", from)
	err := c.TerminateWorkflow(ctx, h.workflowID, h.runID, reason)
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		fmt.Fprintf(a.out, "%s of cluster %s had already ended; nothing was terminated\n", h.op, cluster)
		return nil
	case err != nil:
		return unreachable(err)
	}
	fmt.Fprintf(a.out, "terminated %s of cluster %s (workflow %s, run %s)\n", h.op, cluster, h.workflowID, h.runID)
	fmt.Fprintf(a.errOut, "warning: nothing was rolled back: the run stopped where it was, and what it had done so far stays done on host %s.\n"+
		"  `hpcvm destroy` removes everything the cluster owns, also what this run had created (destroy needs the host's worker: hpcvm-worker --host %s);\n"+
		"  `hpcvm start` completes the cluster instead.\n", host, host)
	return nil
}
