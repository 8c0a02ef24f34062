package workflows

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The checks start runs before it creates anything, by the names validate
// and plan report them under. One list and one function (preflight) serve
// start, validate and plan, so what validate promises is what start
// checks.
const (
	CheckFile        = "file"
	CheckNames       = "names"
	CheckRouting     = "routing"
	CheckForward     = "network forward"
	CheckRange       = "network range"
	CheckAddresses   = "addresses"
	CheckDNS         = "network DNS"
	CheckHost        = "host"
	CheckHardware    = "hardware"
	CheckPCI         = "pci"
	CheckPaths       = "paths"
	CheckDiscovery   = "discovery record"
	CheckResolver    = "resolver entry"
	CheckBaseImage   = "base image"
	CheckDiskSizes   = "disk sizes"
	CheckPoolSpace   = "pool space"
	CheckXML         = "xml"
	CheckOldDomains  = "existing domains"
	checkNotRecorded = ""
)

// PreflightChecks are the checks of the preflight, in the order they run.
// A check that does not apply to a cluster (pci without devices, the
// resolver entry without host DNS integration) is not run.
var PreflightChecks = []string{CheckFile, CheckNames, CheckRouting, CheckForward, CheckRange, CheckAddresses, CheckDNS,
	CheckHost, CheckHardware, CheckPCI, CheckPaths, CheckDiscovery, CheckResolver, CheckBaseImage, CheckDiskSizes, CheckPoolSpace}

// PlanOnlyChecks are what plan adds after the preflight: start renders the
// documents and compares existing domains at its define steps instead.
var PlanOnlyChecks = []string{CheckXML, CheckOldDomains}

// checkFailure is a check that failed in a start: which, and what start's
// progress shows for its step.
type checkFailure struct {
	check string
	short string // the step's detail in the progress; "" for the error itself
	err   error
}

func (f *checkFailure) Error() string { return f.err.Error() }
func (f *checkFailure) Unwrap() error { return f.err }

// preflight runs the checks of one run. A start stops at the first check
// that fails (failFast); validate and plan go on where the checks after it
// do not depend on it, and report every one.
type preflight struct {
	ctx      workflow.Context
	actx     workflow.Context // activity options of the run
	req      Request
	failFast bool // start

	hostChanges cluster.HostChangesPlan
	fresh       cluster.Plan // from the file alone
	recorded    bool         // a start recorded before the hardware rules
	// Set by inspect.
	inv  api.Inventory
	plan cluster.Plan // with the leases the network gives already
	// Set by host.
	caps                              cluster.HostCapabilities
	negotiated                        bool
	img                               api.ImageInfo
	base                              api.VolumeState
	baseExisted                       bool
	discoveryExisted, resolverExisted bool

	checks []Check
}

// check records one outcome. In a start, a failure ends the preflight:
// the error it returns carries the check's name.
func (p *preflight) check(name string, err error, detail string) error {
	c := Check{Name: name, OK: err == nil, Detail: detail}
	if err != nil {
		c.Detail = rootMessage(err)
	}
	p.checks = append(p.checks, c)
	if err != nil && p.failFast {
		return &checkFailure{check: name, err: err}
	}
	return nil
}

// problems records a check that found several problems, each as a line of
// validate's report; in a start the first error ends the preflight.
func (p *preflight) problems(name string, err error, list []string) error {
	if p.failFast {
		return p.check(name, err, "")
	}
	for _, pr := range list {
		p.checks = append(p.checks, Check{Name: name, Detail: pr})
	}
	return nil
}

// failedWith says a check of that name failed with that detail.
func (p *preflight) failedWith(name, detail string) bool {
	for _, c := range p.checks {
		if c.Name == name && !c.OK && c.Detail == detail {
			return true
		}
	}
	return false
}

// failed says a check of that name failed.
func (p *preflight) failed(name string) bool {
	for _, c := range p.checks {
		if c.Name == name && !c.OK {
			return true
		}
	}
	return false
}

