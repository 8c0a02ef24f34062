package libvirt

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// DomainState is libvirt's domain state in the words virsh uses.
type DomainState string

const (
	StateRunning      DomainState = "running"
	StateShutOff      DomainState = "shut off"
	StatePaused       DomainState = "paused"
	StateShuttingDown DomainState = "shutting down"
	StateCrashed      DomainState = "crashed"
	StatePMSuspended  DomainState = "pmsuspended"
	StateBlocked      DomainState = "blocked"
	StateUnknown      DomainState = "unknown"
)

func stateOf(s lv.DomainState) DomainState {
	switch s {
	case lv.DOMAIN_RUNNING:
		return StateRunning
	case lv.DOMAIN_SHUTOFF:
		return StateShutOff
	case lv.DOMAIN_PAUSED:
		return StatePaused
	case lv.DOMAIN_SHUTDOWN:
		return StateShuttingDown
	case lv.DOMAIN_CRASHED:
		return StateCrashed
	case lv.DOMAIN_PMSUSPENDED:
		return StatePMSuspended
	case lv.DOMAIN_BLOCKED:
		return StateBlocked
	}
	return StateUnknown
}

// DomainSummary is one domain as ListDomains sees it.
type DomainSummary struct {
	Name  string
	State DomainState
	// Type is the domain type it is defined with: kvm, or qemu (TCG
	// emulation); "" if its definition could not be read.
	Type      string
	Metadata  string // the metadata element in the requested namespace, as the definition holds it (with its prefix), "" if none
	MemoryKiB uint64
	VCPUs     uint
	Disks     []string // source files of its disks
	// BackingFiles are the files under its disks, known while it runs.
	BackingFiles []string
	// VolumeDisks are disks given as pool volumes, as "pool/volume".
	VolumeDisks []string
	Networks    []string // networks its interfaces are attached to
	Bridges     []string // bridges its interfaces are attached to directly
	// PCIHostdevs are the host PCI functions passed through to it
	// ("0000:01:00.0").
	PCIHostdevs []string
	// VCPUPins are the host CPUs its vCPUs are pinned to, by vCPU (from
	// <cputune>); a vCPU pinned to several CPUs lists the first.
	VCPUPins []int
	// HugepageKiB is the size of the hugepages its memory is backed by (0:
	// none); HugepageCells is, per host NUMA cell its guest cells are
	// bound to (numatune memnode), the KiB of memory bound there.
	HugepageKiB   uint64
	HugepageCells map[int]uint64
	// AgentConnected says a QEMU guest agent answers on the domain's
	// channel (libvirt marks the channel connected in the live XML).
	AgentConnected bool
	// StartedAt is when a running domain's QEMU started (zero when off, or
	// not known): how long its guest has had to boot.
	StartedAt time.Time
	// Unreadable says its definition could not be parsed, so what it uses
	// is unknown.
	Unreadable bool
	XML        string // live definition
}

// EnsureDomain defines the domain described by xml unless one of that name
// exists. An existing domain must match in everything diffDomain compares
// (every field hpcvm renders but its names, machine type and emulator) and
// in the metadata element the desired XML carries; otherwise ErrMismatch.
// It does not start the domain.
func (c *Client) EnsureDomain(xml string) (created bool, err error) {
	var want libvirtxml.Domain
	if err := want.Unmarshal(xml); err != nil || want.Name == "" {
		return false, invalidXML("define domain", want.Name, err, "a <domain> with a <name>")
	}
	wantNS, wantMeta, err := metadataElement(&want)
	if err != nil {
		return false, invalidXML("define domain", want.Name, err, "well-formed <metadata>")
	}
	const op = "define domain"
	err = c.do(op, want.Name, true, func(conn *lv.Connect) error {
		created = false
		dom, err := conn.LookupDomainByName(want.Name)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err == nil {
			defer dom.Free()
			d, err := differsFrom(dom, &want)
			if err != nil {
				return err
			}
			if d != nil {
				d.Op, d.Object = op, want.Name
				return d
			}
			if wantNS != "" {
				haveMeta, err := dom.GetMetadata(lv.DOMAIN_METADATA_ELEMENT, wantNS, lv.DOMAIN_AFFECT_CONFIG)
				if err != nil && !isNotFound(err) {
					return err
				}
				if canonicalXML(haveMeta) != canonicalXML(wantMeta) {
					return mismatch(op, want.Name, "metadata "+wantNS, haveMeta, wantMeta)
				}
			}
			return nil
		}
		dom, err = conn.DomainDefineXML(xml)
		if err != nil {
			return err
		}
		created = true
		return dom.Free()
	})
	return created, err
}

