package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/workflows"
	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
)

func (a *app) startCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Create what is missing of the cluster and start every VM",
		Long: `start checks the host (machine types, KVM, the base image), then creates
whatever of the cluster is missing, in order: network, storage pool, base
image (streamed into the pool), and for every VM in parallel its
copy-on-write volume and domain; then it starts every VM.

Starting a running cluster changes nothing; starting a stopped one only
starts its VMs. If a step fails or the run is cancelled, everything this run
created is removed again, in reverse order, and the error says what failed
and what was rolled back. Objects that existed before the run are kept.`,
		Example: `  hpcvm start -c examples/cluster.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res workflows.StartResult
			err := a.operate(cmd.Context(), workflows.StartClusterName, workflows.Options{}, &res)
			if err != nil {
				return err
			}
			for _, n := range res.Notes {
				fmt.Fprintln(a.out, "note:", n)
			}
			fmt.Fprintf(a.out, "cluster %s is running on %s (%s, %s): created %d object(s), started %d VM(s)\n",
				res.Plan.Cluster, res.Plan.Host, res.Plan.Machine.MachineType, domainKind(res.Plan.Machine.DomainType), len(res.Created), len(res.Started))
			for _, vm := range res.Plan.VMs {
				fmt.Fprintf(a.out, "  %-16s %-10s %-15s %s\n", vm.Name, vm.Role, vm.IP, vm.Domain)
			}
			return nil
		},
	}
}

func domainKind(t string) string {
	if t == "kvm" {
		return "KVM"
	}
	return "TCG emulation"
}

func (a *app) stopCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Shut the cluster's VMs down, keeping their disks",
		Long: `stop presses the ACPI power button of every running VM of the cluster in
parallel and waits up to --timeout for them to power off; VMs still running
then are forced off. Disks, the pool and the network are kept: ` + "`hpcvm start`" + `
brings the cluster back as it was.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			timeout, _ := cmd.Flags().GetDuration("timeout")
			if timeout <= 0 {
				return fail(ExitBadInput, "--timeout must be positive")
			}
			var res workflows.StopResult
			if err := a.operate(cmd.Context(), workflows.StopClusterName, workflows.Options{ShutdownTimeout: timeout}, &res); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "cluster stopped: %d shut down cleanly, %d forced off after %s, %d already off\n",
				len(res.ShutDown), len(res.ForcedOff), timeout, len(res.WasStopped))
			if len(res.ForcedOff) > 0 {
				fmt.Fprintf(a.out, "  forced off: %s\n", strings.Join(res.ForcedOff, ", "))
			}
			return nil
		},
	}
	cmd.Flags().Duration("timeout", workflows.DefaultShutdownTimeout, "how long guests get to power off before they are forced off")
	return cmd
}

func (a *app) destroyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove every trace of the cluster: VMs, disks, pool, network",
		Long: `destroy forces off and undefines the cluster's VMs, deletes their volumes,
the base volume, the pool with its directory, and the network. It works on a
half-created cluster and can be run again safely.

It never deletes what hpcvm did not create: a domain must carry hpcvm's
metadata for this cluster, the pool the planned directory, the network the
planned bridge. Anything else with the cluster's names is left alone and
listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			yes, _ := cmd.Flags().GetBool("yes")
			if !yes {
				spec, err := a.loadSpec()
				if err != nil {
					return err
				}
				fmt.Fprintf(a.out, "This deletes cluster %s on %s with all its disks. Type the cluster name to confirm: ", spec.Cluster.Name, spec.Cluster.Host)
				line, _ := bufio.NewReader(a.in).ReadString('\n')
				if strings.TrimSpace(line) != spec.Cluster.Name {
					return fail(ExitBadInput, "not confirmed; nothing was deleted (use --yes to skip the question)")
				}
			}
			var res workflows.DestroyResult
			if err := a.operate(cmd.Context(), workflows.DestroyClusterName, workflows.Options{}, &res); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "cluster destroyed: deleted %d object(s)\n", len(res.Deleted))
			for _, d := range res.Deleted {
				fmt.Fprintln(a.out, "  deleted", d)
			}
			for _, l := range res.LeftAlone {
				fmt.Fprintln(a.out, "  LEFT ALONE (not created by hpcvm):", l)
			}
			return nil
		},
	}
	cmd.Flags().BoolP("yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) cancelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel",
		Short: "Cancel the operation running on the cluster; a start rolls back",
		Long: `cancel asks the running operation of the cluster to stop. A cancelled start
removes what it had created, in reverse order; cancel waits for that and
prints what was rolled back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := a.loadSpec()
			if err != nil {
				return err
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			id := workflows.WorkflowID(spec.Cluster.Name)
			desc, err := c.DescribeWorkflowExecution(cmd.Context(), id, "")
			var notFound *serviceerror.NotFound
			switch {
			case errors.As(err, &notFound):
				return fail(ExitBadInput, "no operation has run on cluster %s", spec.Cluster.Name)
			case err != nil:
				return unreachable(err)
			case desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
				return fail(ExitBadInput, "no operation is running on cluster %s", spec.Cluster.Name)
			}
			info := desc.GetWorkflowExecutionInfo()
			if err := c.CancelWorkflow(cmd.Context(), id, info.GetExecution().GetRunId()); err != nil {
				return unreachable(err)
			}
			fmt.Fprintf(a.out, "cancel requested for %s; waiting for it to roll back\n", info.GetType().GetName())
			err = a.follow(cmd.Context(), c, c.GetWorkflow(cmd.Context(), id, info.GetExecution().GetRunId()), nil)
			if ee, ok := err.(*exitError); ok && ee.cancelledClean {
				fmt.Fprintln(a.out, ee.msg)
				return nil
			}
			if err == nil {
				fmt.Fprintln(a.out, "the operation had already finished before the cancel reached it")
			}
			return err
		},
	}
}

// operate loads the spec, submits (or attaches to) the operation and follows it.
func (a *app) operate(ctx context.Context, op string, opts workflows.Options, result any) error {
	spec, err := a.loadSpec()
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := a.dial(dialCtx)
	if err != nil {
		return err
	}
	defer c.Close()
	run, attached, err := submit(ctx, c, op, spec, opts)
	if err != nil {
		return err
	}
	if attached {
		fmt.Fprintf(a.out, "%s of cluster %s is already running: following it\n", op, spec.Cluster.Name)
	}
	return a.follow(ctx, c, run, result)
}
