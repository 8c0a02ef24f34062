package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/workflows"
	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Status is `hpcvm status -o json`: stable field names for scripts.
type Status struct {
	Cluster string `json:"cluster"`
	Host    string `json:"host"`
	State   string `json:"state"` // running, partly running, degraded (…), stopped, partial, absent
	// Virtualization is what the cluster's domains run under, as libvirt
	// has them defined: KVM, TCG emulation, or each VM's when they differ.
	Virtualization string        `json:"virtualization,omitempty"`
	Operation      *OperationRef `json:"operation,omitempty"` // running now
	// LastOperation is the newest operation that ended, and how.
	LastOperation *OperationRef `json:"last_operation,omitempty"`
	Network       *NetworkInfo  `json:"network,omitempty"`
	Pool          *PoolInfo     `json:"storage_pool,omitempty"`
	VMs           []VMStatus    `json:"vms"`
	LeftAlone     []string      `json:"not_owned,omitempty"`
	Warnings      []string      `json:"warnings,omitempty"`
}

// OperationRef is an operation on the cluster: the one running, or the
// last one that ended.
type OperationRef struct {
	Type    string     `json:"type"`
	RunID   string     `json:"run_id"`
	Started time.Time  `json:"started"`
	Ended   *time.Time `json:"ended,omitempty"`
	Result  string     `json:"result,omitempty"` // completed, failed, canceled, terminated, timed out
}

// NetworkInfo is the network part of the status.
type NetworkInfo struct {
	Name    string `json:"name"`
	Bridge  string `json:"bridge"`
	Range   string `json:"network_range"`
	Gateway string `json:"gateway"`
	Active  bool   `json:"active"`
	// Forward is how the guests reach beyond the bridge: nat, none, ...
	Forward string `json:"forward,omitempty"`
	// RoutedWith are the other routed clusters this one reaches (dns_mode
	// routed); Routed says it is one of them at all.
	Routed     bool     `json:"routed,omitempty"`
	RoutedWith []string `json:"routed_with,omitempty"`
}

// PoolInfo is the pool part of the status.
type PoolInfo struct {
	Name        string  `json:"name"`
	Path        string  `json:"path"`
	Active      bool    `json:"active"`
	CapacityGB  float64 `json:"capacity_gb"`
	AllocatedGB float64 `json:"allocation_gb"`
	AvailableGB float64 `json:"available_gb"`
}

