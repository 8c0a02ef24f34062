// Package hostworker builds the Temporal worker of one hypervisor host: the
// host's libvirt activities (and its own workflows) on the host's queue,
// and the clusters' workflows on the control queue, which every host's
// worker serves.
package hostworker

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/activities"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/workflows"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// Options of a host worker.
type Options struct {
	Host string // the host name clusters name in cluster.host
	// StopTimeout is how long a stopping worker lets running activities
	// finish (or heartbeat their progress) before it goes.
	StopTimeout time.Duration
	// MaxConcurrentActivities bounds parallel libvirt calls.
	MaxConcurrentActivities int
	// ImageRoots and PoolRoots bound where base images are read from and
	// pools created (activities.DefaultImageRoots/DefaultPoolRoots if nil).
	ImageRoots, PoolRoots []string
	// ShareRoots bound the host directories VMs may share
	// (activities.DefaultShareRoots if nil).
	ShareRoots []string
	// SysfsRoot is where PCI functions, IOMMU groups and KVM modules are
	// read from instead of /sys; a PCI fixture tree in tests. Set, it also
	// replaces libvirt's node devices for PCI.
	SysfsRoot string
	// Netns is the network namespace the hypervisor's bridges live in
	// when it is not the worker's own: host changes (forwarding, firewall
	// rules) are made there. Empty: the worker's own namespace.
	Netns string
	// DiscoveryRoots bound where service discovery records may be written
	// (activities.DefaultDiscoveryRoots if nil).
	DiscoveryRoots []string
	// ResolverRoots bound where the host resolver's entries may be written
	// (activities.DefaultResolverRoots if nil); ResolverReload is the
	// command that makes the resolver read them (none: no entry is made).
	ResolverRoots  []string
	ResolverReload []string
	// AuditLog is the file that records every host change
	// (hostchange.DefaultAuditPath if empty).
	AuditLog string
	// NoControl: the worker serves its host's queue only, not the
	// control queue, whose workflows may schedule steps on every host
	// (hosts that must not act on each other; a --control-only worker
	// serves it instead).
	NoControl bool
	// StickyTimeout is how long a run's next workflow task waits on this
	// worker's sticky queue before any worker of the host's queue may take
	// it (with a replay of the history); DefaultStickyTimeout if zero.
	StickyTimeout time.Duration
}

// DefaultStickyTimeout: a workflow task left on a dead worker's sticky
// queue moves to the host's queue after this, instead of the SDK's 5 s.
// A worker restarted on its machine does not wait for it (TakeOver resets
// the runs' sticky queues). Measured on a PostgreSQL + mTLS server
// (TestProductionTemporal, BenchmarkRemoteTemporal), a live worker's
// sticky tasks waited about one network round trip: at most 16-58 ms on
// loopback (one 609 ms outlier in about 130 tasks on a busy two-core
// machine), 23-35 ms at 20 ms RTT, 60-99 ms at 100 ms, 239 ms at 250 ms.
// So 500 ms holds to about 250 ms RTT with a factor 2 to spare; farther
// away, raise it (--sticky-timeout, about 4x the RTT). A sticky task that
// times out only costs a replay of the history on the host's queue.
const DefaultStickyTimeout = 500 * time.Millisecond

// activityPollers is how many polls a host's worker keeps open on its
// queue (see New).
const activityPollers = 8

