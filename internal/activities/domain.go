package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/templates"
)

// EnsureDomain defines a VM's domain (idempotent).
func (a *Activities) EnsureDomain(ctx context.Context, xml string) (api.EnsureResult, error) {
	var res api.EnsureResult
	err := a.heartbeating(ctx, func() (err error) {
		if res.Created, err = a.Libvirt.EnsureDomain(xml); err != nil || res.Created {
			return err
		}
		res.Kept, err = a.Libvirt.DomainDrift(xml)
		return err
	})
	return res, err
}

// StartDomain starts a domain of the cluster; a running one is success.
func (a *Activities) StartDomain(ctx context.Context, ref api.DomainRef) (bool, error) {
	var started bool
	err := a.heartbeating(ctx, func() (err error) {
		if err := a.provenDomain("start domain", ref); err != nil {
			return err
		}
		if err := a.checkShares(ref); err != nil {
			return err
		}
		if started, err = a.Libvirt.StartDomain(ref.Name); err != nil {
			return err
		}
		// Started is not running: a guest QEMU paused at once, or one
		// found paused or crashed, fails the step with why.
		err = a.Libvirt.WatchRunning(ctx, ref.Name, a.StartSettle)
		if nr := (*libvirt.NotRunningError)(nil); errors.As(err, &nr) {
			nr.FoundSo = !started
		}
		return err
	})
	return started, err
}

// checkShares checks, just before a domain starts, the host directories
// it shares as CheckHostPaths checked them before anything was created:
// under a --share-root, with no symbolic link on the way. Minutes can pass
// in between (a base upload), and a guest sharing a directory of another
// cluster's share can swap it for a link: virtiofsd (root) would follow
// it. A running domain is not started again, so it is not checked.
func (a *Activities) checkShares(ref api.DomainRef) error {
	st, err := a.Libvirt.DomainState(ref.Name)
	if err != nil {
		return err
	}
	switch st {
	case libvirt.StateRunning, libvirt.StatePaused, libvirt.StateBlocked, libvirt.StateShuttingDown, libvirt.StatePMSuspended:
		return nil // active: StartDomain leaves it as it is
	}
	dirs, err := a.Libvirt.DomainShares(ref.Name)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		field := fmt.Sprintf("domain %s's virtio-fs share", ref.Name)
		if _, err := checkDir(field, dir, a.ShareRoots, "--share-root"); err != nil {
			return err
		}
	}
	return nil
}

// ShutdownDomain presses the ACPI power button of a running domain of the
// cluster; given AwaitBoot, it first waits (that long at most) for a guest
// that booted moments ago to answer, heartbeating what it waits for.
func (a *Activities) ShutdownDomain(ctx context.Context, req api.ShutdownRequest) (api.ShutdownResult, error) {
	var res api.ShutdownResult
	beats := &pulse{}
	err := a.beatingWith(ctx, beats, func() error {
		if err := a.provenDomain("shut down domain", req.DomainRef); err != nil {
			return err
		}
		if req.AwaitBoot > 0 {
			var err error
			if res, err = a.awaitGuest(ctx, req, beats); err != nil {
				return err
			}
		}
		return a.Libvirt.ShutdownDomain(req.Name)
	})
	return res, err
}

// guestPoll is how often a booting guest is looked at: a read of its
// definition and of its network's leases.
const guestPoll = time.Second

// awaitGuest waits until the guest of a domain answers (GuestAnswers), at
// most until req.AwaitUntil (or req.AwaitBoot from the first look). Not
// answering is no error: the button is pressed then anyway, as it would
// have been without the wait; nor is a guest that cannot be looked at (it
// is pressed at the end of the wait) or that went off by itself.
func (a *Activities) awaitGuest(ctx context.Context, req api.ShutdownRequest, beats *pulse) (api.ShutdownResult, error) {
	began := time.Now()
	until := req.AwaitUntil
	if until.IsZero() {
		until = began.Add(req.AwaitBoot)
	}
	for {
		waited := time.Since(began).Round(100 * time.Millisecond)
		if st, err := a.Libvirt.DomainState(req.Name); err == nil && st != libvirt.StateRunning && st != libvirt.StateBlocked {
			return api.ShutdownResult{Waited: waited, Answer: "it is " + string(st)}, nil
		}
		answer, err := a.Libvirt.GuestAnswers(req.Name, req.BootedAt)
		if err == nil && answer != "" {
			return api.ShutdownResult{Waited: waited, Answer: answer}, nil
		}
		if !time.Now().Before(until) {
			return api.ShutdownResult{Waited: waited}, nil
		}
		beats.set(fmt.Sprintf("waiting for the guest to answer before pressing the power button (%s so far, until %s)", waited, until.Format(time.TimeOnly)))
		select {
		case <-ctx.Done():
			return api.ShutdownResult{}, ctx.Err()
		case <-time.After(guestPoll):
		}
	}
}

