package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/hpcvm/hpcvm/api"
	"github.com/spf13/cobra"
)

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the changes hpcvm made to a host outside libvirt (its audit log)",
		Long: `audit prints the audit log of the cluster's host: every change hpcvm
made there outside libvirt's own objects (IP forwarding and the firewall
rules of dns_mode routed, the registry record of dns_mode
service_discovery), and every one it undid, each with when, who asked
(user@machine of the client), which cluster and run, the command it ran,
the value before and after, and the outcome. Changes it found already in
place are listed as unchanged; changes a destroy did not undo (IP
forwarding that routed clusters or another network still need) as kept,
with the reason: a kept change is never undone later. hpcvm records each
change before making it (pending) and its outcome after; a change listed
as pending has no recorded outcome (the worker stopped during it), and
undo treats it as possibly made.

The log is a file on the host (hpcvm-worker --audit-log), kept when
Temporal forgets old runs; the host's worker reads it. By default audit
shows the cluster's newest 200 records; --all shows every cluster's on that
host, --last N another number (0: all).`,
		Example: `  hpcvm audit -c cluster.yaml
  hpcvm audit --name lab --host hv1 --last 20
  hpcvm audit --host hv1 --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, _ := cmd.Flags().GetString("output")
			if format != "table" && format != "json" {
				return fail(ExitBadInput, "--output must be table or json, not %q", format)
			}
			all, _ := cmd.Flags().GetBool("all")
			last, _ := cmd.Flags().GetInt("last")
			if last < 0 {
				return fail(ExitBadInput, "--last must be 0 (every record) or more, not %d", last)
			}
			var host, name string
			if all && a.v.GetString("name") == "" && !a.flags.Changed("config") {
				// The whole host's log needs no cluster.
				host = strings.ToLower(a.v.GetString("host"))
				if host == "" {
					h, err := os.Hostname()
					if err != nil {
						return fail(ExitBadInput, "--host is required with --all (the hostname could not be read: %v)", err)
					}
					host = strings.ToLower(h)
				}
			} else {
				req, err := a.loadTarget()
				if err != nil {
					return err
				}
				host, name = req.Spec.Cluster.Host, req.Spec.Cluster.Name
			}
			if all {
				name = ""
			}
			ctx := cmd.Context()
			c, err := a.dialWithin(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var log api.AuditLog
			if err := askHost(ctx, c, host, api.QuestionAudit, api.AuditRequest{Cluster: name, Last: last}, &log, "read its audit log", quickAnswer); err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(log)
			}
			a.printAudit(log, name)
			return nil
		},
	}
	cmd.Flags().Bool("all", false, "every cluster's records on the host, not only this cluster's")
	cmd.Flags().Int("last", 200, "only the newest N records (0: all; a very long log may exceed what Temporal passes back, about 2 MB)")
	cmd.Flags().StringP("output", "o", "table", "table or json")
	return cmd
}

func (a *app) printAudit(log api.AuditLog, cluster string) {
	whose := "every cluster"
	if cluster != "" {
		whose = "cluster " + cluster
	}
	if len(log.Records) == 0 {
		fmt.Fprintf(a.out, "hpcvm made no change to host %s for %s (audit log %s)\n", log.Host, whose, log.Path)
		return
	}
	fmt.Fprintf(a.out, "host %s, %s: %d record(s) from audit log %s\n", log.Host, whose, len(log.Records), log.Path)
	w := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tCLUSTER\tACTION\tOUTCOME\tCHANGE\tBEFORE→AFTER\tBY\tRUN")
	for _, r := range log.Records {
		change := r.Change
		if r.Netns != "" {
			change += " [netns " + r.Netns + "]"
		}
		values := ""
		if r.Before != "" || r.After != "" {
			values = r.Before + "→" + r.After
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05"), r.Cluster, r.Action, r.Outcome, change, values, dashIfEmpty(r.RequestedBy), dashIfEmpty(strings.TrimSpace(r.WorkflowID+" "+r.RunID)))
		if r.Command != "" {
			fmt.Fprintf(w, "\t\t\t\t  $ %s\t\t\t\n", r.Command)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "\t\t\t\t  %s\t\t\t\n", r.Note)
		}
		if r.Unsure() {
			fmt.Fprintf(w, "\t\t\t\t  %s\t\t\t\n", "no outcome recorded (the worker stopped during this change): hpcvm treats it as possibly made")
		}
	}
	_ = w.Flush()
	if log.Skipped > 0 {
		fmt.Fprintf(a.out, "warning: %d line(s) of the log are not records (a write cut short) and were skipped\n", log.Skipped)
	}
}

// requester is who submits a run, for the host's audit log: the user and
// the machine the client runs on.
func requester() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	return name + "@" + h
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