// errFileRefused ends a plan's preflight at a file it reported invalid.
var errFileRefused = errors.New("the file is not valid")

// file validates the request and plans from the file alone, under the
// rules the run began with. A start refuses an invalid file; validate and
// plan report each problem (and the preflight ends with errFileRefused).
func (p *preflight) file() error {
	validate := cluster.Validate
	if p.failFast {
		validate, p.recorded = specValidator(p.ctx)
	} else {
		// Plans never took the recorded hardware rules.
		switch hostRulesVersion(p.ctx) {
		case workflow.DefaultVersion:
			validate = cluster.ValidateBeforeHostRules
		case 1:
			validate = cluster.ValidateBeforeHostChanges
		case 2:
			validate = cluster.ValidateBeforeResolver
		}
	}
	err := validate(p.req.Spec)
	if err == nil {
		p.fresh, err = cluster.NewPlan(p.req.Spec)
	}
	if err != nil {
		if p.failFast {
			return badRequest(err)
		}
		var verr cluster.ValidationError
		if errors.As(err, &verr) {
			for _, fe := range verr {
				p.checks = append(p.checks, Check{Name: CheckFile, Detail: fe.Error()})
			}
		} else {
			p.checks = append(p.checks, Check{Name: CheckFile, Detail: rootMessage(err)})
		}
		return errFileRefused
	}
	if p.recorded {
		p.fresh.AsRecorded()
	}
	p.hostChanges = hostChangesOf(p.ctx, p.req.Spec)
	p.hostChanges.ApplyTo(&p.fresh)
	p.checks = append(p.checks, Check{Name: CheckFile, OK: true, Detail: "every setting is valid"})
	return nil
}

// inspect reads what exists of the cluster and checks that start may act
// on it: names, routing, forwarding, addresses, DNS.
func (p *preflight) inspect(activate bool) error {
	if err := workflow.ExecuteActivity(p.actx, api.ActInspectCluster, api.InspectRequest{
		Cluster: p.fresh.Cluster, PlannedDomains: domainNames(p.fresh), Activate: activate, AddressesInUse: true,
	}).Get(p.ctx, &p.inv); err != nil {
		return err
	}
	if err := p.shortCheck(CheckNames, refuseLookalikes(p.fresh, p.inv), "no object with the cluster's names was made by anyone but hpcvm",
		"objects with the cluster's names were not created by hpcvm"); err != nil {
		return err
	}
	// Plans recorded before the preflight was one did not check routing;
	// the check issues no command, so it needs no version.
	routingErr := refuseRoutingChange(p.fresh, p.hostChanges, p.inv)
	if r := p.inv.Routing; !p.failFast && r != nil && r.Problem != "" && !p.hostChanges.Routing {
		// "Cannot tell" is not "not routed" (fail closed). A start never
		// gets here: its inspection (Activate) fails on such a Problem,
		// and a start recorded before must replay as it ran.
		routingErr = fmt.Errorf("cannot tell whether cluster %s is one of host %s's routed clusters: %s; run it again once the host's firewall rules can be read",
			p.fresh.Cluster, p.fresh.Host, r.Problem)
	}
	if err := p.shortCheck(CheckRouting, routingErr, routingDetail(p.hostChanges, p.inv),
		"the cluster is routed; cluster.yaml no longer asks for it"); err != nil {
		return err
	}
	if err := p.shortCheck(CheckForward, refuseForwardChange(p.fresh, p.inv), "the network's forwarding is the one cluster.yaml asks for",
		"network.forward differs from the existing network's"); err != nil {
		return err
	}
	// A new network's range must be free on the host: libvirt would
	// refuse it only at the network step ("in use by interface"), after
	// the run had claimed devices. Inspections recorded before listed no
	// addresses, so the check passes on them as it did.
	if p.inv.Network == nil && (len(p.inv.AddressesInUse) > 0 || p.inv.AddressesListed) {
		// The bridge check came later: a run recorded before judges as
		// it did.
		bridge := workflow.GetVersion(p.ctx, "bridge-clash", workflow.DefaultVersion, 1) == 1
		if err := p.shortCheck(CheckRange, rangeClash(p.fresh, p.inv.AddressesInUse, bridge), fmt.Sprintf("%s overlaps no network or route of the host", p.fresh.Network.Range),
			"the network's range is in use on the host"); err != nil {
			return err
		}
	}
	// Addresses the network already gives stay with their VMs.
	var leases []cluster.HostLease
	if p.inv.NetworkOwned() {
		leases = p.inv.Network.Leases
	}
	plan, err := cluster.NewPlanKeeping(p.req.Spec, leases)
	if err != nil {
		return p.shortCheck(CheckAddresses, badRequest(err), "", "the VMs' addresses cannot be planned")
	}
	p.checks = append(p.checks, Check{Name: CheckAddresses, OK: true, Detail: "every VM has a MAC and an address"})
	if p.recorded {
		plan.AsRecorded()
	}
	p.hostChanges.ApplyTo(&plan)
	p.plan = plan
	if hostRulesVersion(p.ctx) >= 3 {
		if err := p.shortCheck(CheckDNS, refuseDNSChange(p.plan, p.inv), "the network's DNS forwarders are the ones cluster.yaml asks for",
			"the DNS forwarders differ from the existing network's"); err != nil {
			return err
		}
	}
	return nil
}