// New registers the activities (and the workflows, for the host's own
// runs and those older clients started there) on the host's task queue,
// and the workflows on the control queue: the returned worker starts and
// stops both.
func New(c client.Client, lv *libvirt.Client, o Options) worker.Worker {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.StickyTimeout <= 0 {
		o.StickyTimeout = DefaultStickyTimeout
	}
	if o.MaxConcurrentActivities <= 0 {
		o.MaxConcurrentActivities = 32
	}
	maxEager := o.MaxConcurrentActivities
	hw := worker.New(c, api.TaskQueue(o.Host), worker.Options{
		WorkerStopTimeout:                  o.StopTimeout,
		MaxConcurrentActivityExecutionSize: o.MaxConcurrentActivities,
		// The runs are on the control queue, so their steps come to this
		// queue by polls, not eagerly with a workflow task: with the
		// SDK's 2 pollers, the steps a run schedules at once (a VM each)
		// wait in the queue's backlog for a poll each. Enough pollers to
		// take a parallel stage of a run in one go.
		MaxConcurrentActivityTaskPollers: activityPollers,
		// Runs of older clients still run on this queue: their steps come
		// back eagerly with the workflow task (where the server allows it,
		// as hpcvm-devserver does), up to the free slots; the SDK's
		// default takes only 3 a task.
		MaxEagerActivityReservationsPerWorkflowTask: &maxEager,
		// The activities heartbeat through the client (KeepAlive below);
		// the SDK's own heartbeat only brings a cancel to an activity's
		// context, at once when no SDK heartbeat went out in the last 2 s.
		// Not 1 s: the SDK also uses this as that call's own timeout, and
		// a frontend that pauses longer than that cancels the activity.
		MaxHeartbeatThrottleInterval:     2 * time.Second,
		DefaultHeartbeatThrottleInterval: 2 * time.Second,
		// See DefaultStickyTimeout.
		StickyScheduleToStartTimeout: o.StickyTimeout,
		// Every step named after its object in the Web UI.
		Interceptors: workflows.Interceptors(),
	})
	workflows.Register(hw)
	if o.ImageRoots == nil {
		o.ImageRoots = activities.DefaultImageRoots
	}
	if o.PoolRoots == nil {
		o.PoolRoots = activities.DefaultPoolRoots
	}
	if o.DiscoveryRoots == nil {
		o.DiscoveryRoots = activities.DefaultDiscoveryRoots
	}
	if o.ResolverRoots == nil {
		o.ResolverRoots = activities.DefaultResolverRoots
	}
	if o.AuditLog == "" {
		o.AuditLog = hostchange.DefaultAuditPath
	}
	if o.ShareRoots == nil {
		o.ShareRoots = activities.DefaultShareRoots
	}
	hw.RegisterActivity(&activities.Activities{
		Libvirt: lv,
		// A heartbeat a second against the workflows' 3 s heartbeat
		// timeout: two may be late or lost before a live step is retried.
		HeartbeatEvery: time.Second,
		// A guest nested KVM cannot run is paused by QEMU within
		// moments of its start: a second of running tells it apart.
		StartSettle:    time.Second,
		KeepAlive:      c,
		ImageRoots:     o.ImageRoots,
		PoolRoots:      o.PoolRoots,
		ShareRoots:     o.ShareRoots,
		DiscoveryRoots: o.DiscoveryRoots,
		ResolverRoots:  o.ResolverRoots,
		SysfsRoot:      o.SysfsRoot,
		Temporal:       c,
		HostChanges: &hostchange.Host{Name: o.Host, Netns: o.Netns, Audit: &hostchange.Audit{Path: o.AuditLog},
			ResolverReload: o.ResolverReload},
	})
	if o.NoControl {
		return hw
	}
	return &hostAndControl{Worker: hw, control: NewControl(c, ControlOptions{StopTimeout: o.StopTimeout, StickyTimeout: o.StickyTimeout})}
}

// ControlOptions are the options of a control queue worker.
type ControlOptions struct {
	StopTimeout   time.Duration
	StickyTimeout time.Duration // DefaultStickyTimeout if zero
}

// NewControl registers the workflows on the control queue, without any
// activity: a worker every host runs beside its own (New), and one a
// machine without libvirt may run (hpcvm-worker --control-only), so that
// the runs of a host that died still end, roll back and report.
func NewControl(c client.Client, o ControlOptions) worker.Worker {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.StickyTimeout <= 0 {
		o.StickyTimeout = DefaultStickyTimeout
	}
	w := worker.New(c, api.ControlQueue, worker.Options{
		WorkerStopTimeout:            o.StopTimeout,
		StickyScheduleToStartTimeout: o.StickyTimeout,
		Interceptors:                 workflows.Interceptors(),
	})
	workflows.Register(w)
	return w
}

// hostAndControl is a host's worker: its queue's worker, whose
// registrations it takes, and the control queue's, started and stopped
// with it.
type hostAndControl struct {
	worker.Worker
	control worker.Worker
}

func (w *hostAndControl) Start() error {
	if err := w.control.Start(); err != nil {
		return err
	}
	if err := w.Worker.Start(); err != nil {
		w.control.Stop()
		return err
	}
	return nil
}

func (w *hostAndControl) Stop() {
	w.Worker.Stop()
	w.control.Stop()
}

func (w *hostAndControl) Run(interruptCh <-chan interface{}) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-interruptCh
	w.Stop()
	return nil
}