// differsFrom compares dom's persistent definition with want in what
// EnsureDomain checks; nil when they match.
func differsFrom(dom *lv.Domain, want *libvirtxml.Domain) (*Error, error) {
	have, err := persistentDefinition(dom)
	if err != nil {
		return nil, err
	}
	return diffDomain(have, want), nil
}

// persistentDefinition is the domain's definition as it will next boot.
func persistentDefinition(dom *lv.Domain) (*libvirtxml.Domain, error) {
	haveXML, err := dom.GetXMLDesc(lv.DOMAIN_XML_INACTIVE)
	if err != nil {
		return nil, err
	}
	var have libvirtxml.Domain
	if err := have.Unmarshal(haveXML); err != nil {
		return nil, err
	}
	return &have, nil
}

// DomainDifference says how the domain of that name differs from xml in
// what EnsureDomain compares; "" when it matches or does not exist.
func (c *Client) DomainDifference(xml string) (string, error) {
	var want libvirtxml.Domain
	if err := want.Unmarshal(xml); err != nil || want.Name == "" {
		return "", invalidXML("compare domain", want.Name, err, "a <domain> with a <name>")
	}
	var diff string
	err := c.withDomain("compare domain", want.Name, func(dom *lv.Domain) error {
		d, err := differsFrom(dom, &want)
		if d != nil {
			diff = d.Detail
		}
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return diff, err
}

// DomainDrift names the parts of the domain of that name that differ from
// what this hpcvm's template renders for xml though no cluster.yaml key
// sets them (templateDrift), joined by "; "; "" when none do or there is
// no such domain.
func (c *Client) DomainDrift(xml string) (string, error) {
	var want libvirtxml.Domain
	if err := want.Unmarshal(xml); err != nil || want.Name == "" {
		return "", invalidXML("compare domain", want.Name, err, "a <domain> with a <name>")
	}
	var drift []string
	err := c.withDomain("compare domain", want.Name, func(dom *lv.Domain) error {
		have, err := persistentDefinition(dom)
		if err != nil {
			return err
		}
		drift = templateDrift(have, &want)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return strings.Join(drift, "; "), err
}

// DomainState returns ErrNotFound if no domain has that name.
func (c *Client) DomainState(name string) (DomainState, error) {
	var st DomainState
	err := c.withDomain("read state of domain", name, func(dom *lv.Domain) error {
		s, _, err := dom.GetState()
		st = stateOf(s)
		return err
	})
	return st, err
}

// StartDomain boots the domain. An already active (running or paused)
// domain is left as it is and startedNow is false.
func (c *Client) StartDomain(name string) (startedNow bool, err error) {
	err = c.withDomain("start domain", name, func(dom *lv.Domain) error {
		startedNow = false
		active, err := dom.IsActive()
		if err != nil || active {
			return err
		}
		if err := dom.Create(); err != nil {
			if isInvalidState(err) {
				if active, aerr := dom.IsActive(); aerr == nil && active {
					return nil // started by someone else meanwhile
				}
			}
			return &Error{Op: "start domain", Object: name, Cause: err, Detail: startFailure(name, libvirtMessage(err))}
		}
		startedNow = true
		return nil
	})
	return startedNow, err
}

// DomainShares returns the host directories the domain's definition
// shares into it (the sources of its <filesystem type='mount'> devices,
// virtio-fs), as the definition names them: virtiofsd opens them as root
// when the domain starts.
func (c *Client) DomainShares(name string) ([]string, error) {
	var dirs []string
	err := c.withDomain("read shares of domain", name, func(dom *lv.Domain) error {
		x, err := dom.GetXMLDesc(lv.DOMAIN_XML_INACTIVE)
		if err != nil {
			return err
		}
		dirs, err = ShareDirs(x)
		return err
	})
	return dirs, err
}

// ShareDirs returns the host directories a domain XML shares: the source
// of each <filesystem> whose type is mount (libvirt's default type).
func ShareDirs(domainXML string) ([]string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(domainXML); err != nil {
		return nil, invalidXML("read shares of domain", d.Name, err, "a <domain>")
	}
	var dirs []string
	if d.Devices == nil {
		return nil, nil
	}
	for _, fs := range d.Devices.Filesystems {
		if fs.Source != nil && fs.Source.Mount != nil {
			dirs = append(dirs, fs.Source.Mount.Dir)
		}
	}
	return dirs, nil
}

// startFailure says why a domain did not start and where to look. A
// libvirtd that found no hugetlbfs mount when it started refuses every
// hugepage-backed domain, although the host has the free pages the
// preflight counted: that one is said with what to do.
func startFailure(name, msg string) string {
	if strings.Contains(msg, "hugetlbfs filesystem is not mounted") {
		return msg + ": libvirtd on the host looks for hugetlbfs mounts only when it starts; mount one " +
			"(mount -t hugetlbfs hugetlbfs /dev/hugepages) and restart libvirtd, or set " +
			"cluster.hardware.acceleration.performance.memory_backing to memfd (hugepages without hugetlbfs)"
	}
	return msg + "; see /var/log/libvirt/qemu/" + name + ".log on the host"
}

// ShutdownDomain presses the ACPI power button and returns at once; the
// guest decides whether and when to power off (see WaitDomainsOff). A
// domain that is not running is not an error.
func (c *Client) ShutdownDomain(name string) error {
	return c.withDomain("shut down domain", name, func(dom *lv.Domain) error {
		active, err := dom.IsActive()
		if err != nil || !active {
			return err
		}
		if err := dom.ShutdownFlags(lv.DOMAIN_SHUTDOWN_ACPI_POWER_BTN); err != nil && !isInvalidState(err) {
			return err
		}
		return nil
	})
}

// ForceOffDomain pulls the plug (virDomainDestroy). A domain that is not
// running is not an error.
func (c *Client) ForceOffDomain(name string) error {
	return c.withDomain("force off domain", name, func(dom *lv.Domain) error {
		active, err := dom.IsActive()
		if err != nil || !active {
			return err
		}
		if err := dom.Destroy(); err != nil && !isInvalidState(err) {
			return err
		}
		return nil
	})
}

// DeleteDomain forces the domain off and undefines it together with its
// managed-save image, snapshot metadata and NVRAM file; its disks are left
// to the caller. A missing domain is not an error. It does not check who
// owns the domain: callers do, with DomainMetadata.
func (c *Client) DeleteDomain(name string) error {
	err := c.withDomain("delete domain", name, func(dom *lv.Domain) error {
		active, err := dom.IsActive()
		if err != nil {
			return err
		}
		if active {
			if err := dom.Destroy(); err != nil && !isInvalidState(err) {
				return err
			}
		}
		// A transient domain vanishes when destroyed; undefine then finds
		// nothing, which is what we wanted.
		return dom.UndefineFlags(lv.DOMAIN_UNDEFINE_MANAGED_SAVE |
			lv.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | lv.DOMAIN_UNDEFINE_NVRAM)
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DomainMetadata returns the domain's metadata element in namespaceURI, as
// libvirt gives it: without the namespace prefix and declaration, e.g.
// <owner cluster="c1"/>. ErrNotFound if the domain or the element is absent.
func (c *Client) DomainMetadata(name, namespaceURI string) (string, error) {
	var meta string
	err := c.withDomain("read metadata of domain", name, func(dom *lv.Domain) error {
		var err error
		meta, err = dom.GetMetadata(lv.DOMAIN_METADATA_ELEMENT, namespaceURI, lv.DOMAIN_AFFECT_CURRENT)
		return err
	})
	return meta, err
}

// listFetchers is how many domain definitions ListDomains reads at once on
// one connection: libvirtd serves up to 5 calls of a client in parallel
// (max_client_requests), and on a host loaded by booting guests each call
// waits for a share of the CPU, so 32 definitions read one after the
// other took 5-14 s.
const listFetchers = 4

// ListDomains returns every domain, active or not, sorted by name, each
// with its metadata element in namespaceURI ("" if it has none). It asks
// libvirt for every domain's state in one call, then for each definition,
// a few at a time; the metadata is read from the definition.
func (c *Client) ListDomains(namespaceURI string) ([]DomainSummary, error) {
	var out []DomainSummary
	err := c.do("list domains", c.uri, true, func(conn *lv.Connect) error {
		out = nil
		stats, err := conn.GetAllDomainStats(nil, lv.DOMAIN_STATS_STATE, 0)
		if err != nil {
			return err
		}
		defer func() {
			for i := range stats {
				_ = stats[i].Domain.Free()
			}
		}()
		found := make([]DomainSummary, len(stats))
		errs := make([]error, len(stats))
		next := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < min(listFetchers, len(stats)); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					found[i], errs[i] = c.summarize(stats[i], namespaceURI)
				}
			}()
		}
		for i := range stats {
			next <- i
		}
		close(next)
		wg.Wait()
		for i := range found {
			if isNotFound(errs[i]) {
				continue // undefined meanwhile
			}
			if errs[i] != nil {
				return errs[i]
			}
			out = append(out, found[i])
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func (c *Client) summarize(st lv.DomainStats, ns string) (DomainSummary, error) {
	var s DomainSummary
	var err error
	dom := st.Domain
	if s.Name, err = dom.GetName(); err != nil {
		return s, err
	}
	if st.State != nil && st.State.StateSet {
		s.State = stateOf(st.State.State)
	} else {
		state, _, err := dom.GetState()
		if err != nil {
			return s, err
		}
		s.State = stateOf(state)
	}
	if s.XML, err = dom.GetXMLDesc(0); err != nil {
		return s, err
	}
	if s.State == StateRunning || s.State == StateBlocked || s.State == StatePaused {
		s.StartedAt = c.domainStartedAt(s.Name)
	}
	// Sizes are for display: a domain whose XML libvirtxml cannot read (some
	// other tool's, with elements it does not know) is still listed, so one
	// odd domain on the host cannot block every cluster's operations.
	var def libvirtxml.Domain
	if def.Unmarshal(s.XML) == nil {
		s.Type = def.Type
		s.MemoryKiB = domainMemoryKiB(&def)
		if def.VCPU != nil {
			s.VCPUs = def.VCPU.Value
		}
		if def.Devices != nil {
			for _, d := range def.Devices.Disks {
				if d.Source != nil && d.Source.File != nil && d.Source.File.File != "" {
					s.Disks = append(s.Disks, d.Source.File.File)
				}
				if d.Source != nil && d.Source.Volume != nil {
					s.VolumeDisks = append(s.VolumeDisks, d.Source.Volume.Pool+"/"+d.Source.Volume.Volume)
				}
				// A running domain's live XML carries the backing chain
				// libvirt probed: files it reads through its disk.
				for b := d.BackingStore; b != nil; b = b.BackingStore {
					if b.Source != nil && b.Source.File != nil && b.Source.File.File != "" {
						s.BackingFiles = append(s.BackingFiles, b.Source.File.File)
					}
				}
			}
			if def.CPUTune != nil {
				for _, p := range def.CPUTune.VCPUPin {
					if cpus := parseCPUSet(p.CPUSet); len(cpus) > 0 {
						s.VCPUPins = append(s.VCPUPins, cpus[0])
					}
				}
			}
			s.HugepageKiB, s.HugepageCells = hugepagesOf(&def)
			for _, h := range def.Devices.Hostdevs {
				if pci := h.SubsysPCI; pci != nil && pci.Source != nil && pci.Source.Address != nil {
					s.PCIHostdevs = append(s.PCIHostdevs, pciAddressString(pci.Source.Address.Domain, pci.Source.Address.Bus, pci.Source.Address.Slot, pci.Source.Address.Function))
				}
			}
			s.AgentConnected = agentConnected(&def)
			for _, i := range def.Devices.Interfaces {
				if i.Source != nil && i.Source.Network != nil {
					s.Networks = append(s.Networks, i.Source.Network.Network)
				}
				if i.Source != nil && i.Source.Bridge != nil {
					s.Bridges = append(s.Bridges, i.Source.Bridge.Bridge)
				}
			}
		}
	} else {
		// What it uses cannot be read: callers must assume it may use
		// anything.
		s.Unreadable = true
	}
	if ns != "" && !s.Unreadable {
		// The definition holds the metadata: no call of its own.
		_, s.Metadata, err = metadataElementIn(&def, func(elemNS string) bool { return elemNS == ns })
		if err != nil {
			s.Metadata = ""
		}
	} else if ns != "" {
		s.Metadata, err = dom.GetMetadata(lv.DOMAIN_METADATA_ELEMENT, ns, lv.DOMAIN_AFFECT_CURRENT)
		if err != nil {
			code, _ := libvirtCode(err)
			if code != lv.ERR_NO_DOMAIN_METADATA {
				return s, err
			}
			s.Metadata = ""
		}
	}
	return s, nil
}

// WaitDomainsOff polls until every named domain is shut off or gone,
// calling tick with the ones still running after each round that is not
// the last. Cancelling ctx returns ctx.Err().
func (c *Client) WaitDomainsOff(ctx context.Context, names []string, poll time.Duration, tick func(stillRunning []string)) error {
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		var still []string
		for _, n := range names {
			st, err := c.DomainState(n)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if st != StateShutOff {
				still = append(still, n)
			}
		}
		if len(still) == 0 {
			return nil
		}
		if tick != nil {
			tick(still)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *Client) withDomain(op, name string, fn func(dom *lv.Domain) error) error {
	return c.do(op, name, true, func(conn *lv.Connect) error {
		dom, err := conn.LookupDomainByName(name)
		if err != nil {
			return err
		}
		defer dom.Free()
		return fn(dom)
	})
}

// metadataElement returns the namespace and XML of the first element under
// the domain's <metadata>, or "" if it has none.
func metadataElement(d *libvirtxml.Domain) (ns, elem string, err error) {
	return metadataElementIn(d, func(string) bool { return true })
}

// metadataElementIn returns the namespace and XML of the first element
// under the domain's <metadata> whose namespace URI matches, or "": what
// virDomainGetMetadata finds for that URI (with the element's prefix).
func metadataElementIn(d *libvirtxml.Domain, match func(ns string) bool) (ns, elem string, err error) {
	if d.Metadata == nil || strings.TrimSpace(d.Metadata.XML) == "" {
		return "", "", nil
	}
	dec := xml.NewDecoder(strings.NewReader(d.Metadata.XML))
	depth := 0
	start := int64(-1)
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return "", "", nil
		}
		if err != nil {
			return "", "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && match(t.Name.Space) {
				ns, start = t.Name.Space, off
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && start >= 0 {
				return ns, d.Metadata.XML[start:dec.InputOffset()], nil
			}
		}
	}
}

// canonicalXML reduces an element to what matters for comparing it: local
// names, sorted attributes and trimmed text. Namespaces are dropped because
// virDomainGetMetadata returns the element stripped of its namespace (the
// caller selected it by namespace already), and libvirt re-serialises with
// its own quoting and indentation.
func canonicalXML(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	dec := xml.NewDecoder(strings.NewReader(s))
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			return "unparsable:" + s
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var attrs []string
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, fmt.Sprintf("%s=%q", a.Name.Local, a.Value))
			}
			sort.Strings(attrs)
			fmt.Fprintf(&b, "<%s %s>", t.Name.Local, strings.Join(attrs, " "))
		case xml.EndElement:
			b.WriteString("</>")
		case xml.CharData:
			if txt := strings.TrimSpace(string(t)); txt != "" {
				fmt.Fprintf(&b, "%q", txt)
			}
		}
	}
}

// parseCPUSet reads libvirt's cpuset syntax ("2", "0-3", "0,2-3", "^1"
// exclusions are ignored) into CPU numbers.
func parseCPUSet(set string) []int {
	var out []int
	for _, part := range strings.Split(set, ",") {
		part = strings.TrimSpace(part)
		if part == "" || strings.HasPrefix(part, "^") {
			continue
		}
		lo, hi, found := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if found {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for c := a; c <= b && c-a < 4096; c++ {
			out = append(out, c)
		}
	}
	return out
}

// guestAgentChannel is the virtio channel QEMU's guest agent talks on.
const guestAgentChannel = "org.qemu.guest_agent.0"

// DomainAgentAddresses asks the guest agent of a running domain for its
// addresses: IPv4 and IPv6 (not loopback or link-local) by lowercase MAC.
// Ask only a domain whose agent is connected (DomainSummary.AgentConnected):
// libvirt waits for an agent that does not answer.
func (c *Client) DomainAgentAddresses(name string) (map[string][]string, error) {
	out := map[string][]string{}
	err := c.withDomain("read guest agent addresses of domain", name, func(dom *lv.Domain) error {
		ifaces, err := dom.ListAllInterfaceAddresses(lv.DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT)
		if err != nil {
			return err
		}
		for _, i := range ifaces {
			for _, a := range i.Addrs {
				ip, err := netip.ParseAddr(a.Addr)
				if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
					continue
				}
				mac := strings.ToLower(i.Hwaddr)
				out[mac] = append(out[mac], ip.String())
			}
		}
		return nil
	})
	return out, err
}

// NotRunningError says a domain that was started (or found started) is
// not running: QEMU paused it (a KVM internal error, an I/O error), or it
// crashed or went off, with libvirt's reason and what QEMU last logged.
type NotRunningError struct {
	Domain string
	State  DomainState
	Reason string
	Log    string // the last lines of the domain's QEMU log, "" if unreadable
	// KVM says the domain runs under KVM (not TCG), so that a nested
	// KVM's emulation failure may be the cause.
	KVM bool
	// FoundSo says the start found the domain already started (it did not
	// start it itself) and not running.
	FoundSo bool
}

func (e *NotRunningError) Error() string {
	when := "right after its start"
	if e.FoundSo {
		when = "(it was started before this run)"
	}
	msg := fmt.Sprintf("domain %s is %s (reason: %s) %s, not running", e.Domain, e.State, e.Reason, when)
	if e.Log != "" {
		msg += "; its QEMU log ends: " + e.Log
	} else {
		msg += "; see /var/log/libvirt/qemu/" + e.Domain + ".log on the host"
	}
	return msg
}

// QEMULogDir is where libvirt's QEMU driver writes each domain's log.
var QEMULogDir = "/var/log/libvirt/qemu"

// WatchRunning checks that the domain runs, and keeps running for settle:
// a guest that QEMU pauses at once (nested KVM's "emulation failure"), or
// that crashes or powers off while booting, is reported with its state,
// libvirt's reason and the end of its QEMU log rather than counted as
// running. A domain pausing as it starts up is waited for.
func (c *Client) WatchRunning(ctx context.Context, name string, settle time.Duration) error {
	end := time.Now().Add(settle)
	for {
		var state lv.DomainState
		var reason int
		err := c.withDomain("read state of domain", name, func(dom *lv.Domain) error {
			var err error
			state, reason, err = dom.GetState()
			return err
		})
		if err != nil {
			return err
		}
		startingUp := state == lv.DOMAIN_PAUSED && lv.DomainPausedReason(reason) == lv.DOMAIN_PAUSED_STARTING_UP
		if state != lv.DOMAIN_RUNNING && state != lv.DOMAIN_BLOCKED && !startingUp {
			nr := &NotRunningError{Domain: name, State: stateOf(state), Reason: stateReason(state, reason), Log: logTail(filepath.Join(QEMULogDir, name+".log"), 4)}
			_ = c.withDomain("read definition of domain", name, func(dom *lv.Domain) error {
				have, err := persistentDefinition(dom)
				if err == nil {
					nr.KVM = have.Type == "kvm"
				}
				return err
			})
			return nr
		}
		if !time.Now().Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stateReason names libvirt's reason for a state, as virsh domstate
// --reason does.
func stateReason(state lv.DomainState, reason int) string {
	switch state {
	case lv.DOMAIN_PAUSED:
		return map[lv.DomainPausedReason]string{
			lv.DOMAIN_PAUSED_UNKNOWN: "unknown (QEMU stopped it: an internal error such as nested KVM's emulation failure)", lv.DOMAIN_PAUSED_USER: "paused by a user",
			lv.DOMAIN_PAUSED_MIGRATION: "migration", lv.DOMAIN_PAUSED_SAVE: "save", lv.DOMAIN_PAUSED_DUMP: "dump",
			lv.DOMAIN_PAUSED_IOERROR: "I/O error", lv.DOMAIN_PAUSED_WATCHDOG: "watchdog", lv.DOMAIN_PAUSED_FROM_SNAPSHOT: "from snapshot",
			lv.DOMAIN_PAUSED_SHUTTING_DOWN: "shutting down", lv.DOMAIN_PAUSED_SNAPSHOT: "snapshot", lv.DOMAIN_PAUSED_CRASHED: "guest crashed",
			lv.DOMAIN_PAUSED_STARTING_UP: "starting up", lv.DOMAIN_PAUSED_POSTCOPY: "post-copy", lv.DOMAIN_PAUSED_POSTCOPY_FAILED: "post-copy failed",
		}[lv.DomainPausedReason(reason)]
	case lv.DOMAIN_SHUTOFF:
		return map[lv.DomainShutoffReason]string{
			lv.DOMAIN_SHUTOFF_UNKNOWN: "unknown", lv.DOMAIN_SHUTOFF_SHUTDOWN: "the guest shut down", lv.DOMAIN_SHUTOFF_DESTROYED: "forced off",
			lv.DOMAIN_SHUTOFF_CRASHED: "QEMU crashed", lv.DOMAIN_SHUTOFF_MIGRATED: "migrated", lv.DOMAIN_SHUTOFF_SAVED: "saved",
			lv.DOMAIN_SHUTOFF_FAILED: "failed to start", lv.DOMAIN_SHUTOFF_FROM_SNAPSHOT: "from snapshot",
		}[lv.DomainShutoffReason(reason)]
	case lv.DOMAIN_CRASHED:
		return "the guest crashed"
	}
	return fmt.Sprintf("code %d", reason)
}

// logTail is the last n non-empty lines of a log, joined by " | "; "" if
// it cannot be read (the worker may not see libvirtd's file system).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// hugepagesOf reads the hugepage size a definition's memory is backed by,
// and how much of its memory each host cell holds where guest cells are
// bound to one (strict memnodes with a single host node).
func hugepagesOf(def *libvirtxml.Domain) (uint64, map[int]uint64) {
	mb := def.MemoryBacking
	if mb == nil || mb.MemoryHugePages == nil {
		return 0, nil
	}
	size := uint64(2048)
	if hs := mb.MemoryHugePages.Hugepages; len(hs) > 0 {
		size = kibOf(uint64(hs[0].Size), hs[0].Unit)
	}
	if def.NUMATune == nil || def.CPU == nil || def.CPU.Numa == nil {
		return size, nil
	}
	cellKiB := map[uint]uint64{}
	for _, c := range def.CPU.Numa.Cell {
		if c.ID != nil {
			cellKiB[*c.ID] = kibOf(uint64(c.Memory), c.Unit)
		}
	}
	cells := map[int]uint64{}
	for _, m := range def.NUMATune.MemNodes {
		nodes := parseCPUSet(m.Nodeset)
		if len(nodes) != 1 {
			return size, nil // spread over several: counted against the host
		}
		cells[nodes[0]] += cellKiB[m.CellID]
	}
	if len(cells) == 0 {
		return size, nil
	}
	return size, cells
}
