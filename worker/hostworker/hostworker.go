// Package hostworker builds the Temporal worker of one hypervisor host: the
// hpcvm workflows and this host's libvirt activities, on the host's queue.
package hostworker

import (
	"time"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/libvirt"
	"github.com/hpcvm/hpcvm/workflows"
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
}

// New registers the workflows and activities on the host's task queue.
func New(c client.Client, lv *libvirt.Client, o Options) worker.Worker {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.MaxConcurrentActivities <= 0 {
		o.MaxConcurrentActivities = 32
	}
	w := worker.New(c, workflows.TaskQueue(o.Host), worker.Options{
		WorkerStopTimeout:                  o.StopTimeout,
		MaxConcurrentActivityExecutionSize: o.MaxConcurrentActivities,
		// Heartbeats reach the server at least every 2 s, whatever the
		// heartbeat timeout (the SDK otherwise waits 0.8 x the timeout):
		// an upload's resume point is at most 2 s old, and a cancel
		// reaches a running activity within 2 s. Not 1 s: the SDK also
		// uses this as the heartbeat call's own timeout, and a frontend
		// that pauses longer than that cancels the running activity.
		MaxHeartbeatThrottleInterval:     2 * time.Second,
		DefaultHeartbeatThrottleInterval: 2 * time.Second,
		// A workflow task left on a dead worker's sticky queue moves to
		// the host's queue after this, instead of the SDK's 5 s.
		StickyScheduleToStartTimeout: time.Second,
	})
	workflows.Register(w)
	if o.ImageRoots == nil {
		o.ImageRoots = activities.DefaultImageRoots
	}
	if o.PoolRoots == nil {
		o.PoolRoots = activities.DefaultPoolRoots
	}
	w.RegisterActivity(&activities.Activities{Libvirt: lv, HeartbeatEvery: 500 * time.Millisecond, ImageRoots: o.ImageRoots, PoolRoots: o.PoolRoots})
	return w
}
