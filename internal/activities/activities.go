// Package activities holds one Temporal activity per libvirt step. Each is
// idempotent (present and matching is success, deleting what is absent is
// success), heartbeats while it works so a dead worker is noticed quickly,
// and makes no decisions: the workflows decide, the activities do.
package activities

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Activities are the libvirt steps of one host. Workflows reference them by
// method value (a.EnsureNetwork); the worker registers one instance holding
// that host's libvirt connection.
type Activities struct {
	Libvirt *libvirt.Client
	// HeartbeatEvery is how often a running activity tells Temporal it is
	// alive; it must be well below the workflows' heartbeat timeout.
	HeartbeatEvery time.Duration
	// KeepAlive sends the heartbeats (see beatingWith); nil sends them
	// through the SDK, as in unit tests.
	KeepAlive KeepAlive
	// ImageRoots are the directories base images may be read from, and
	// PoolRoots those pools may be created under (CheckHostPaths); none
	// means nothing is allowed.
	ImageRoots, PoolRoots []string
	// ShareRoots are the directories under which virtio_fs_mounts'
	// host_path may lie; none means no directory may be shared.
	ShareRoots []string
	// DiscoveryRoots are the directories service discovery records may be
	// written to; none means none may.
	DiscoveryRoots []string
	// ResolverRoots are the directories the host resolver's entries may
	// be written to (host DNS integration).
	ResolverRoots []string
	// StartSettle is how long a started domain must keep running before
	// its start counts (StartDomain): QEMU pauses a guest that nested KVM
	// cannot emulate within moments of its start. Zero checks once.
	StartSettle time.Duration
	// Temporal is the worker's client: the device ledger is a workflow the
	// claim and release steps update.
	Temporal client.Client
	// agentAsking holds the domains whose guest agent a status is still
	// waiting for: a stuck agent is not asked again until it answers, so
	// repeated statuses (--wait-ip polls) do not pile calls up on it.
	agentAsking sync.Map
	// probeMu guards the host facts ProbeHost keeps for ProbeRefresh.
	probeMu    sync.Mutex
	probeFacts *libvirt.HostFacts
	probeAt    time.Time
	// SysfsRoot is where sysfs is read from; "" is /sys. Tests point it
	// at fixture trees.
	SysfsRoot string
	// HostChanges makes and records the changes outside libvirt that a
	// cluster's host_configuration allows; nil makes none.
	HostChanges *hostchange.Host
}

func (a *Activities) sysfs() string {
	if a.SysfsRoot == "" {
		return "/sys"
	}
	return a.SysfsRoot
}

// classify turns a libvirt error into a Temporal application error whose
// retryability follows the error's kind.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	switch {
	case errors.Is(err, libvirt.ErrBusy):
		return temporal.NewApplicationErrorWithCause(err.Error(), api.ErrTypeBusy, err)
	case libvirt.IsRetryable(err):
		return temporal.NewApplicationErrorWithCause(err.Error(), api.ErrTypeConnection, err)
	case errors.As(err, new(*libvirt.NotRunningError)):
		msg := err.Error() + "; the start is rolled back"
		if nr := (*libvirt.NotRunningError)(nil); errors.As(err, &nr) && nr.KVM {
			msg += ": if the host's KVM is nested, try cluster.hardware.acceleration.enable_kvm: false"
		}
		return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeInvalidState, err)
	case errors.Is(err, libvirt.ErrMismatch):
		return temporal.NewNonRetryableApplicationError(err.Error()+mismatchHint, api.ErrTypeMismatch, err)
	case errors.Is(err, libvirt.ErrNotOwned):
		return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeNotOwned, err)
	case errors.Is(err, libvirt.ErrNotEmpty):
		return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeNotEmpty, err)
	case errors.Is(err, libvirt.ErrInvalidXML):
		return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeInvalidXML, err)
	case errors.Is(err, libvirt.ErrInvalidState):
		return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeInvalidState, err)
	default:
		// Anything else libvirt refused (a domain QEMU cannot start, a
		// full disk) does not heal by itself within a run.
		return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeLibvirt, err)
	}
}

