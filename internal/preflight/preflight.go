// Package preflight is the whole preflight of a start, validate and plan,
// run on the cluster's host by its worker (activity Preflight): it reads
// the file, the host and what exists of the cluster, runs every check,
// negotiates the hardware, renders every document and says, as data, what
// a start does. The workflow records the result once and executes it: the
// rules here may change from one hpcvm to the next without changing what a
// recorded run replays.
package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/temporal"
)

// Host is what the preflight reads of the host: the worker's own
// activities, called in process.
type Host interface {
	InspectCluster(ctx context.Context, req api.InspectRequest) (api.Inventory, error)
	ProbeHost(ctx context.Context) (cluster.HostCapabilities, error)
	ValidatePCI(ctx context.Context, req api.PCIRequest) (cluster.PCIFacts, error)
	CheckHostPaths(ctx context.Context, req api.PathsRequest) error
	DiscoveryRecordExists(ctx context.Context, req api.DiscoveryRequest) (bool, error)
	ResolverEntryExists(ctx context.Context, req api.ResolverRequest) (bool, error)
	InspectBaseImage(ctx context.Context, path string) (api.ImageInfo, error)
	PoolSpace(ctx context.Context, dir string) (api.SpaceInfo, error)
	PendingHostChanges(ctx context.Context, req api.PendingRequest) (api.PendingChanges, error)
	DomainDifferences(ctx context.Context, xmls []string) ([]string, error)
	// ReadLedger is the host's ledger, with the hugepages it reserves
	// (rebuilt from libvirt where the ledger does not exist).
	ReadLedger(ctx context.Context, host string) (api.LedgerView, error)
	// ClusterBindings is the cluster registry: the host each cluster
	// lives on.
	ClusterBindings(ctx context.Context) ([]api.Binding, error)
}

// The checks, by the names validate and plan report them under. One list
// and one function (Run) serve start, validate and plan, so what validate
// promises is what start checks.
const (
	CheckFile        = "file"
	CheckHostChanges = "host changes"
	CheckNames       = "names"
	CheckBinding     = "cluster binding"
	CheckRouting     = "routing"
	CheckForward     = "network forward"
	CheckRange       = "network range"
	CheckAddresses   = "addresses"
	CheckDNS         = "network DNS"
	CheckHost        = "host"
	CheckHardware    = "hardware"
	CheckLedger      = "host ledger"
	CheckPCI         = "pci"
	CheckPaths       = "paths"
	CheckDiscovery   = "discovery record"
	CheckResolver    = "resolver entry"
	CheckBaseImage   = "base image"
	CheckDiskSizes   = "disk sizes"
	CheckPoolSpace   = "pool space"
	CheckXML         = "xml"
	CheckOldDomains  = "existing domains"
	CheckSize        = "recorded size"
)

// Checks are the checks of the preflight, in the order they run. A check
// that does not apply to a cluster (pci without devices, the resolver
// entry without host DNS integration) is not run. Only a start asks for
// the host changes' confirmation, and reports it only when it refuses.
var Checks = []string{CheckFile, CheckHostChanges, CheckNames, CheckBinding, CheckRouting, CheckForward, CheckRange, CheckAddresses, CheckDNS,
	CheckHost, CheckHardware, CheckLedger, CheckPCI, CheckPaths, CheckDiscovery, CheckResolver, CheckBaseImage, CheckDiskSizes, CheckPoolSpace,
	CheckXML, CheckOldDomains, CheckSize}

// refused is a check that failed in a start: which, and what start's
// progress shows for it.
type refused struct {
	check string
	short string
	err   error
}

func (f *refused) Error() string { return f.err.Error() }
func (f *refused) Unwrap() error { return f.err }

// errFileRefused ends a plan's preflight at a file it reported invalid.
var errFileRefused = errors.New("the file is not valid")

// errStop ends a plan's preflight where the checks after depend on one
// that failed; what was found is reported.
var errStop = errors.New("the checks after depend on one that failed")

// run is the preflight of one request.
type run struct {
	ctx      context.Context
	host     Host
	req      api.Request
	failFast bool // a start

	hostChanges cluster.HostChangesPlan
	fresh       cluster.Plan // from the file alone
	// Set by inspect.
	inv  api.Inventory
	plan cluster.Plan // with the leases the network gives already
	// Set by hostChecks.
	caps                              cluster.HostCapabilities
	ledger                            api.LedgerView
	negotiated                        bool
	img                               api.ImageInfo
	base                              api.VolumeState
	baseExisted                       bool
	discoveryExisted, resolverExisted bool
	// forwardKept: the file names no forward mode, and the existing
	// network keeps its own.
	forwardKept bool

	out api.ClusterPlan
}

