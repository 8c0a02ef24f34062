package api

import (
	"time"

	"github.com/hpcvm/hpcvm/cluster"
)

// Options tune a run; zero values mean the defaults below.
type Options struct {
	// ShutdownTimeout is how long stop waits for guests to power off after
	// the ACPI power button before forcing them off.
	ShutdownTimeout time.Duration `json:"shutdown_timeout,omitempty"`
	// HeartbeatTimeout is how long an activity may go without a heartbeat
	// before Temporal retries it elsewhere: how fast a dead worker is noticed.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// StepTimeout bounds one attempt of a libvirt step (not the upload).
	StepTimeout time.Duration `json:"step_timeout,omitempty"`
	// UploadTimeout bounds one attempt of the base image upload.
	UploadTimeout time.Duration `json:"upload_timeout,omitempty"`
	// HostTimeout is how long a step waits for its host's worker to take
	// it before the run gives that host up: the step fails, what the run
	// made elsewhere is undone, and what is left on the silent host is
	// reported (ScheduleToStart of every activity).
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
}

// Defaults.
const (
	DefaultShutdownTimeout = 2 * time.Minute
	// DefaultHeartbeatTimeout is how long a step may go without a
	// heartbeat before it is retried. Workers send one a second, straight
	// to the server, also while a cancelled step is still inside a libvirt
	// call (activities.beatingWith). A worker restarted on the same machine
	// hands its dead predecessor's steps on at once (hostworker.TakeOver),
	// so this bounds only what a worker that does not come back, or comes
	// back in another container, costs a run. Domain starts, when a host
	// is busiest, get at least launchHeartbeatTimeout.
	DefaultHeartbeatTimeout = 5 * time.Second
	// WorkflowTaskTimeout is the workflow task timeout runs are submitted
	// with: a task in the hands of a worker that died goes to another
	// after this, not the server's 10 s, so a crash costs a run seconds
	// whatever it was doing. A task of a 100-VM run takes milliseconds
	// (see the note of issue 6), so this never cuts a live one short.
	WorkflowTaskTimeout  = 3 * time.Second
	DefaultStepTimeout   = 5 * time.Minute
	DefaultUploadTimeout = 2 * time.Hour
	// DefaultHostTimeout: a host's worker takes a step within
	// milliseconds when it runs; steps queue behind the worker's
	// concurrency only on a host starting a hundred VMs, for seconds.
	DefaultHostTimeout = 2 * time.Minute
)

func (o Options) WithDefaults() Options {
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = DefaultUploadTimeout
	}
	if o.HostTimeout <= 0 {
		o.HostTimeout = DefaultHostTimeout
	}
	return o
}

// Request is the input of every cluster workflow: the validated spec (the
// plan is derived from it inside the workflow, deterministically) and options.
// Stop and destroy read only Spec.Cluster.Name and .Host: they act on what
// the cluster owns in libvirt, whatever the rest of the file says.
type Request struct {
	Spec    cluster.Spec `json:"spec"`
	Options Options      `json:"options,omitempty"`
	// NameOnly says the spec holds only the cluster's name and host (the
	// file is gone: `hpcvm destroy --name`); status then plans nothing.
	NameOnly bool `json:"name_only,omitempty"`
	// VMs limits destroy to these nodes (`hpcvm destroy --vm`).
	VMs []string `json:"vms,omitempty"`
	// ConfirmedHostChanges says a person agreed to the host changes the
	// cluster's host_configuration allows (the CLI's prompt, or --yes);
	// a start that needs confirmation refuses to run without it.
	ConfirmedHostChanges bool `json:"confirmed_host_changes,omitempty"`
	// RequestedBy is who submitted the run (user@machine), for the host's
	// audit log.
	RequestedBy string `json:"requested_by,omitempty"`
}

// Step is one line of a run's progress, as the CLI and the progress query
// show it.
type Step struct {
	Name   string `json:"name"`
	Status string `json:"status"` // running, done, skipped, failed, compensated, compensation-failed
	Detail string `json:"detail,omitempty"`
	// VM is the cluster VM the step works for (its name in cluster.yaml),
	// empty for the cluster's shared objects: what lets a client show what
	// each VM is doing.
	VM string `json:"vm,omitempty"`
}