// VMStatus is one VM of the plan.
type VMStatus struct {
	Name   string `json:"name"`
	Type   string `json:"vm_type"`
	Domain string `json:"domain"`
	State  string `json:"state"` // libvirt's state, or "absent"
	// DomainType is the type its domain is defined with: kvm, or qemu
	// (TCG emulation); "" when it has none (or the worker is older).
	DomainType string `json:"domain_type,omitempty"`
	IP         string `json:"ip_address"` // planned: its static lease
	MAC        string `json:"mac,omitempty"`
	// LiveIPs are the addresses the guest holds now: from the network's
	// DHCP server and its guest agent, if one answers.
	LiveIPs   []string `json:"live_ip_addresses,omitempty"`
	CPUCores  int      `json:"cpu_cores"`
	MemoryMB  int      `json:"memory_mb"`
	Volume    string   `json:"volume"`
	VolumeGB  int      `json:"disk_size_gb"`
	HasVolume bool     `json:"volume_exists"`
	// VolumeAllocatedGB is what the volume takes in the pool now.
	VolumeAllocatedGB float64 `json:"volume_allocation_gb"`
	// NotInFile marks a VM the cluster owns that cluster.yaml no longer
	// names: start leaves it alone, destroy --vm removes it.
	NotInFile bool `json:"not_in_file,omitempty"`
}

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's network, pool and VMs as libvirt has them",
		Long: `status asks the worker on the cluster's host what exists of the cluster and
prints it: the network, the storage pool, and every VM with its state, IP
address, CPUs, memory and volume, plus the operation running on the
cluster, if any. VMs the cluster owns that the file no longer names are
listed too ("not in file"). It changes nothing: it does not even start an
inactive pool. With --name NAME (--host HOST) it needs no file and lists
what the cluster owns. -o json prints the same for scripts.`,
		Example: `  hpcvm status -c cluster.yaml
  hpcvm status --name lab --host hv1 -o json | jq '.vms[] | {name, live_ip_addresses}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, _ := cmd.Flags().GetString("output")
			if format != "table" && format != "json" {
				return fail(ExitBadInput, "--output must be table or json, not %q", format)
			}
			st, _, err := a.readStatus(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			a.printStatus(st)
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "table", "table or json")
	return cmd
}

// readStatus is the status of the cluster the command names (-c or
// --name), with the request it was read for.
func (a *app) readStatus(ctx context.Context) (Status, api.Request, error) {
	req, err := a.loadTarget()
	if err != nil {
		return Status{}, req, err
	}
	c, err := a.dialWithin(ctx)
	if err != nil {
		return Status{}, req, err
	}
	defer c.Close()
	st, err := describe(ctx, c, req)
	return st, req, err
}

func describe(ctx context.Context, c client.Client, req api.Request) (Status, error) {
	d, err := describeRaw(ctx, c, req)
	if err != nil {
		return Status{}, err
	}
	st := buildStatus(d)
	if desc, err := c.DescribeWorkflowExecution(ctx, api.WorkflowID(req.Spec.Cluster.Name), ""); err == nil {
		info := desc.GetWorkflowExecutionInfo()
		op := &OperationRef{Type: info.GetType().GetName(), RunID: info.GetExecution().GetRunId(), Started: info.GetStartTime().AsTime()}
		if info.GetCloseTime() == nil {
			st.Operation = op
		} else {
			ended := info.GetCloseTime().AsTime()
			op.Ended, op.Result = &ended, resultWord(info.GetStatus())
			st.LastOperation = op
		}
	}
	return st, nil
}

// describeRaw asks the host's worker what exists of the cluster.
func describeRaw(ctx context.Context, c client.Client, req api.Request) (api.Description, error) {
	var d api.Description
	err := askHost(ctx, c, req.Spec.Cluster.Host, api.QuestionDescribe, req, &d, "read the cluster", quickAnswer)
	return d, err
}

// How long a question may go unanswered: reading a cluster is quick; a plan
// also inspects the base image and the host's devices.
const (
	quickAnswer = 10 * time.Second
	planAnswer  = 60 * time.Second
)

// askHost asks one read-only question of the host's questions workflow
// (workflows.HostQuestions), starting that workflow if the host has none,
// and waits for the answer. A question is an update of the one long-lived
// run, so asking leaves no workflow run behind in the namespace.
// Interactive: a host without a running worker is reported at once, and
// one that does not answer within `within` after a short wait, instead of
// queueing the question indefinitely. A questions run whose workflow task
// keeps failing (a worker error, a run begun under other code) holds no
// state: it is ended and the question asked once more of a new run. what
// completes "the worker of host H could not ...".
func askHost(ctx context.Context, c client.Client, host, question string, arg, result any, what string, within time.Duration) error {
	if err := requireWorker(ctx, c, host); err != nil {
		return err
	}
	id := api.HostQuestionsID(host)
	for retried := false; ; retried = true {
		err := askOnce(ctx, c, host, question, arg, result, within)
		if err == nil {
			return nil
		}
		var appErr *temporal.ApplicationError
		var timeout *temporal.TimeoutError
		switch {
		case ctx.Err() != nil:
			return fail(ExitInterrupted, "stopped waiting for host %s to %s", host, what)
		case errors.Is(err, context.DeadlineExceeded):
			failing := questionsTaskFailing(ctx, c, id)
			if failing > 1 && !retried {
				_ = c.TerminateWorkflow(ctx, id, "", fmt.Sprintf("its workflow task failed %d times: a new run answers", failing))
				continue
			}
			if failing > 1 {
				return fail(ExitUnreachable, "the worker of host %s fails every task of workflow %s (attempt %d), a new run too: is that hpcvm-worker older than this hpcvm (it must know workflow %s)? upgrade it, or see its log", host, id, failing, api.HostQuestionsName)
			}
			return fail(ExitUnreachable, "no answer from host %s within %s: its worker polls task queue %s but did not answer in time; a busy host answers late: ask again", host, within, api.TaskQueue(host))
		case errors.As(err, &appErr), errors.As(err, &timeout):
			return fail(ExitUnreachable, "the worker of host %s could not %s: %s", host, what, rootMessage(err))
		}
		return unreachable(err)
	}
}

// askOnce asks the question once, within a deadline; the deadline's
// expiry is returned as context.DeadlineExceeded.
func askOnce(ctx context.Context, c client.Client, host, question string, arg, result any, within time.Duration) error {
	askCtx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       api.HostQuestionsID(host),
		TaskQueue:                api.TaskQueue(host),
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "read-only questions about host " + host,
	}, api.HostQuestionsName, api.HostQuestionsState{Host: host, PerRun: api.DefaultQuestionsPerRun})
	h, err := c.UpdateWithStartWorkflow(askCtx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   question,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err == nil {
		err = h.Get(askCtx, result)
	}
	// The server may end the wait a moment before the context's own timer
	// fires ("Timeout or cancellation waiting for update"): an error at the
	// deadline is the deadline.
	deadline, _ := askCtx.Deadline()
	if err != nil && ctx.Err() == nil && (askCtx.Err() != nil || time.Until(deadline) < time.Second) {
		return context.DeadlineExceeded
	}
	return err
}

// questionsTaskFailing is the attempt of the questions run's pending
// workflow task: above 1, its worker fails it over and over.
func questionsTaskFailing(ctx context.Context, c client.Client, id string) int32 {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil || desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return 0
	}
	return desc.GetPendingWorkflowTask().GetAttempt()
}

func buildStatus(d api.Description) Status {
	p, inv := d.Plan, d.Inventory
	st := Status{Cluster: p.Cluster, Host: p.Host}
	if n := inv.Network; n != nil {
		if !n.Owned {
			st.LeftAlone = append(st.LeftAlone, fmt.Sprintf("network %s has the cluster's name but was not created by hpcvm (its UUID is not hpcvm's)", n.Name))
		} else {
			st.Network = &NetworkInfo{Name: n.Name, Bridge: n.Bridge, Range: n.Address, Gateway: strings.Split(n.Address, "/")[0], Active: n.Active, Forward: n.Forward}
			if r := inv.Routing; r != nil && r.Member {
				st.Network.Routed, st.Network.RoutedWith = true, r.With
			}
			if pfx, err := netip.ParsePrefix(n.Address); err == nil {
				st.Network.Range = pfx.Masked().String()
			}
		}
	}
	const gb = 1 << 30
	if pl := inv.Pool; pl != nil {
		if !pl.Owned {
			st.LeftAlone = append(st.LeftAlone, fmt.Sprintf("pool %s (%s) has the cluster's name but was not created by hpcvm (its UUID is not hpcvm's)", pl.Name, pl.Path))
		} else {
			st.Pool = &PoolInfo{Name: pl.Name, Path: pl.Path, Active: pl.Active,
				CapacityGB: float64(pl.Capacity) / gb, AllocatedGB: float64(pl.Allocation) / gb, AvailableGB: float64(pl.Available) / gb}
		}
	}
	volumeKnown := inv.Volumes != nil
	running, present := 0, 0
	for _, vm := range p.VMs {
		vs := VMStatus{Name: vm.Name, Type: vm.Role, Domain: vm.Domain, State: "absent", IP: vm.IP, MAC: vm.MAC,
			CPUCores: vm.VCPUs, MemoryMB: vm.MemoryMiB, Volume: vm.Volume, VolumeGB: vm.DiskGiB}
		vol, hasVolume := inv.Volumes[vm.Volume]
		vs.HasVolume, vs.VolumeAllocatedGB = hasVolume, float64(vol.Allocation)/gb
		if dom, ok := inv.Domain(vm.Domain); ok {
			if !dom.Owned {
				st.LeftAlone = append(st.LeftAlone, "domain "+dom.Name+" has our name but no hpcvm metadata")
			} else {
				// What libvirt has, which is what runs.
				vs.State, vs.CPUCores, vs.MemoryMB, vs.DomainType = dom.State, int(dom.VCPUs), int(dom.MemoryMiB), dom.Type
				if dom.Running() {
					vs.LiveIPs = liveIPs(inv.LiveAddresses, vm.MAC)
				}
				present++
				if dom.Running() {
					running++
				}
			}
		}
		st.VMs = append(st.VMs, vs)
	}
	// VMs the cluster owns that the file does not name (or, with --name,
	// every VM it owns).
	leases := map[string]string{}
	if inv.NetworkOwned() {
		for _, l := range inv.Network.Leases {
			leases[l.Name] = l.IP
		}
	}
	total := len(p.VMs)
	for _, dom := range inv.Domains {
		if _, planned := p.VM(dom.VM); !dom.Owned || planned {
			continue
		}
		vs := VMStatus{Name: dom.VM, Type: dom.Role, Domain: dom.Name, State: dom.State, DomainType: dom.Type, IP: leases[dom.VM],
			CPUCores: int(dom.VCPUs), MemoryMB: int(dom.MemoryMiB), Volume: dom.VM + ".qcow2", NotInFile: len(p.VMs) > 0}
		vol, hasVolume := inv.Volumes[vs.Volume]
		vs.HasVolume, vs.VolumeAllocatedGB = hasVolume, float64(vol.Allocation)/gb
		st.VMs = append(st.VMs, vs)
		total++
		present++
		if dom.Running() {
			running++
		}
	}
	if !volumeKnown && inv.PoolOwned() {
		st.Warnings = append(st.Warnings, fmt.Sprintf("pool %s is inactive: its volumes are not listed (start or destroy starts it)", inv.Pool.Name))
	}
	st.Virtualization = virtualization(st.VMs)
	switch unwell := unwellVMs(st.VMs); {
	case present == 0 && st.Network == nil && st.Pool == nil:
		st.State = "absent"
	case total == 0:
		st.State = "partial"
	case len(unwell) > 0:
		st.State = "degraded (" + strings.Join(unwell, ", ") + ": see the QEMU log of each, /var/log/libvirt/qemu/<domain>.log on the host)"
	case running == total:
		st.State = "running"
	case running > 0:
		st.State = "partly running"
	case present == total:
		st.State = "stopped"
	default:
		st.State = "partial"
	}
	return st
}

// unwellVMs names, with its state, each VM that should run and does not:
// a paused or crashed guest (QEMU stopped it: nested KVM's emulation
// failure, an I/O error), and a VM of the file that is off while others
// of the cluster run (a guest that crashed with libvirt's default on_crash
// is off; so is one forced off behind hpcvm's back). A cluster that is off
// as a whole is stopped, not unwell; a VM the file no longer names is left
// off by start, so it is not counted.
func unwellVMs(vms []VMStatus) []string {
	up := false
	for _, vm := range vms {
		up = up || vm.State == "running" || vm.State == "blocked"
	}
	var unwell []string
	for _, vm := range vms {
		if vm.State == "paused" || vm.State == "crashed" || up && vm.State == "shut off" && !vm.NotInFile {
			unwell = append(unwell, vm.Name+" "+vm.State)
		}
	}
	return unwell
}

// liveIPs are the addresses held by the interface with mac, each once.
func liveIPs(all []api.LiveAddress, mac string) []string {
	var out []string
	for _, l := range all {
		if strings.EqualFold(l.MAC, mac) && !slices.Contains(out, l.IP) {
			out = append(out, l.IP)
		}
	}
	return out
}

// addressShown is a VM's address as the table shows it: the planned one,
// and what the guest holds when that differs or is not taken yet.
func (vm VMStatus) addressShown() string {
	switch {
	case len(vm.LiveIPs) == 0 && vm.State == "running":
		return vm.IP + " (not taken yet)"
	case len(vm.LiveIPs) == 0, len(vm.LiveIPs) == 1 && vm.LiveIPs[0] == vm.IP:
		return vm.IP
	}
	return vm.IP + " (live " + strings.Join(vm.LiveIPs, ", ") + ")"
}

func (a *app) printStatus(st Status) {
	fmt.Fprintf(a.out, "Cluster: %s (host %s)\nStatus: %s\n", st.Cluster, st.Host, st.State)
	if st.Virtualization != "" {
		fmt.Fprintf(a.out, "Virtualization: %s\n", st.Virtualization)
	}
	if st.Operation != nil {
		fmt.Fprintf(a.out, "Operation in progress: %s since %s (run %s)\n", st.Operation.Type, st.Operation.Started.Local().Format(time.RFC3339), st.Operation.RunID)
	}
	if op := st.LastOperation; op != nil {
		fmt.Fprintf(a.out, "Last operation: %s %s at %s, after %s (run %s)\n", workflows.OperationWord(op.Type), op.Result,
			op.Ended.Local().Format(time.RFC3339), op.Ended.Sub(op.Started).Round(10*time.Millisecond), op.RunID)
	}
	if n := st.Network; n != nil {
		fmt.Fprintf(a.out, "\nVirtual Network: %s\n  Bridge: %s\n  Network Range: %s\n  Gateway: %s\n  Forward: %s\n  Status: %s\n",
			n.Name, n.Bridge, n.Range, n.Gateway, forwardWords(n.Forward), activeWord(n.Active))
		if n.Routed {
			with := "no other routed cluster on the host yet"
			if len(n.RoutedWith) > 0 {
				with = "reaches " + strings.Join(n.RoutedWith, ", ")
			}
			fmt.Fprintf(a.out, "  Routing: routed (%s; hpcvm audit lists the host changes)\n", with)
		}
	} else {
		fmt.Fprintln(a.out, "\nVirtual Network: absent")
	}
	if pl := st.Pool; pl != nil {
		fmt.Fprintf(a.out, "\nStorage Pool: %s\n  Path: %s\n  Capacity: %.1f GiB\n  Allocated: %.1f GiB\n  Available: %.1f GiB (free to write, as validate measures it)\n",
			pl.Name, pl.Path, pl.CapacityGB, pl.AllocatedGB, pl.AvailableGB)
	} else {
		fmt.Fprintln(a.out, "\nStorage Pool: absent")
	}
	fmt.Fprintln(a.out, "\nVirtual Machines")
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSTATE\tIP ADDRESS\tCPU\tMEMORY\tVOLUME\tALLOCATED")
	for _, vm := range st.VMs {
		vol := vm.Volume
		if !vm.HasVolume {
			vol += " (absent)"
		}
		state := vm.State
		if vm.NotInFile {
			state += " (not in file)"
		}
		allocated := "-"
		if vm.HasVolume {
			allocated = fmt.Sprintf("%.2f GiB of %d GiB", vm.VolumeAllocatedGB, vm.VolumeGB)
			if vm.VolumeAllocatedGB < 1 {
				allocated = fmt.Sprintf("%.1f MiB of %d GiB", vm.VolumeAllocatedGB*1024, vm.VolumeGB)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%dMB\t%s\t%s\n", vm.Name, vm.Type, state, vm.addressShown(), vm.CPUCores, vm.MemoryMB, vol, allocated)
	}
	_ = tw.Flush()
	for _, l := range st.LeftAlone {
		fmt.Fprintln(a.out, "warning: not created by hpcvm:", l)
	}
	for _, w := range st.Warnings {
		fmt.Fprintln(a.out, "warning:", w)
	}
}

// virtualization says what the VMs' domains run under, from their real
// definitions: one word when they agree (the plan's enable_kvm cannot
// change an existing domain's type, so a start leaves the old one), each
// VM's when they do not; "" when no VM has a domain.
func virtualization(vms []VMStatus) string {
	var each []string
	kinds := map[string]bool{}
	for _, vm := range vms {
		if vm.DomainType == "" {
			continue
		}
		kinds[domainKind(vm.DomainType)] = true
		each = append(each, vm.Name+" "+domainKind(vm.DomainType))
	}
	switch len(kinds) {
	case 0:
		return ""
	case 1:
		for k := range kinds {
			return k
		}
	}
	return "mixed: " + strings.Join(each, ", ")
}

func activeWord(b bool) string {
	if b {
		return "Active"
	}
	return "Inactive"
}

// rootMessage is an application error's own message, without Temporal's
// wrapping.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// forwardWords says what a network's forward mode means for its guests.
func forwardWords(mode string) string {
	switch mode {
	case "nat":
		return "nat (the guests reach out through the host's addresses)"
	case "none":
		return "none (air-gapped: the guests reach their bridge only)"
	case "":
		return "unknown (the worker is older than this client)"
	}
	return mode
}