// Run runs the preflight of a start (api.PreflightStart: it stops at the
// first check that fails and records it as the plan's Refusal) or of a
// plan (every check that can run, each reported). It returns an error only
// when the host cannot be asked.
func Run(ctx context.Context, h Host, req api.PreflightRequest) (api.ClusterPlan, error) {
	r := &run{ctx: ctx, host: h, req: req.Request, failFast: req.Mode != api.PreflightPlan}
	err := r.all()
	var f *refused
	switch {
	case err == nil, errors.Is(err, errFileRefused), errors.Is(err, errStop):
		return r.out, nil
	case errors.As(err, &f):
		ref := &api.Refusal{Check: f.check, Short: f.short, Message: rootMessage(f.err), Type: errType(f.err),
			OfRequest: f.check == CheckFile || f.check == CheckHostChanges}
		r.out.Refusal = ref
		r.out.Steps = nil
		return r.out, nil
	}
	return r.out, err
}

func (r *run) all() error {
	if err := r.file(); err != nil {
		return err
	}
	r.out.Plan = r.fresh
	if r.failFast {
		if err := r.confirmHostChanges(); err != nil {
			return err
		}
	}
	if err := r.inspect(); err != nil {
		return err
	}
	r.out.Plan, r.out.NotInFile = r.plan, notInFile(r.plan, r.inv)
	if err := r.hostChecks(); err != nil {
		return err
	}
	r.out.Host, r.out.Plan = r.caps, r.plan
	r.out.Objects = plannedObjects(r.plan, r.inv, r.baseExisted, r.forwardKept)
	if !r.negotiated || r.img.Format == "" || r.failed(CheckBaseImage) {
		return nil
	}
	docs, err := r.documents()
	if err != nil {
		return err
	}
	if r.failFast {
		r.out.Steps = r.steps(docs)
		// A start records its answer in one payload of the run's
		// history: the report plan and validate show is left out, as
		// the steps carry every document.
		r.out.Documents, r.out.Objects = nil, nil
	}
	return r.sizeCheck()
}

// MaxRecordedPlan is the most the preflight's answer may weigh (JSON):
// Temporal refuses a payload over 2 MiB (its default blob size limit),
// and the event around it needs room too.
const MaxRecordedPlan = 3 << 19 // 1.5 MiB

// sizeCheck refuses a start whose answer Temporal could not record. A
// plan's report too large to return leaves its documents out and says so.
func (r *run) sizeCheck() error {
	b, err := json.Marshal(r.out)
	if err != nil {
		return err
	}
	if len(b) <= MaxRecordedPlan {
		r.out.Checks = append(r.out.Checks, api.Check{Name: CheckSize, OK: true, Detail: fmt.Sprintf("the plan takes %d KiB of the %d KiB a run's history records in one event", len(b)>>10, MaxRecordedPlan>>10)})
		return nil
	}
	perVM := len(b) / max(1, len(r.plan.VMs))
	refusal := fmt.Errorf("the plan of %d VMs takes %d KiB (about %d B a VM), more than the %d KiB a Temporal history records in one event: split the cluster into clusters of at most %d VMs",
		len(r.plan.VMs), len(b)>>10, perVM, MaxRecordedPlan>>10, MaxRecordedPlan/perVM)
	if !r.failFast {
		r.out.Documents = nil
		refusal = fmt.Errorf("%w (this report leaves the documents out)", refusal)
	}
	return r.shortCheck(CheckSize, badRequest(refusal), "", "the cluster is too large for one run")
}

// check records one outcome. In a start, a failure ends the preflight.
func (r *run) check(name string, err error, detail string) error {
	c := api.Check{Name: name, OK: err == nil, Detail: detail}
	if err != nil {
		c.Detail = rootMessage(err)
	}
	r.out.Checks = append(r.out.Checks, c)
	if err != nil && r.failFast {
		return &refused{check: name, err: err}
	}
	return nil
}

// shortCheck is check with the short text start's progress shows when it
// fails.
func (r *run) shortCheck(name string, err error, detail, short string) error {
	if e := r.check(name, err, detail); e != nil {
		e.(*refused).short = short
		return e
	}
	return nil
}

// problems records a check that found several problems, each as a line of
// validate's report; in a start the first error ends the preflight.
func (r *run) problems(name string, err error, list []string) error {
	if r.failFast {
		return r.check(name, err, "")
	}
	for _, pr := range list {
		r.out.Checks = append(r.out.Checks, api.Check{Name: name, Detail: pr})
	}
	return nil
}

// failedWith says a check of that name failed with that detail.
func (r *run) failedWith(name, detail string) bool {
	for _, c := range r.out.Checks {
		if c.Name == name && !c.OK && c.Detail == detail {
			return true
		}
	}
	return false
}

// failed says a check of that name failed.
func (r *run) failed(name string) bool {
	for _, c := range r.out.Checks {
		if c.Name == name && !c.OK {
			return true
		}
	}
	return false
}

