package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/registry"
	"github.com/hpcvm/hpcvm/internal/workflows"
	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// ClusterEntry is one line of `hpcvm list -o json`.
type ClusterEntry struct {
	Cluster string `json:"cluster"`
	Host    string `json:"host"`
	// State is what the newest operation left: running, stopped,
	// destroyed, or "<operation> running/failed/...". With --live, the
	// state the host's worker reads from libvirt.
	State     string    `json:"state"`
	Operation string    `json:"last_operation"` // start, stop, destroy
	Result    string    `json:"result"`         // running, completed, failed, canceled, terminated, timed out
	Since     time.Time `json:"since"`          // when the operation ended (started, while it runs)
	RunID     string    `json:"run_id"`
	// BoundTo are the hosts the cluster registry binds the cluster to:
	// it exists there until a destroy removes it. Empty for a cluster
	// destroyed, or made before the registry.
	BoundTo []string `json:"bound_to,omitempty"`
}

func (a *app) listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every cluster: where it lives, its newest operation and state",
		Long: `list shows every cluster of this Temporal namespace: those the cluster
registry binds to a host (from their first start until a destroy removes
them, however long ago their last operation ran), and those with an
operation within the namespace's retention period, newest first: its
host, its last operation (start, stop, destroy), how that ended and when,
and the state it left the cluster in. --host limits the list to one
host's clusters.
--live asks each host's worker for the state libvirt has now (slower; a
host without a running worker shows "no answer").`,
		Example: `  hpcvm list
  hpcvm list --host hv1 --live
  hpcvm list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, _ := cmd.Flags().GetString("output")
			if format != "table" && format != "json" {
				return fail(ExitBadInput, "--output must be table or json, not %q", format)
			}
			live, _ := cmd.Flags().GetBool("live")
			ctx := cmd.Context()
			c, err := a.dialWithin(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			entries, err := listClusters(ctx, c, strings.ToLower(a.v.GetString("host")))
			if err != nil {
				return err
			}
			if live {
				for i := range entries {
					e := &entries[i]
					st, err := describe(ctx, c, api.Request{Spec: targetSpec(e.Cluster, e.Host), NameOnly: true})
					if err != nil {
						e.State = "no answer from the host's worker"
						continue
					}
					e.State = st.State
				}
			}
			if format == "json" {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			if len(entries) == 0 {
				fmt.Fprintln(a.out, "no clusters: none is bound to a host, and no hpcvm operation has run in this namespace (within its retention period)")
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tHOST\tSTATE\tLAST OPERATION\tRESULT\tSINCE")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Cluster, e.Host, e.State, e.Operation, e.Result, e.Since.Local().Format(time.RFC3339))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !live {
				// Temporal knows what the operations did, not what
				// happened to the guests since: say so where it matters.
				fmt.Fprintln(a.out, "STATE is what each cluster's last operation left it in; `hpcvm list --live` reads libvirt now (a guest paused, crashed or off since shows the cluster as degraded)")
			}
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "table", "table or json")
	cmd.Flags().Bool("live", false, "ask each host's worker for the cluster's state in libvirt now")
	return cmd
}

// listClusters reads the newest operation of every cluster from Temporal's
// visibility: the operations share one workflow ID per cluster, so the
// newest run of each ID is the cluster's last operation. It needs no
// custom search attribute, so it works on any namespace.
func listClusters(ctx context.Context, c client.Client, host string) ([]ClusterEntry, error) {
	// The host is the run's (its memo; runs of older clients: their
	// queue), filtered here: it needs no search attribute either.
	query := fmt.Sprintf("WorkflowId STARTS_WITH '%s'", api.WorkflowID(""))
	seen := map[string]bool{}
	// before: for each cluster, whether an older operation left it in
	// libvirt (a completed start or stop, or destroy --vm), as far as the
	// runs within retention say.
	before := map[string]*heldBy{}
	var out []ClusterEntry
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, unreachable(err)
		}
		for _, info := range resp.GetExecutions() {
			id := info.GetExecution().GetWorkflowId()
			if host != "" && hostOfRun(info) != host {
				continue
			}
			if seen[id] {
				// An older operation of a cluster already listed: the
				// newest completed one says whether it existed before.
				if before[id] == nil && info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
					before[id] = &heldBy{op: info.GetType().GetName(), workflowID: id, runID: info.GetExecution().GetRunId()}
				}
				continue
			}
			seen[id] = true
			e := ClusterEntry{
				Cluster:   strings.TrimPrefix(id, api.WorkflowID("")),
				Host:      hostOfRun(info),
				Operation: workflows.OperationWord(info.GetType().GetName()),
				Result:    resultWord(info.GetStatus()),
				Since:     info.GetStartTime().AsTime(),
				RunID:     info.GetExecution().GetRunId(),
			}
			if info.GetCloseTime() != nil {
				e.Since = info.GetCloseTime().AsTime()
			}
			e.State = stateLeft(e.Operation, info.GetStatus())
			if e.Operation == "destroy" && info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				// destroy --vm removes nodes, not the cluster.
				req, err := startedWith(ctx, c, heldBy{op: api.DestroyClusterName, workflowID: id, runID: e.RunID})
				if err == nil && len(req.VMs) > 0 {
					e.State = "exists: destroy removed only VM(s) " + strings.Join(req.VMs, ", ") + " (see hpcvm status)"
				}
			}
			out = append(out, e)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	if err := withBindings(ctx, c, host, &out); err != nil {
		return nil, err
	}
	for i := range out {
		e := &out[i]
		if e.Operation != "start" || e.Result == "running" || e.Result == "completed" || len(e.BoundTo) > 0 {
			continue
		}
		existed := false
		if prev := before[api.WorkflowID(e.Cluster)]; prev != nil {
			existed = prev.op != api.DestroyClusterName
			if !existed {
				// destroy --vm removed nodes, not the cluster.
				req, err := startedWith(ctx, c, *prev)
				existed = err != nil || len(req.VMs) > 0
			}
		}
		if !existed {
			// A start that failed is rolled back: with nothing of the
			// cluster there before it, nothing is left unless the
			// rollback itself failed (status says).
			e.State = "absent: the last start " + e.Result + " and the cluster did not exist before it (unless its rollback failed: see hpcvm status)"
		}
	}
	return out, nil
}

func resultWord(s enums.WorkflowExecutionStatus) string {
	switch s {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return "running"
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enums.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enums.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timed out"
	case enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continued as new"
	}
	return strings.ToLower(s.String())
}

// stateLeft is the state an operation's end leaves the cluster in, as far
// as Temporal knows: a failed or cancelled start was rolled back, so it
// says nothing of the cluster before it (--live asks libvirt).
func stateLeft(op string, s enums.WorkflowExecutionStatus) string {
	if s == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return op + " in progress"
	}
	if s != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		return "unknown: the last " + op + " " + resultWord(s) + " (see hpcvm status)"
	}
	switch op {
	case "start":
		return "running"
	case "stop":
		return "stopped"
	case "destroy":
		return "destroyed"
	}
	return "unknown"
}

// targetSpec is the spec of a cluster known by name and host alone.
func targetSpec(name, host string) cluster.Spec {
	return cluster.Spec{Cluster: cluster.ClusterSpec{Name: name, Host: host}}
}

// withBindings adds the registry's bindings to the entries: a bound
// cluster's hosts, and a line for each bound cluster whose runs the
// namespace no longer retains. A namespace without a registry (no start
// since it was introduced) lists from visibility alone.
func withBindings(ctx context.Context, c client.Client, host string, out *[]ClusterEntry) error {
	bindings, _, err := registry.Bindings(ctx, c)
	if err != nil {
		return unreachable(err)
	}
	index := map[string]int{}
	for i, e := range *out {
		index[e.Cluster] = i
	}
	for _, b := range bindings {
		if i, ok := index[b.Cluster]; ok {
			(*out)[i].BoundTo = b.Hosts
			continue
		}
		if host != "" && !b.HasHost(host) {
			continue
		}
		*out = append(*out, ClusterEntry{Cluster: b.Cluster, Host: strings.Join(b.Hosts, ","), BoundTo: b.Hosts, Since: b.Since,
			State: "exists: bound to its host since then; its runs are past the namespace's retention (hpcvm status reads it)"})
	}
	return nil
}
