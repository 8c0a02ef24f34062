package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/preflight"
	"github.com/spf13/cobra"
)

func (a *app) startCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Create what is missing of the cluster and start every VM",
		Long: `start checks the host (machine types, KVM, the base image), then creates
whatever of the cluster is missing, in order: network, storage pool, base
image (streamed into the pool), and for every VM in parallel its
copy-on-write volume and domain; then it starts every VM.

Starting a running cluster changes nothing; starting a stopped one only
starts its VMs. New compute nodes in the file join a running cluster
without restarting the others: their DHCP leases are added to the running
network in place. A VM's MAC and address depend on its name only (or its
static lease); a node that fails to come up is rolled back alone. Nodes
removed from the file are reported, never deleted (use destroy --vm). If a step fails or the run is cancelled, everything this run
created is removed again, in reverse order, and the error says what failed
and what was rolled back. Objects that existed before the run are kept.

When the run ends, start writes its XML trace (see hpcvm trace) and, on
success, the cluster's Ansible inventory (see hpcvm inventory).

Where host_configuration allows it, start also changes the host outside
libvirt: the routing of dns_mode routed, the host dnsmasq's entry of
dns_mode shared_dns (or routed) with enable_host_dns_integration, the
registry record of dns_mode service_discovery. It lists the changes first
and, as require_confirmation asks (the default), wants a yes (--yes
answers) for those not in place already; every change is recorded in the
host's audit log (hpcvm audit) and destroy undoes it.`,
		Example: `  hpcvm start -c examples/cluster.yaml
  hpcvm start -c cluster.yaml --wait-ip --wait-ip-timeout 3m
  hpcvm start -c cluster.yaml --host hv2 --inventory hosts.ini`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.v.GetString("name") != "" {
				return fail(ExitBadInput, "start needs the cluster file (-c); --name is for stop, destroy, status and cancel")
			}
			waitIP, _ := cmd.Flags().GetBool("wait-ip")
			if cmd.Flags().Changed("wait-ip-timeout") && !waitIP {
				return fail(ExitBadInput, "--wait-ip-timeout is how long --wait-ip waits: add --wait-ip, or drop --wait-ip-timeout\nnothing was submitted")
			}
			invoked := time.Now()
			spec, err := a.loadSpec()
			if err != nil {
				return err
			}
			for _, w := range cluster.Warnings(spec) {
				fmt.Fprintln(a.errOut, "warning:", w)
			}
			req := api.Request{Spec: spec}
			yes, _ := cmd.Flags().GetBool("yes")
			if req.ConfirmedHostChanges, err = a.confirmHostChanges(cmd.Context(), spec, yes); err != nil {
				return err
			}
			var res api.StartResult
			err = a.operate(cmd.Context(), api.StartClusterName, req, &res)
			a.reportResult(&res)
			if err != nil {
				return err
			}
			for _, n := range res.Notes {
				fmt.Fprintln(a.out, "note:", n)
			}
			if len(res.NotInFile) > 0 {
				fmt.Fprintf(a.out, "note: the cluster has VM(s) cluster.yaml no longer names: %s; start leaves them as they are (remove one with `hpcvm destroy --vm NAME`)\n", strings.Join(res.NotInFile, ", "))
			}
			if len(res.HostChanges) > 0 {
				fmt.Fprintf(a.out, "changed host %s outside libvirt (%d change(s), each in its audit log: hpcvm audit; hpcvm destroy undoes them):\n", res.Plan.Host, len(res.HostChanges))
				for _, c := range res.HostChanges {
					fmt.Fprintln(a.out, "  -", c)
				}
			}
			fmt.Fprintf(a.out, "cluster %s is running on %s (%s, %s): created %d object(s), started %d VM(s)\n",
				res.Plan.Cluster, res.Plan.Host, res.Plan.Machine.MachineType, domainKind(res.Plan.Machine.DomainType), len(res.Created), len(res.Started))
			for _, vm := range res.Plan.VMs {
				fmt.Fprintf(a.out, "  %-16s %-10s %-15s %s\n", vm.Name, vm.Role, vm.IP, vm.Domain)
			}
			var waitErr error
			if waitIP {
				within, _ := cmd.Flags().GetDuration("wait-ip-timeout")
				waitErr = a.waitForAddresses(cmd.Context(), res.Plan, within, invoked, res.Started)
			}
			if noInventory, _ := cmd.Flags().GetBool("no-inventory"); !noInventory {
				file, _ := cmd.Flags().GetString("inventory")
				if file == "" {
					file = a.v.GetString("inventory") // HPCVM_INVENTORY
				}
				a.writeInventory(res.Plan, spec, file)
			}
			return waitErr
		},
	}
	cmd.Flags().Bool("no-inventory", false, "do not write the Ansible inventory")
	cmd.Flags().Bool("wait-ip", false, "after the start, wait until every VM's guest holds an address (from the network's DHCP server or its guest agent)")
	cmd.Flags().Duration("wait-ip-timeout", 5*time.Minute, "how long --wait-ip waits before it reports the VMs without an address (exit 1)")
	cmd.Flags().String("inventory", "", "write the Ansible inventory to this file (HPCVM_INVENTORY); default inventory.path of cluster.yaml, else inventory/<cluster>.ini")
	cmd.MarkFlagsMutuallyExclusive("inventory", "no-inventory")
	cmd.Flags().BoolP("yes", "y", false, "answer yes to the confirmation host_configuration asks before hpcvm changes the host (dns_mode routed, shared_dns or service_discovery); changes already in place are not asked about")
	return cmd
}

