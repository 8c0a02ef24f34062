package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/preflight"
	"github.com/spf13/cobra"
)

func (a *app) validateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the cluster file against itself and against its host, creating nothing",
		Long: `validate runs every check start runs before it creates anything, and prints
each with ✓ or ✗ and its reason: the file's settings, objects with the
cluster's names that hpcvm did not make, the host's libvirt, QEMU and KVM,
the CPU model and features, NUMA cells, hugepages, memory backing and CPU
pinning against what the host offers, the worker's allowed paths, the base
image and the disk sizes. The host checks run on the host's worker. Nothing
is created or changed.

Exit status: 0 when every check passes, 2 when one fails, 3 when the host's
worker cannot be reached.`,
		Example: `  hpcvm validate -c cluster.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, ok, err := a.loadSpecForChecks()
			if err != nil || !ok {
				return err
			}
			r, err := a.runPlan(cmd.Context(), spec)
			if err != nil {
				return err
			}
			a.printChecks(r)
			a.printHostChanges(spec)
			for _, w := range cluster.Warnings(spec) {
				fmt.Fprintln(a.out, "warning:", w)
			}
			for _, n := range r.Plan.Machine.Notes {
				fmt.Fprintln(a.out, "note:", n)
			}
			if !r.OK() {
				return fail(ExitBadInput, "cluster %s cannot start on host %s as written: %d check(s) failed; nothing was created", spec.Cluster.Name, spec.Cluster.Host, failedChecks(r))
			}
			fmt.Fprintf(a.out, "cluster %s can start on host %s\n", spec.Cluster.Name, spec.Cluster.Host)
			return nil
		},
	}
}

func (a *app) planCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what start would create or change, creating nothing",
		Long: `plan asks the host's worker what exists of the cluster, runs the checks of