// Step statuses.
const (
	// StepPending is a step the run has planned and not begun: with it
	// the progress says how many steps there are in all. Steps still
	// pending when a run ends (it failed first) leave the progress.
	StepPending            = "pending"
	StepRunning            = "running"
	StepDone               = "done"
	StepUnchanged          = "unchanged"
	StepFailed             = "failed"
	StepCompensated        = "undone"
	StepCompensationFailed = "undo-failed"
)

// StartResult is what StartCluster did.
type StartResult struct {
	Plan    cluster.Plan `json:"plan"`
	Created []string     `json:"created"` // objects this run created
	Started []string     `json:"started"` // domains this run started
	Notes   []string     `json:"notes,omitempty"`
	// NotInFile are VMs the cluster owns that cluster.yaml no longer names:
	// start leaves them as they are (`hpcvm destroy --vm` removes one).
	NotInFile []string `json:"not_in_file,omitempty"`
	// HostChanges are the changes this run made to the host outside
	// libvirt, as the audit log words them.
	HostChanges []string `json:"host_changes,omitempty"`
	// Checks are the preflight's checks, all passed: the ones validate
	// reports, by the same names.
	Checks []Check `json:"checks,omitempty"`
}

// StopResult is what StopCluster did.
type StopResult struct {
	ShutDown   []string `json:"shut_down"`   // powered off after the ACPI button
	ForcedOff  []string `json:"forced_off"`  // still running after the timeout
	WasStopped []string `json:"was_stopped"` // already off
	// TimerEnded says the shutdown timeout, not the guests, ended the wait.
	TimerEnded bool `json:"timer_ended"`
	// AwaitedBoot are the guests that had booted moments before: stop
	// waited for them to answer before pressing their power button.
	AwaitedBoot []BootWait `json:"awaited_boot,omitempty"`
}

// BootWait is a guest stop waited for before pressing its power button.
type BootWait struct {
	VM     string        `json:"vm"`
	Booted time.Duration `json:"booted_ago"` // how long before the stop its QEMU started
	Waited time.Duration `json:"waited"`
	// Answer is how the guest showed it was up; "" if it did not in time
	// (the button was pressed anyway).
	Answer string `json:"answer,omitempty"`
}

// DestroyResult is what DestroyCluster did.
type DestroyResult struct {
	Deleted []string `json:"deleted"`
	// LeftAlone are objects with the cluster's names that hpcvm did not
	// create: never touched.
	LeftAlone []string `json:"left_alone,omitempty"`
	// Kept are objects of the cluster, or files in its pool, that are still
	// there, each with the reason; destroy then fails.
	Kept []string `json:"kept,omitempty"`
	// Missing are nodes asked for with --vm that the cluster does not have.
	Missing []string `json:"missing,omitempty"`
	// ReleasedDevices are the host PCI functions whose claims it freed.
	ReleasedDevices []string `json:"released_devices,omitempty"`
	// UndoneHostChanges are the host changes it undid (routing rules,
	// IP forwarding), as the audit log words them.
	UndoneHostChanges []string `json:"undone_host_changes,omitempty"`
}

// Description is DescribeCluster's answer: the plan (empty for a NameOnly
// request) and what exists of the cluster.
type Description struct {
	Plan      cluster.Plan `json:"plan"`
	Inventory Inventory    `json:"inventory"`
}

// Failure is attached (as details) to the error of a failed StartCluster:
// what failed and what was rolled back.
type Failure struct {
	FailedStep string   `json:"failed_step"`
	Cause      string   `json:"cause"`
	RolledBack []string `json:"rolled_back"`
	NotUndone  []string `json:"not_undone,omitempty"`
}

// Check is one thing start would check, and how it came out.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// PlannedObject is a libvirt object of the plan and what start would do
// with it.
type PlannedObject struct {
	Kind   string `json:"kind"` // network, pool, volume, domain
	Name   string `json:"name"`
	Action string `json:"action"` // create, keep, start, refused
	Detail string `json:"detail,omitempty"`
}

// Document is an XML document start would hand to libvirt.
type Document struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	XML  string `json:"xml"`
}

// PlanReport is what PlanCluster found: every check, the negotiated plan,
// the objects with their actions and, when every check passed, the XML.
type PlanReport struct {
	Checks    []Check                  `json:"checks"`
	Plan      cluster.Plan             `json:"plan"`
	Host      cluster.HostCapabilities `json:"host"`
	Objects   []PlannedObject          `json:"objects"`
	Documents []Document               `json:"documents,omitempty"`
	NotInFile []string                 `json:"not_in_file,omitempty"`
}

// OK says every check passed: start would go ahead.
func (r PlanReport) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}