// file validates the request and plans from the file alone. A start
// refuses an invalid file; validate and plan report each problem.
func (r *run) file() error {
	err := cluster.Validate(r.req.Spec)
	if err == nil {
		r.fresh, err = cluster.NewPlan(r.req.Spec)
	}
	if err != nil {
		if r.failFast {
			return r.check(CheckFile, badRequest(err), "")
		}
		var verr cluster.ValidationError
		if errors.As(err, &verr) {
			for _, fe := range verr {
				r.out.Checks = append(r.out.Checks, api.Check{Name: CheckFile, Detail: fe.Error()})
			}
		} else {
			r.out.Checks = append(r.out.Checks, api.Check{Name: CheckFile, Detail: rootMessage(err)})
		}
		return errFileRefused
	}
	r.hostChanges = cluster.HostChangesOf(r.req.Spec)
	r.hostChanges.ApplyTo(&r.fresh)
	r.out.Checks = append(r.out.Checks, api.Check{Name: CheckFile, OK: true, Detail: "every setting is valid"})
	return nil
}

// confirmHostChanges refuses a start whose host changes need a person's
// yes that was not given (the CLI's prompt, --yes, or a parent workflow's
// confirmed_host_changes): nothing is touched before. Changes already in
// place need no yes; what cannot be looked at counts as a change.
func (r *run) confirmHostChanges() error {
	hc := r.hostChanges
	if !hc.Any() || !hc.Confirm || r.req.ConfirmedHostChanges {
		return nil
	}
	asked := hc
	if pending, err := r.host.PendingHostChanges(r.ctx, PendingRequest(r.req, r.fresh, hc)); err == nil {
		asked = OnlyPending(hc, pending)
	}
	if !asked.Any() {
		return nil
	}
	return r.check(CheckHostChanges, badRequest(fmt.Errorf("cluster %s changes host %s outside libvirt (%s), and host_configuration asks for confirmation first: "+
		"run `hpcvm start` on a terminal and answer yes, or pass --yes (clients: set confirmed_host_changes)",
		r.fresh.Cluster, r.fresh.Host, strings.Join(cluster.HostChangeSummary(r.fresh, asked), "; "))), "")
}

// OnlyPending is hc narrowed to the changes that are not in place.
func OnlyPending(hc cluster.HostChangesPlan, p api.PendingChanges) cluster.HostChangesPlan {
	hc.Routing = hc.Routing && p.Routing
	hc.Discovery = hc.Discovery && p.Discovery
	hc.Resolver = hc.Resolver && p.Resolver
	return hc
}

// rootMessage is the innermost message of an error chain: what libvirt or
// a check said, without Temporal's wrapping.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// errType is the Temporal error type a refusal fails the run with.
func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() != "" {
		return appErr.Type()
	}
	return api.ErrTypeBadInput
}

func badRequest(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), api.ErrTypeBadInput, err)
}

func isBadInput(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == api.ErrTypeBadInput
}

func isNotOwned(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == api.ErrTypeNotOwned
}

// Describe reads what exists of the cluster on its host, found by
// hpcvm's marks, and the plan of the current file (none for a NameOnly
// request), with the addresses the network really gives. It changes
// nothing (it does not even start an inactive pool).
func Describe(ctx context.Context, h Host, req api.Request) (api.Description, error) {
	name := req.Spec.Cluster.Name
	var fresh cluster.Plan
	if req.NameOnly {
		if err := cluster.ValidateTarget(name, req.Spec.Cluster.Host); err != nil {
			return api.Description{}, badRequest(err)
		}
	} else {
		if err := cluster.Validate(req.Spec); err != nil {
			return api.Description{}, badRequest(err)
		}
		var err error
		if fresh, err = cluster.NewPlan(req.Spec); err != nil {
			return api.Description{}, badRequest(err)
		}
	}
	var d api.Description
	inv, err := h.InspectCluster(ctx, api.InspectRequest{Cluster: name, PlannedDomains: domainNames(fresh), LiveAddresses: true})
	if err != nil {
		return d, err
	}
	d.Inventory = inv
	if req.NameOnly {
		d.Plan = cluster.Plan{Cluster: name, Host: req.Spec.Cluster.Host}
		return d, nil
	}
	var leases []cluster.HostLease
	if inv.NetworkOwned() {
		leases = inv.Network.Leases
	}
	if d.Plan, err = cluster.NewPlanKeeping(req.Spec, leases); err != nil {
		d.Plan = fresh
	}
	return d, nil
}

// PendingHostChangesFor is the question for a cluster file: the host
// changes its start would make, as the start asks for them.
func PendingHostChangesFor(spec cluster.Spec, requestedBy string) (api.PendingRequest, error) {
	p, err := cluster.NewPlan(spec)
	if err != nil {
		return api.PendingRequest{}, err
	}
	hc := cluster.HostChangesOf(spec)
	hc.ApplyTo(&p)
	return PendingRequest(api.Request{Spec: spec, RequestedBy: requestedBy}, p, hc), nil
}