// mismatchHint tells the operator the way out of a present-but-different
// object: hpcvm never rewrites what exists.
const mismatchHint = "; hpcvm does not modify objects that already exist: undo the change in cluster.yaml, " +
	"or remove the existing object (`hpcvm destroy` if it is this cluster's) and start again"

func badInput(msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeBadInput, cause)
}

// heartbeating runs fn while heartbeating in the background, so that a
// worker killed mid-call is detected by the heartbeat timeout rather than
// the much longer start-to-close timeout.
func (a *Activities) heartbeating(ctx context.Context, fn func() error) error {
	return a.beatingWith(ctx, &pulse{}, fn)
}

// pulse holds what an activity's heartbeats carry: an upload's resume
// point, which a detail-less heartbeat would erase. Safe for concurrent use.
type pulse struct {
	mu      sync.Mutex
	details []any
}

func (p *pulse) set(details ...any) {
	p.mu.Lock()
	p.details = details
	p.mu.Unlock()
}

func (p *pulse) get() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.details
}

// KeepAlive records a heartbeat of an activity attempt by its task token:
// the worker's client.Client.
type KeepAlive interface {
	RecordActivityHeartbeat(ctx context.Context, taskToken []byte, details ...any) error
}

// keepAliveCallTimeout bounds one heartbeat call. Calls do not wait for
// each other: a slow one does not hold back the next second's.
const keepAliveCallTimeout = 2 * time.Second

// beatingWith runs fn while heartbeating with p's details, every
// HeartbeatEvery, until fn returns.
//
// With a KeepAlive, the heartbeats go straight to the server, not through
// the SDK's activity.RecordHeartbeat. That one sends at most once per
// throttle interval and stops for good once the activity is cancelled; a
// cancelled step still inside a libvirt call (QEMU taking seconds to exit)
// would then be timed out and compensated while it runs. Direct heartbeats
// go on until fn returns, so a short heartbeat timeout is safe and a dead
// worker costs a run only that timeout. Cancellation still reaches the
// activity's context through the SDK: when the server answers that the
// attempt is cancelled, paused, reset or gone, one SDK heartbeat is sent,
// which gets the same answer and cancels the context as the SDK does. A
// transient failure of a call is left to the next second's.
func (a *Activities) beatingWith(ctx context.Context, p *pulse, fn func() error) error {
	every := a.HeartbeatEvery
	if every <= 0 {
		every = time.Second
	}
	done := make(chan struct{})
	defer close(done) // deferred: fn may panic (the SDK recovers it)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		inFlight := make(chan struct{}, 2) // at most two calls at once
		for {
			select {
			case <-done:
				return
			case <-t.C:
				select {
				case inFlight <- struct{}{}:
					go func() {
						defer func() { <-inFlight }()
						a.beat(ctx, p, done)
					}()
				default: // two calls are hanging: the server is not answering
				}
			}
		}
	}()
	return classify(fn())
}

func (a *Activities) beat(ctx context.Context, p *pulse, done <-chan struct{}) {
	if a.KeepAlive == nil {
		if ctx.Err() == nil {
			activity.RecordHeartbeat(ctx, p.get()...)
		}
		return
	}
	callCtx, cancel := context.WithTimeout(context.Background(), keepAliveCallTimeout)
	err := a.KeepAlive.RecordActivityHeartbeat(callCtx, activity.GetInfo(ctx).TaskToken, p.get()...)
	cancel()
	if err == nil || ctx.Err() != nil || !attemptIsOver(err) {
		return
	}
	select {
	case <-done: // fn has returned: the attempt is over anyway
	default:
		activity.RecordHeartbeat(ctx, p.get()...)
	}
}

// attemptIsOver: the server's answer to a heartbeat says this attempt
// should stop (cancelled, paused, reset, or no longer known), as opposed
// to a call that failed on its way.
func attemptIsOver(err error) bool {
	var notFound *serviceerror.NotFound
	return temporal.IsCanceledError(err) || errors.As(err, &notFound) ||
		errors.Is(err, activity.ErrActivityPaused) || errors.Is(err, activity.ErrActivityReset)
}