// ForceOffDomain pulls the plug of a domain of the cluster; it reports
// whether it was still running. An absent domain is success.
func (a *Activities) ForceOffDomain(ctx context.Context, ref api.DomainRef) (bool, error) {
	var wasRunning bool
	err := a.heartbeating(ctx, func() error {
		if err := a.provenDomain("force off domain", ref); errors.Is(err, libvirt.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		name := ref.Name
		st, err := a.Libvirt.DomainState(name)
		if errors.Is(err, libvirt.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		wasRunning = st != "shut off" && st != "crashed"
		return a.Libvirt.ForceOffDomain(name)
	})
	return wasRunning, err
}

// WaitDomainsOff waits until every named domain is off, heartbeating the ones
// still running. The stop workflow races it against its durable timer and
// cancels it when the timer wins.
func (a *Activities) WaitDomainsOff(ctx context.Context, names []string) error {
	beats := &pulse{}
	return a.beatingWith(ctx, beats, func() error {
		return a.Libvirt.WaitDomainsOff(ctx, names, 250*time.Millisecond, func(running []string) {
			beats.set(running)
		})
	})
}

// DeleteDomain stops and undefines a domain, after proving that hpcvm
// defined it for this cluster; an absent domain is success.
func (a *Activities) DeleteDomain(ctx context.Context, ref api.DomainRef) error {
	return a.heartbeating(ctx, func() error {
		if err := a.provenDomain("delete domain", ref); errors.Is(err, libvirt.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return a.Libvirt.DeleteDomain(ref.Name)
	})
}

// provenDomain returns nil if the domain carries hpcvm's metadata naming
// ref.Cluster, ErrNotFound if there is no such domain, ErrNotOwned else.
func (a *Activities) provenDomain(op string, ref api.DomainRef) error {
	meta, err := a.Libvirt.DomainMetadata(ref.Name, templates.MetadataNamespace)
	if errors.Is(err, libvirt.ErrNotFound) {
		if _, stErr := a.Libvirt.DomainState(ref.Name); errors.Is(stErr, libvirt.ErrNotFound) {
			return stErr
		}
		return &libvirt.Error{Kind: libvirt.ErrNotOwned, Op: op, Object: ref.Name,
			Detail: "it has no hpcvm metadata, so hpcvm did not create it; it was left alone (remove it with virsh if it should go)"}
	}
	if err != nil {
		return err
	}
	owner, err := templates.ParseOwner(meta)
	if err != nil {
		return &libvirt.Error{Kind: libvirt.ErrNotOwned, Op: op, Object: ref.Name,
			Detail: fmt.Sprintf("its hpcvm metadata cannot be read (%v), so hpcvm cannot prove it created it; it was left alone", err)}
	}
	if owner.Cluster != ref.Cluster {
		return &libvirt.Error{Kind: libvirt.ErrNotOwned, Op: op, Object: ref.Name,
			Detail: fmt.Sprintf("its hpcvm metadata names cluster %q, not %q; it was left alone", owner.Cluster, ref.Cluster)}
	}
	return nil
}

// DomainDifferences says, per domain XML, how the existing domain of that
// name differs from it in what start compares ("" when it matches or does
// not exist). A domain that differs only in what no cluster.yaml key sets
// (libvirt.Client.DomainDrift) is one start keeps: its entry is
// KeptPrefix and what differs. It changes nothing: plan shows what start
// would refuse, and what it would keep as it is.
func (a *Activities) DomainDifferences(ctx context.Context, xmls []string) ([]string, error) {
	out := make([]string, len(xmls))
	err := a.heartbeating(ctx, func() error {
		for i, x := range xmls {
			d, err := a.Libvirt.DomainDifference(x)
			if err != nil {
				return err
			}
			if d == "" {
				drift, err := a.Libvirt.DomainDrift(x)
				if err != nil {
					return err
				}
				if drift != "" {
					d = api.KeptPrefix + drift
				}
			}
			out[i] = d
		}
		return nil
	})
	return out, err
}