validate, and prints what start would do with every object: create it, keep
it, start it (a stopped VM), change it (leases for new VMs), or refuse
(an object with the cluster's name that hpcvm did not make). For each VM it
shows the domain name, MAC, address, vCPUs with topology and NUMA cells,
memory and disk, and for the cluster the machine type, domain type (KVM or
TCG) and CPU the host agreed to. Nothing is created or changed.

--xml prints every XML document start would hand to libvirt. -o json prints
the same report for scripts (with the documents when --xml is given).
Exit status: 0 when start would go ahead, 2 when a check fails, 3 when the
host's worker cannot be reached.`,
		Example: `  hpcvm plan -c cluster.yaml
  hpcvm plan -c cluster.yaml --xml
  hpcvm plan -c cluster.yaml -o json | jq '.objects[] | select(.action=="create")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, _ := cmd.Flags().GetString("output")
			if format != "table" && format != "json" {
				return fail(ExitBadInput, "--output must be table or json, not %q", format)
			}
			withXML, _ := cmd.Flags().GetBool("xml")
			spec, ok, err := a.loadSpecForChecks()
			if err != nil || !ok {
				return err
			}
			r, err := a.runPlan(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if !withXML {
				r.Documents = nil
			}
			if format == "json" {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				a.printPlan(spec, r, withXML)
			}
			if !r.OK() {
				return fail(ExitBadInput, "cluster %s cannot start on host %s as written: %d check(s) failed; nothing was created", spec.Cluster.Name, spec.Cluster.Host, failedChecks(r))
			}
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "table", "table or json")
	cmd.Flags().Bool("xml", false, "print every XML document start would give libvirt")
	return cmd
}

// loadSpecForChecks reads the file; a file that fails its own checks is
// printed as ✗ lines (ok false, exit 2) instead of one error.
func (a *app) loadSpecForChecks() (cluster.Spec, bool, error) {
	spec, err := a.readSpec()
	var verr cluster.ValidationError
	switch {
	case err == nil:
		return spec, true, nil
	case !errors.As(err, &verr):
		return spec, false, fail(ExitBadInput, "%v\nnothing was checked on the host", err)
	}
	for _, fe := range verr {
		fmt.Fprintf(a.out, "✗ file: %s\n", fe.Error())
	}
	return spec, false, fail(ExitBadInput, "%s has %d problem(s); the host was not asked and nothing was created", a.v.GetString("config"), len(verr))
}

// runPlan asks the host's worker to check the cluster and plan it.
func (a *app) runPlan(ctx context.Context, spec cluster.Spec) (api.PlanReport, error) {
	c, err := a.dial(ctx)
	if err != nil {
		return api.PlanReport{}, err
	}
	defer c.Close()
	var r api.PlanReport
	err = askHost(ctx, c, spec.Cluster.Host, api.QuestionPlan, api.Request{Spec: spec}, &r, "check the cluster", planAnswer)
	return r, err
}

func failedChecks(r api.PlanReport) int {
	n := 0
	for _, c := range r.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

func (a *app) printChecks(r api.PlanReport) {
	for _, c := range r.Checks {
		mark := "✓"
		if !c.OK {
			mark = "✗"
		}
		fmt.Fprintf(a.out, "%s %s: %s\n", mark, c.Name, c.Detail)
	}
}

func (a *app) printPlan(spec cluster.Spec, r api.PlanReport, withXML bool) {
	p := r.Plan
	if !r.OK() {
		for _, c := range r.Checks {
			if !c.OK {
				fmt.Fprintf(a.out, "✗ %s: %s\n", c.Name, c.Detail)
			}
		}
		fmt.Fprintln(a.out)
	}
	machine := "not agreed with the host (see ✗ above)"
	if p.Machine.MachineType != "" {
		machine = fmt.Sprintf("machine %s, %s, CPU %s", p.Machine.MachineType, domainKind(p.Machine.DomainType), preflight.CPUSummary(p.Machine))
		if p.Machine.HugepageKiB > 0 {
			machine += fmt.Sprintf(", hugepages of %d KiB", p.Machine.HugepageKiB)
		}
		if p.Machine.MemfdBacking {
			machine += ", shared memfd memory"
		}
	}
	fmt.Fprintf(a.out, "cluster %s on host %s: %s\n\n", spec.Cluster.Name, spec.Cluster.Host, machine)
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tKIND\tNAME\tDETAIL")
	for _, o := range r.Objects {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Action, o.Kind, o.Name, o.Detail)
	}
	_ = tw.Flush()
	if len(r.NotInFile) > 0 {
		fmt.Fprintf(a.out, "\nnote: the cluster has VM(s) cluster.yaml no longer names: %s; start leaves them as they are\n", strings.Join(r.NotInFile, ", "))
	}
	a.printHostChanges(spec)
	for _, w := range cluster.Warnings(spec) {
		fmt.Fprintln(a.out, "warning:", w)
	}
	for _, n := range p.Machine.Notes {
		fmt.Fprintln(a.out, "note:", n)
	}
	if withXML {
		for _, d := range r.Documents {
			fmt.Fprintf(a.out, "\n<!-- %s %s -->\n%s\n", d.Kind, d.Name, d.XML)
		}
		if len(r.Documents) == 0 {
			fmt.Fprintln(a.out, "\nno XML: it is rendered only once every check passes")
		}
	}
}

// printHostChanges lists what a start would change on the host outside
// libvirt, as host_configuration allows.
func (a *app) printHostChanges(spec cluster.Spec) {
	hc := cluster.HostChangesOf(spec)
	if !hc.Any() {
		return
	}
	p, err := cluster.NewPlan(spec)
	if err != nil {
		return
	}
	ask := "start asks for confirmation first; --yes answers it"
	if !hc.Confirm {
		ask = "start does not ask: require_confirmation is false or skip_confirmation true"
	}
	fmt.Fprintf(a.out, "host changes outside libvirt on %s (%s):\n", p.Host, ask)
	for _, line := range cluster.HostChangeSummary(p, hc) {
		fmt.Fprintln(a.out, "  -", line)
	}
}
