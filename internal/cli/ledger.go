package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/registry"
	"github.com/spf13/cobra"
)

func (a *app) ledgerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Show what each cluster holds of a host: pinned CPUs, hugepages, memory, PCI devices",
		Long: `ledger prints a host's ledger: for every VM of every cluster on the host,
the host CPUs its vCPUs are pinned to, the hugepages (size, NUMA cell,
count) and the memory it holds, and the PCI functions clusters claim with
exclusive_mode. A start claims these before it creates anything, one claim
at a time, so two clusters starting at once never get the same CPU, page
or device; the claims last until destroy (a stopped cluster keeps them,
so it can always start again). Claims marked "adopted" were read from a
domain on the host (the ledger was lost, or the domain is older than it).

The host is --host, else cluster.host of the file given with -c, else this
machine's hostname. The ledger is read from Temporal: no worker needs to
run.`,
		Example: `  hpcvm ledger --host hv1
  hpcvm ledger -c cluster.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, _ := cmd.Flags().GetString("output")
			if format != "table" && format != "json" {
				return fail(ExitBadInput, "--output must be table or json, not %q", format)
			}
			host := strings.ToLower(a.v.GetString("host"))
			if host == "" && a.flags.Changed("config") {
				spec, err := a.loadSpec()
				if err != nil {
					return err
				}
				host = spec.Cluster.Host
			}
			if host == "" {
				h, err := os.Hostname()
				if err != nil {
					return fail(ExitBadInput, "--host is required (the hostname could not be read: %v)", err)
				}
				host = strings.ToLower(h)
			}
			ctx := cmd.Context()
			c, err := a.dialWithin(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			view, found, err := registry.Ledger(ctx, c, host)
			if err != nil {
				return unreachable(err)
			}
			if format == "json" {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(view)
			}
			if !found {
				fmt.Fprintf(a.out, "host %s has no ledger: no start has claimed anything there (the first start builds it from what the host's libvirt holds)\n", host)
				return nil
			}
			return printLedger(a, view)
		},
	}
	cmd.Flags().StringP("output", "o", "table", "table or json")
	return cmd
}

func printLedger(a *app, view api.LedgerView) error {
	if len(view.Resources) == 0 && len(view.Devices) == 0 {
		fmt.Fprintf(a.out, "host %s: nothing is claimed\n", view.Host)
		return nil
	}
	fmt.Fprintf(a.out, "Host %s\n", view.Host)
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tVM\tPINNED CPUS\tHUGEPAGES\tMEMORY\tSINCE\tBY")
	for _, r := range view.Resources {
		by := r.RunID
		if r.Adopted {
			by = "adopted from libvirt"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d MiB\t%s\t%s\n", r.Cluster, r.VM, orDash(cpuList(r.CPUs)), orDash(pageList(r.Hugepages)),
			r.MemoryMiB, r.Since.Local().Format(time.RFC3339), by)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(view.Devices) > 0 {
		fmt.Fprintln(a.out, "PCI functions (exclusive_mode):")
		tw = tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tCLUSTER\tVMS\tSINCE")
		for _, d := range view.Devices {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Address, d.Cluster, d.HolderNames(), d.Since.Local().Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	totals := view.Totals()
	var clusters []string
	for c := range totals {
		clusters = append(clusters, c)
	}
	sort.Strings(clusters)
	for _, c := range clusters {
		t := totals[c]
		fmt.Fprintf(a.out, "cluster %s holds %d VM(s): %d pinned CPU(s), %d MiB of hugepages, %d MiB of memory, %d device(s)\n", c, t.VMs, t.CPUs, t.HugepageMiB, t.MemoryMiB, t.Devices)
	}
	return nil
}

func cpuList(cpus []int) string {
	var parts []string
	for _, c := range cpus {
		parts = append(parts, fmt.Sprint(c))
	}
	return strings.Join(parts, ",")
}

func pageList(pages []api.HugepageClaim) string {
	var parts []string
	for _, p := range pages {
		where := "any cell"
		if p.Cell >= 0 {
			where = fmt.Sprintf("cell %d", p.Cell)
		}
		parts = append(parts, fmt.Sprintf("%d×%dK on %s", p.Pages, p.SizeKiB, where))
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