// shortCheck is check with the short text start's progress shows when it
// fails.
func (p *preflight) shortCheck(name string, err error, detail, short string) error {
	if e := p.check(name, err, detail); e != nil {
		var f *checkFailure
		if errors.As(e, &f) {
			f.short = short
		}
		return e
	}
	return nil
}

func routingDetail(hc cluster.HostChangesPlan, inv api.Inventory) string {
	switch {
	case hc.Routing:
		return "cluster.yaml asks for routing between clusters"
	case inv.Routing != nil && inv.Routing.Member:
		return "routed"
	}
	return "the cluster is not routed, and cluster.yaml does not ask for it"
}

// host checks that the host can run the plan: capabilities, hardware,
// PCI functions, paths, host-change files, base image, disks, pool space.
// An error that is not a check's (the worker cannot be asked) ends it in
// every mode.
func (p *preflight) host() error {
	ctx, actx := p.ctx, p.actx
	if err := workflow.ExecuteActivity(actx, api.ActProbeHost).Get(ctx, &p.caps); err != nil {
		return err
	}
	p.checks = append(p.checks, Check{Name: CheckHost, OK: true, Detail: hostSummary(p.caps)})
	p.negotiated = true
	if err := p.plan.NegotiateRunning(p.req.Spec, p.caps, runningVMs(p.inv)); err != nil {
		p.negotiated = false
		var mismatch *cluster.HostMismatchError
		if errors.As(err, &mismatch) {
			if err := p.problems(CheckHardware, badRequest(err), mismatch.Problems); err != nil {
				return err
			}
		} else if err := p.check(CheckHardware, badRequest(err), ""); err != nil {
			return err
		}
	} else {
		p.checks = append(p.checks, Check{Name: CheckHardware, OK: true, Detail: machineSummary(p.plan.Machine)})
	}
	if err := p.pci(); err != nil {
		return err
	}

	// Paths the worker may not use are refused before anything exists.
	p.base, p.baseExisted = p.inv.Volume(p.plan.BaseImage.Volume)
	paths := hostPaths(p.req.Spec, p.plan, p.inv, p.baseExisted)
	if p.hostChanges.Discovery {
		paths.DiscoveryDir = p.hostChanges.DiscoveryDir
	}
	if p.hostChanges.Resolver {
		paths.ResolverDir = p.hostChanges.ResolverDir
	}
	if !paths.Empty() {
		err := workflow.ExecuteActivity(actx, api.ActCheckHostPaths, paths).Get(ctx, nil)
		if err != nil && !isBadInput(err) {
			return err
		}
		if err := p.check(CheckPaths, err, "the worker may use every path the cluster names"); err != nil {
			return err
		}
	}
	if err := p.hostChangeFiles(); err != nil {
		return err
	}

	if p.baseExisted {
		p.img = api.ImageInfo{Path: p.plan.BaseImage.Source, Format: p.base.Format, VirtualSize: p.base.Capacity}
		// A base an older hpcvm uploaded is judged as an image would be
		// (InspectCluster read its header): validate and start alike.
		var problem error
		if p.base.Problem != "" {
			problem = temporal.NewNonRetryableApplicationError(p.base.Problem, api.ErrTypeBadInput, nil)
		}
		if err := p.check(CheckBaseImage, problem, fmt.Sprintf("volume %s is in the pool already (%s, %s virtual)", p.base.Name, p.base.Format, size(p.base.Capacity))); err != nil {
			return err
		}
	} else {
		err := workflow.ExecuteActivity(actx, api.ActInspectBaseImage, p.plan.BaseImage.Source).Get(ctx, &p.img)
		if err != nil && !isBadInput(err) {
			return err
		}
		if err != nil && p.failedWith(CheckPaths, rootMessage(err)) {
			// The same refusal the paths check reported: said once.
			err = errors.New("refused by the paths check above")
		}
		if err := p.check(CheckBaseImage, err, fmt.Sprintf("%s: %s, %s virtual, %s on disk", p.img.Path, p.img.Format, size(p.img.VirtualSize), size(uint64(p.img.FileSize)))); err != nil {
			return err
		}
	}
	if p.img.Format == "" {
		return nil // the base image could not be read: nothing to size
	}
	if small := smallDisks(p.plan, p.img); len(small) > 0 {
		err := temporal.NewNonRetryableApplicationError(small[0], api.ErrTypeBadInput, nil)
		if !p.failFast {
			err = errors.New(strings.Join(small, "; "))
		}
		if err := p.check(CheckDiskSizes, err, ""); err != nil {
			return err
		}
	} else {
		p.checks = append(p.checks, Check{Name: CheckDiskSizes, OK: true, Detail: "every VM's disk holds the base image"})
	}
	// Starts recorded before the pool's space was measured did not.
	if p.failFast && workflow.GetVersion(ctx, "pool-space", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var space api.SpaceInfo
	if err := workflow.ExecuteActivity(actx, api.ActPoolSpace, p.plan.Pool.Path).Get(ctx, &space); err != nil {
		return err
	}
	note, err := judgeSpace(p.plan, p.inv, p.img, p.baseExisted, space)
	if err != nil {
		err = badRequest(err)
	}
	if err := p.check(CheckPoolSpace, err, fmt.Sprintf("%s free at %s", size(space.Available), space.Measured)); err != nil {
		return err
	}
	if note != "" {
		p.plan.Machine.Notes = append(p.plan.Machine.Notes, note)
	}
	return nil
}

// pci checks the cluster's PCI functions on the host and assigns them.
// Starts recorded before the check did not run it.
func (p *preflight) pci() error {
	addrs := cluster.PCIAddresses(p.req.Spec)
	if len(addrs) == 0 {
		return nil
	}
	if p.failFast && workflow.GetVersion(p.ctx, "validate-pci", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var facts cluster.PCIFacts
	if err := workflow.ExecuteActivity(p.actx, api.ActValidatePCI, api.PCIRequest{Host: p.plan.Host, Cluster: p.plan.Cluster, Addresses: addrs}).Get(p.ctx, &facts); err != nil {
		return err
	}
	if problems := p.plan.AssignPCI(p.req.Spec, p.plan.Host, facts); len(problems) > 0 {
		p.negotiated = false
		return p.problems(CheckPCI, badRequest(&cluster.HostMismatchError{Host: p.plan.Host, Problems: problems}), problems)
	}
	p.checks = append(p.checks, Check{Name: CheckPCI, OK: true, Detail: fmt.Sprintf("%d function(s) present, in complete IOMMU groups, held by no other domain (%s)", len(addrs), facts.Source)})
	return nil
}

// hostChangeFiles refuses a registry file or resolver entry of the
// cluster's name that is not hpcvm's, before anything is created. Plans
// recorded before the preflight was one did not look.
func (p *preflight) hostChangeFiles() error {
	hc := p.hostChanges
	if !hc.Discovery && !hc.Resolver {
		return nil
	}
	if !p.failFast && workflow.GetVersion(p.ctx, "one-preflight", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if hc.Discovery {
		err := workflow.ExecuteActivity(p.actx, api.ActDiscoveryRecordExists, discoveryRequest(p.req, p.plan, hc)).Get(p.ctx, &p.discoveryExisted)
		if err != nil && !isBadInput(err) && !isNotOwned(err) {
			return err
		}
		if err := p.check(CheckDiscovery, err, existedDetail(p.discoveryExisted, "the cluster's service discovery record")); err != nil {
			return err
		}
	}
	if hc.Resolver {
		err := workflow.ExecuteActivity(p.actx, api.ActResolverEntryExists, resolverRequest(p.req, p.plan, hc)).Get(p.ctx, &p.resolverExisted)
		if err != nil && !isBadInput(err) && !isNotOwned(err) {
			return err
		}
		if err := p.check(CheckResolver, err, existedDetail(p.resolverExisted, "the host resolver's entry of the cluster")); err != nil {
			return err
		}
	}
	return nil
}

func existedDetail(existed bool, what string) string {
	if existed {
		return what + " is hpcvm's already"
	}
	return what + " is not there yet: start writes it"
}

func isNotOwned(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == api.ErrTypeNotOwned
}

// rangeClash refuses a cluster network whose range overlaps a subnet in
// use on the host, naming its owner, and (withBridge) one whose bridge a
// libvirt network or a host interface with a route holds. It runs only
// while the cluster has no network of its own.
func rangeClash(p cluster.Plan, inUse []api.AddressInUse, withBridge bool) error {
	want, err := netip.ParsePrefix(p.Network.Range)
	if err != nil {
		return nil // the file's check refuses a bad range
	}
	var clashes, bridge []string
	for _, u := range inUse {
		if u.Bridge != "" && u.Bridge == p.Network.Bridge {
			if withBridge {
				bridge = append(bridge, u.Owner)
			}
			continue
		}
		have, err := netip.ParsePrefix(u.Subnet)
		if err != nil {
			continue
		}
		if want.Overlaps(have) {
			clashes = append(clashes, fmt.Sprintf("%s of %s", have.Masked(), u.Owner))
		}
	}
	var problems []string
	if len(clashes) > 0 {
		problems = append(problems, fmt.Sprintf("network.network_range %s of cluster %s overlaps %s on host %s: libvirt would refuse the network, and guests could not reach what is there; "+
			"give network.network_range a free range (and gateway_ip in it), or remove what holds it", want, p.Cluster, strings.Join(clashes, "; "), p.Host))
	}
	if len(bridge) > 0 {
		problems = append(problems, fmt.Sprintf("the cluster network's bridge %s is taken on host %s by %s: libvirt would refuse the network; "+
			"give network.bridge_name another name, or remove what holds it", p.Network.Bridge, p.Host, strings.Join(slices.Compact(slices.Sorted(slices.Values(bridge))), "; ")))
	}
	if len(problems) == 0 {
		return nil
	}
	return badRequest(fmt.Errorf("%s; nothing was changed", strings.Join(problems, "; and ")))
}
