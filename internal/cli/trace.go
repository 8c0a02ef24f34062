package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/trace"
	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

func (a *app) traceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Write the XML trace of a run: every XML document it handed libvirt",
		Long: `trace writes the XML trace of a run of the cluster (the newest, or --run ID)
into --trace-dir (default ./traces):

  traces/run_<cluster>_<operation>_<YYYYMMDD_HHMMSS_mmm>/
    001_network_create_<name>_SUCCESS.xml
    ...
    NNN_<type>_<operation>_<target>_<SUCCESS|FAILED|NOT_APPLIED>.xml
    trace_metadata.json

One file per XML document of a libvirt step (network, pool, volume, domain,
DHCP lease), in the order the steps ended, retried attempts and the
compensations of a rollback included. NOT_APPLIED marks a document libvirt
was never given: the step found the object already existing as the
document describes it and kept it (a start of a cluster that exists
applies none). trace_metadata.json lists every
libvirt call of the run, also those that hand libvirt only a name (start,
undefine, delete), with its time, result, error, attempt and whether it
undid part of the run.

The trace is made from the run's history in Temporal, so it can be made on
any machine that reaches Temporal, for a run that ended long ago or one that
is still going (made again later, it is brought up to date). start, stop and
destroy write the trace of their run when it ends.`,
		Example: `  hpcvm trace -c cluster.yaml
  hpcvm trace --name lab --run 7c0e2d4b-... --trace-dir /tmp/traces`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := a.loadTarget()
			if err != nil {
				return err
			}
			dir := a.traceDir()
			if dir == "" {
				return fail(ExitBadInput, "the trace directory is empty (--trace-dir or HPCVM_TRACE_DIR): say where the trace goes")
			}
			runID, _ := cmd.Flags().GetString("run")
			c, err := a.dialWithin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			sum, err := writeTrace(cmd.Context(), c, dir, api.WorkflowID(req.Spec.Cluster.Name), runID)
			var notFound *serviceerror.NotFound
			switch {
			case errors.As(err, &notFound):
				return fail(ExitBadInput, "cluster %s has no run %s in Temporal: %v (runs are kept for the namespace's retention period)", req.Spec.Cluster.Name, orNewest(runID), err)
			case err != nil:
				return fail(ExitUnreachable, "reading the history of cluster %s's run %s: %v", req.Spec.Cluster.Name, orNewest(runID), err)
			}
			fmt.Fprintln(a.out, sum)
			return nil
		},
	}
	cmd.Flags().String("run", "", "the run ID (`hpcvm status` and the Web UI show it); default the cluster's newest run")
	return cmd
}

func orNewest(runID string) string {
	if runID == "" {
		return "(newest)"
	}
	return runID
}

// writeTrace makes and writes the trace of a run.
func writeTrace(ctx context.Context, c client.Client, dir, workflowID, runID string) (trace.Summary, error) {
	m, files, err := trace.Build(ctx, c, workflowID, runID)
	if err != nil {
		return trace.Summary{}, err
	}
	return trace.Write(dir, m, files)
}

// traceRun writes the trace of the run an operation followed, when
// --trace-dir is set; a trace that cannot be written is a warning, never
// the operation's failure.
func (a *app) traceRun(c client.Client, run client.WorkflowRun) {
	dir := a.traceDir()
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := writeTrace(ctx, c, dir, run.GetID(), run.GetRunID())
	if err != nil {
		fmt.Fprintf(a.errOut, "warning: the XML trace of run %s was not written: %v (write it later with `hpcvm trace --run %s`)\n", run.GetRunID(), err, run.GetRunID())
		return
	}
	if a.report != nil {
		a.report.Trace = traceReport(sum)
	}
	fmt.Fprintln(a.out, sum)
}