// confirmHostChanges shows what the start will change on the host outside
// libvirt and, when host_configuration asks for it, gets a yes: from --yes
// or from the person at the terminal. Changes already in place on the
// host (a routed cluster started again) are not asked about. It returns
// whether the changes were confirmed; a refusal submits nothing.
func (a *app) confirmHostChanges(ctx context.Context, spec cluster.Spec, yes bool) (bool, error) {
	hc := cluster.HostChangesOf(spec)
	if !hc.Any() {
		return false, nil
	}
	p, err := cluster.NewPlan(spec)
	if err != nil {
		return false, fail(ExitBadInput, "%v", err)
	}
	hc.ApplyTo(&p)
	if hc.Confirm && !yes {
		if pending, err := a.pendingHostChanges(ctx, spec); err != nil {
			fmt.Fprintf(a.errOut, "note: cannot tell which host changes are in place on host %s already (%v); asking about all of them\n", p.Host, err)
		} else if hc = preflight.OnlyPending(hc, pending); !hc.Any() {
			// The workflow looks again before it goes on.
			fmt.Fprintf(a.errOut, "host changes of cluster %s are in place on host %s already: nothing to confirm\n", p.Cluster, p.Host)
			return false, nil
		}
	}
	fmt.Fprintf(a.errOut, "host_configuration lets hpcvm change host %s outside libvirt; this start will:\n", p.Host)
	for _, line := range cluster.HostChangeSummary(p, hc) {
		fmt.Fprintln(a.errOut, "  -", line)
	}
	if yes || !hc.Confirm {
		return yes || !hc.Confirm, nil
	}
	if a.report != nil {
		return false, fail(ExitBadInput, "-o json cannot ask for confirmation of host changes: give --yes; nothing was submitted")
	}
	fmt.Fprint(a.errOut, "Make these changes? [y/N]: ")
	line, _ := bufio.NewReader(a.in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, fail(ExitBadInput, "host changes not confirmed; nothing was submitted (--yes answers the question; host_configuration.require_confirmation: false or skip_confirmation: true stop it being asked)")
}

// pendingHostChanges asks the cluster's host which of its host changes
// are not in place.
func (a *app) pendingHostChanges(ctx context.Context, spec cluster.Spec) (api.PendingChanges, error) {
	var pending api.PendingChanges
	req, err := preflight.PendingHostChangesFor(spec, requester())
	if err != nil {
		return pending, err
	}
	c, err := a.dialWithin(ctx)
	if err != nil {
		return pending, err
	}
	defer c.Close()
	err = askHost(ctx, c, spec.Cluster.Host, api.QuestionPendingHostChanges, req, &pending, "look at its host changes", quickAnswer)
	return pending, err
}

// clockSlack is how far the host's clock (lease expiries) may be behind
// this machine's before a fresh lease looks stale, when a lease is judged
// against the time the start was asked for.
const clockSlack = 10 * time.Second

// bootSlack is the same when a lease is judged against the domain's own
// start (both times the host's): a lease taken moments before a start,
// by the guest's previous boot, must not pass for a fresh one.
const bootSlack = 2 * time.Second

// freshAddresses are the addresses held by mac that were taken (or renewed)
// since the guest's boot: a DHCP lease from before a stop lingers in the
// lease table until it runs out, and is not proof that the guest is up
// again. The boot is the domain's QEMU start where the host tells it
// (bootedAt), else the time the start was asked for (since).
func freshAddresses(all []api.LiveAddress, mac string, since, bootedAt time.Time) []string {
	var fresh []api.LiveAddress
	for _, l := range all {
		switch {
		case l.Source != "dhcp":
			fresh = append(fresh, l) // the guest agent answers now
		case !bootedAt.IsZero():
			if api.LeaseTakenSince(l.Expiry, bootedAt, bootSlack) {
				fresh = append(fresh, l)
			}
		case l.Expiry.IsZero() || api.LeaseTakenSince(l.Expiry, since, clockSlack):
			fresh = append(fresh, l)
		}
	}
	return liveIPs(fresh, mac)
}

// waitForAddresses asks the host's worker, every 2 s, for the addresses
// the guests hold, until each VM of the plan has one, or within passes. A
// VM this start started must have taken its address since the start was
// asked for; one that was running already may hold its lease from before.
func (a *app) waitForAddresses(ctx context.Context, p cluster.Plan, within time.Duration, since time.Time, started []string) error {
	c, err := a.dialWithin(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	req := api.Request{Spec: targetSpec(p.Cluster, p.Host), NameOnly: true}
	deadline := time.Now().Add(within)
	shown := map[string]bool{}
	fmt.Fprintf(a.out, "waiting up to %s for the guests to take their addresses\n", within)
	warned := false // that the addresses could not be read
	for {
		d, err := describeRaw(ctx, c, req)
		if err != nil {
			// A describe that times out (a busy host, a slow guest agent)
			// is asked again until the deadline.
			if !warned {
				warned = true
				fmt.Fprintf(a.errOut, "warning: the addresses could not be read (%v); asking again until the %s are up\n", err, within)
			}
			if !time.Now().Before(deadline) {
				return fail(ExitFailed, "the cluster started, but its addresses could not be read within %s: %v (try `hpcvm status` later)", within, err)
			}
			select {
			case <-ctx.Done():
				return fail(ExitInterrupted, "stopped waiting for addresses; the cluster is running")
			case <-time.After(2 * time.Second):
			}
			continue
		}
		var missing, stopped []string
		for _, vm := range p.VMs {
			if dom, ok := d.Inventory.Domain(vm.Domain); ok && dom.State != "running" && dom.State != "blocked" && dom.State != "" {
				// A paused, crashed or off guest takes no address:
				// waiting for it would only use up the timeout.
				stopped = append(stopped, vm.Name+" is "+dom.State)
				continue
			}
			ips := liveIPs(d.Inventory.LiveAddresses, vm.MAC)
			if slices.Contains(started, vm.Domain) {
				dom, _ := d.Inventory.Domain(vm.Domain)
				ips = freshAddresses(d.Inventory.LiveAddresses, vm.MAC, since, dom.StartedAt)
			}
			if len(ips) == 0 {
				missing = append(missing, vm.Name)
				continue
			}
			if !shown[vm.Name] {
				shown[vm.Name] = true
				note := ""
				if !slices.Contains(ips, vm.IP) {
					note = fmt.Sprintf(" (its static lease is %s)", vm.IP)
				}
				fmt.Fprintf(a.out, "  %-16s %s%s\n", vm.Name, strings.Join(ips, ", "), note)
			}
		}
		if len(stopped) > 0 {
			hint := ""
			if p.Machine.DomainType == "kvm" { // TCG guests have no nested KVM to blame
				hint = "; if the host's KVM is nested, try cluster.hardware.acceleration.enable_kvm: false"
			}
			return fail(ExitFailed, "the cluster started, but %s, so it will take no address: see `hpcvm status` and the domain's QEMU log (/var/log/libvirt/qemu/<domain>.log on the host)%s", strings.Join(stopped, ", "), hint)
		}
		if len(missing) == 0 {
			fmt.Fprintf(a.out, "every VM holds an address\n")
			return nil
		}
		if !time.Now().Before(deadline) {
			return fail(ExitFailed, "the cluster started, but after %s VM(s) %s hold no address: check their console (virsh console DOMAIN) for a guest that did not boot or does not ask for DHCP", within, strings.Join(missing, ", "))
		}
		select {
		case <-ctx.Done():
			return fail(ExitInterrupted, "stopped waiting for addresses; the cluster is running")
		case <-time.After(2 * time.Second):
		}
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
brings the cluster back as it was.

It stops every VM the cluster owns (by hpcvm's metadata), also those the
file no longer names; --name NAME --host HOST works without the file.`,
		Example: `  hpcvm stop -c cluster.yaml --timeout 30s
  hpcvm stop --name lab --host hv1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			timeout, _ := cmd.Flags().GetDuration("timeout")
			if timeout <= 0 {
				return fail(ExitBadInput, "--timeout must be positive")
			}
			req, err := a.loadTarget()
			if err != nil {
				return err
			}
			req.Options.ShutdownTimeout = timeout
			var res api.StopResult
			err = a.operate(cmd.Context(), api.StopClusterName, req, &res)
			a.reportResult(&res)
			if err != nil {
				return err
			}
			for _, w := range res.AwaitedBoot {
				if w.Answer != "" && w.Waited < time.Second {
					continue // it answered at once: nothing was waited for
				}
				if w.Answer != "" {
					fmt.Fprintf(a.out, "%s had booted %s before the stop: waited %s for it to answer (%s) before pressing its power button\n", w.VM, w.Booted, w.Waited, w.Answer)
				} else {
					fmt.Fprintf(a.out, "%s had booted %s before the stop and did not answer within %s (no guest agent connected, no fresh DHCP lease): its power button was pressed anyway\n", w.VM, w.Booted, w.Waited)
				}
			}
			fmt.Fprintf(a.out, "cluster stopped: %d shut down cleanly, %d forced off after %s, %d already off\n",
				len(res.ShutDown), len(res.ForcedOff), timeout, len(res.WasStopped))
			if res.TimerEnded {
				fmt.Fprintf(a.out, "  the %s timeout, not the guests, ended the wait: the guests still running then were forced off\n", timeout)
			} else if len(res.ShutDown) > 0 {
				fmt.Fprintln(a.out, "  every guest powered off by itself within the timeout")
			}
			if len(res.ForcedOff) > 0 {
				fmt.Fprintf(a.out, "  forced off: %s\n", strings.Join(res.ForcedOff, ", "))
			}
			return nil
		},
	}
	cmd.Flags().Duration("timeout", api.DefaultShutdownTimeout, "how long guests get to power off before they are forced off")
	return cmd
}

func (a *app) destroyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove every trace of the cluster: VMs, disks, pool, network",
		Long: `destroy forces off and undefines the cluster's VMs, deletes their disks,
the base volume, the pool with its directory, and the network. It works on a
half-created cluster and can be run again safely.

It works from what the cluster owns in libvirt, not from today's file:
after any edit (nodes removed, pool_path, base_image, network range or
bridge changed) it removes everything the cluster owns; with --name NAME
(and --host HOST) it needs no file at all. Ownership is proven, never
assumed: the network and the pool carry UUIDs hpcvm derives from the
cluster's name, each domain carries hpcvm's metadata, and a volume is the
cluster's only inside its pool. Objects with the cluster's names but
without those marks are left untouched and listed. The base volume goes
only when no remaining disk stands on it.

destroy exits 1 and lists what is left whenever anything of the cluster is
left (files in its pool hpcvm did not create, a failure); run it again once
the cause is fixed.

The host changes the cluster made (routing rules, its service discovery
record) are undone too, and recorded in the host's audit log.

--vm NAME removes one node only: its domain, its disk and its DHCP lease.`,
		Example: `  hpcvm destroy -c cluster.yaml
  hpcvm destroy --name lab --host hv1 --yes
  hpcvm destroy -c cluster.yaml --vm compute-03`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			yes, _ := cmd.Flags().GetBool("yes")
			if force, _ := cmd.Flags().GetBool("force"); force {
				yes = true
			}
			vms, _ := cmd.Flags().GetStringSlice("vm")
			req, err := a.loadTarget()
			if err != nil {
				return err
			}
			for _, vm := range vms {
				if err := cluster.ValidateVMName(vm); err != nil {
					return fail(ExitBadInput, "--vm: %v\nnothing was submitted", err)
				}
			}
			req.VMs = vms
			name := req.Spec.Cluster.Name
			if !yes && a.report != nil {
				return fail(ExitBadInput, "-o json cannot ask for confirmation: give --yes; nothing was deleted")
			}
			if !yes {
				what := fmt.Sprintf("cluster %s on %s with all its disks", name, req.Spec.Cluster.Host)
				if len(vms) > 0 {
					what = fmt.Sprintf("VM(s) %s of cluster %s with their disks", strings.Join(vms, ", "), name)
				}
				fmt.Fprintf(a.out, "This deletes %s. Type the cluster name to confirm: ", what)
				line, _ := bufio.NewReader(a.in).ReadString('\n')
				if strings.TrimSpace(line) != name {
					return fail(ExitBadInput, "not confirmed; nothing was deleted (use --yes to skip the question)")
				}
			}
			var res api.DestroyResult
			err = a.operate(cmd.Context(), api.DestroyClusterName, req, &res)
			var ee *exitError
			if errors.As(err, &ee) && ee.details != nil {
				_ = ee.details(&res)
			}
			a.reportResult(&res)
			a.printDestroy(res)
			if err != nil {
				return err
			}
			switch {
			case len(vms) > 0:
				fmt.Fprintf(a.out, "VM(s) removed from cluster %s: deleted %d object(s)\n", name, len(res.Deleted))
				if still := stillPlanned(req, vms); len(still) == 1 {
					fmt.Fprintf(a.out, "note: %s is still in the cluster file, so the next `hpcvm start` creates it again: remove it from the file (or lower its count) to keep it gone\n", still[0])
				} else if len(still) > 1 {
					fmt.Fprintf(a.out, "note: %s are still in the cluster file, so the next `hpcvm start` creates them again: remove them from the file (or lower their count) to keep them gone\n", strings.Join(still, ", "))
				}
			case len(res.LeftAlone) > 0:
				fmt.Fprintf(a.out, "cluster %s destroyed: deleted %d object(s), nothing of it is left; the objects with its names listed above were not created by hpcvm and were left untouched\n", name, len(res.Deleted))
			default:
				fmt.Fprintf(a.out, "cluster %s destroyed: deleted %d object(s), nothing of it is left\n", name, len(res.Deleted))
			}
			return nil
		},
	}
	cmd.Flags().BoolP("yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolP("force", "f", false, "the same as --yes (the Python tool's flag)")
	cmd.Flags().StringSlice("vm", nil, "remove only this node (domain, disk, DHCP lease); repeat or separate with commas")
	return cmd
}

func (a *app) printDestroy(res api.DestroyResult) {
	for _, d := range res.Deleted {
		fmt.Fprintln(a.out, "  deleted", d)
	}
	for _, c := range res.UndoneHostChanges {
		fmt.Fprintln(a.out, "  undid host change:", c)
	}
	for _, k := range res.Kept {
		fmt.Fprintln(a.out, "  LEFT:", k)
	}
	for _, l := range res.LeftAlone {
		fmt.Fprintln(a.out, "  not created by hpcvm, left untouched:", l)
	}
	for _, m := range res.Missing {
		fmt.Fprintln(a.out, "  no such VM in the cluster:", m)
	}
}

// operate submits (or attaches to) the operation for req and follows it.
func (a *app) operate(ctx context.Context, op string, req api.Request, result any) error {
	c, err := a.dialWithin(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if a.report != nil {
		a.report.Cluster, a.report.Host = req.Spec.Cluster.Name, req.Spec.Cluster.Host
	}
	if req.RequestedBy == "" {
		req.RequestedBy = requester()
	}
	// Given, it is part of the request; not given, the run takes the
	// default, and a run of another client compares equal.
	if f := a.flags.Lookup("host-timeout"); f != nil && f.Changed {
		if req.Options.HostTimeout = a.v.GetDuration("host-timeout"); req.Options.HostTimeout <= 0 {
			return fail(ExitBadInput, "--host-timeout must be positive")
		}
	}
	run, attached, err := submit(ctx, c, op, req)
	if err != nil {
		return err
	}
	if a.report != nil {
		a.report.WorkflowID, a.report.RunID = run.GetID(), run.GetRunID()
	}
	if attached {
		fmt.Fprintf(a.out, "%s of cluster %s is already running: following it\n", op, req.Spec.Cluster.Name)
	}
	err = a.follow(ctx, c, run, result)
	// A run that ended, well or not, leaves its XML trace; one the
	// operator stopped following goes on, and is traced with `hpcvm trace`.
	var ee *exitError
	if err == nil || (errors.As(err, &ee) && ee.code != ExitInterrupted && ee.code != ExitUnreachable) {
		a.traceRun(c, run)
	}
	return err
}

// stillPlanned are the VMs of a destroy --vm that the cluster file still
// plans: a start would create them again.
func stillPlanned(req api.Request, vms []string) []string {
	if req.NameOnly {
		return nil
	}
	plan, err := cluster.NewPlan(req.Spec)
	if err != nil {
		return nil
	}
	var out []string
	for _, vm := range vms {
		if _, ok := plan.VM(vm); ok {
			out = append(out, vm)
		}
	}
	return out
}
