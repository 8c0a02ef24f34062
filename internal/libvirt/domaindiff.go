package libvirt

import (
	"fmt"
	"sort"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// diffDomain says how an existing domain's persistent definition (have,
// as libvirt reads it back) differs from the one hpcvm would define now
// (want) in what cluster.yaml sets, naming the first difference; nil when
// they match. hpcvm never redefines an existing domain, so a difference
// there would be a change of the file silently dropped: start refuses it.
// What the template sets the same for every domain (the fixed fields) is
// templateDrift's. Every field templates.Domain renders is either in
// domainFields or named, with the reason, in the ignored list of
// TestDomainFieldsComparedOrIgnored.
func diffDomain(have, want *libvirtxml.Domain) *Error {
	for _, f := range domainFields {
		if f.fixed {
			continue
		}
		if name, h, w := f.compare(have, want); name != "" {
			return mismatch("", "", name, orNone(h), orNone(w))
		}
	}
	return nil
}

// templateDrift names the fixed fields in which an existing domain differs
// from what this hpcvm's template renders: it was changed by hand (virsh
// edit) or defined by another version of hpcvm. No cluster.yaml key sets
// them, so no change of the file is lost; refusing the domain would make
// an hpcvm upgrade, or an operator's deliberate edit, cost the VM its
// disk. Start keeps such a domain as it is and says so.
func templateDrift(have, want *libvirtxml.Domain) []string {
	var out []string
	for _, f := range domainFields {
		if !f.fixed {
			continue
		}
		if name, h, w := f.compare(have, want); name != "" {
			out = append(out, fmt.Sprintf("%s (the domain has %s; this hpcvm renders %s)", name, orNone(h), orNone(w)))
		}
	}
	return out
}

// compare returns the name of what differs and both sides, or "" when
// they match.
func (f domainField) compare(have, want *libvirtxml.Domain) (name, h, w string) {
	name = f.name
	if f.pair != nil {
		name, h, w = f.pair(have, want)
	} else {
		h, w = f.of(have), f.of(want)
	}
	if h == w || f.whenRendered && w == "" {
		return "", "", ""
	}
	return name, h, w
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// domainField is one part of a definition, compared in a normalised form:
// units converted, libvirt's defaults filled in, and what libvirt adds on
// its own (further controllers, addresses) left out.
type domainField struct {
	name string
	of   func(*libvirtxml.Domain) string
	// pair compares instead of of where one side decides what is asked
	// of the other; it returns the name of what differs.
	pair func(have, want *libvirtxml.Domain) (name, h, w string)
	// whenRendered: compared only when the desired definition sets it, as
	// hpcvm's always does; a definition that leaves it out leaves it to
	// libvirt's default.
	whenRendered bool
	// fixed: hpcvm's template sets it the same for every domain; no
	// cluster.yaml key changes it.
	fixed bool
}

// domainFields are compared in this order; the first difference is the
// one reported.
var domainFields = []domainField{
	// kvm or qemu (TCG): cluster.yaml's enable_kvm, or what the host
	// offers. A domain keeps the type it was defined with.
	{name: "domain type", whenRendered: true, of: func(d *libvirtxml.Domain) string { return d.Type }},
	{name: "memory", whenRendered: true, of: func(d *libvirtxml.Domain) string {
		if d.Memory == nil {
			return ""
		}
		return fmt.Sprintf("%d KiB", domainMemoryKiB(d))
	}},
	{name: "current memory", whenRendered: true, of: func(d *libvirtxml.Domain) string {
		if d.CurrentMemory == nil {
			return ""
		}
		return fmt.Sprintf("%d KiB", kiB(d.CurrentMemory.Value, d.CurrentMemory.Unit))
	}},
	{name: "vcpus", whenRendered: true, of: func(d *libvirtxml.Domain) string {
		if d.VCPU == nil {
			return ""
		}
		return fmt.Sprint(d.VCPU.Value)
	}},
	{name: "vCPU placement", fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.VCPU == nil || d.VCPU.Placement == "" {
			return "static" // libvirt's default
		}
		return d.VCPU.Placement
	}},
	{name: "disk sources", of: diskSources},
	{name: "interfaces", pair: diffInterfaces},
	{name: "disks", fixed: true, of: func(d *libvirtxml.Domain) string {
		return eachDisk(d, func(disk libvirtxml.DomainDisk) string {
			var parts []string
			if t := disk.Target; t != nil {
				parts = append(parts, t.Dev, "on "+t.Bus)
			}
			parts = append(parts, disk.Device)
			if dr := disk.Driver; dr != nil {
				parts = append(parts, "driver "+dr.Name+" "+dr.Type)
				if dr.Discard != "" {
					parts = append(parts, "discard "+dr.Discard)
				}
			}
			return strings.Join(parts, " ")
		})
	}},
	// The base image under each overlay (cluster.yaml's base_image), and
	// the empty <backingStore/> after it that keeps libvirt from probing
	// image headers for further files.
	{name: "disk backing chain", of: func(d *libvirtxml.Domain) string {
		return eachDisk(d, func(disk libvirtxml.DomainDisk) string {
			var parts []string
			for b := disk.BackingStore; b != nil; b = b.BackingStore {
				src := diskSource(b.Source)
				if src == "" && b.Format == nil {
					parts = append(parts, "end")
					break
				}
				format := "unknown format"
				if b.Format != nil {
					format = b.Format.Type
				}
				parts = append(parts, format+" "+src)
			}
			return strings.Join(parts, " then ")
		})
	}},
	{name: "CPU", pair: diffCPU},
	{name: "CPU features", of: func(d *libvirtxml.Domain) string {
		if d.CPU == nil {
			return ""
		}
		var parts []string
		for _, f := range d.CPU.Features {
			parts = append(parts, f.Policy+" "+f.Name)
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	}},
	{name: "CPU topology", of: func(d *libvirtxml.Domain) string {
		if d.CPU == nil || d.CPU.Topology == nil {
			return ""
		}
		t := d.CPU.Topology
		dies := t.Dies
		if dies == 0 {
			dies = 1 // libvirt's default
		}
		return fmt.Sprintf("%d sockets × %d dies × %d cores × %d threads", t.Sockets, dies, t.Cores, t.Threads)
	}},
	{name: "NUMA cells", of: func(d *libvirtxml.Domain) string {
		if d.CPU == nil || d.CPU.Numa == nil {
			return ""
		}
		var parts []string
		for _, c := range d.CPU.Numa.Cell {
			id := "?"
			if c.ID != nil {
				id = fmt.Sprint(*c.ID)
			}
			cell := fmt.Sprintf("cell %s cpus %s %d KiB", id, c.CPUs, kiB(c.Memory, c.Unit))
			if c.MemAccess != "" {
				cell += " " + c.MemAccess
			}
			parts = append(parts, cell)
		}
		return strings.Join(parts, "; ")
	}},
	{name: "NUMA memory binding", of: func(d *libvirtxml.Domain) string {
		if d.NUMATune == nil {
			return ""
		}
		var parts []string
		for _, n := range d.NUMATune.MemNodes {
			parts = append(parts, fmt.Sprintf("cell %d %s on host node %s", n.CellID, n.Mode, n.Nodeset))
		}
		return strings.Join(parts, "; ")
	}},
	{name: "memory backing", of: func(d *libvirtxml.Domain) string {
		b := d.MemoryBacking
		if b == nil {
			return ""
		}
		var parts []string
		if b.MemoryHugePages != nil {
			for _, p := range b.MemoryHugePages.Hugepages {
				parts = append(parts, fmt.Sprintf("hugepages of %d KiB", kiB(p.Size, p.Unit)))
			}
		}
		if b.MemorySource != nil {
			parts = append(parts, "source "+b.MemorySource.Type)
		}
		if b.MemoryAccess != nil {
			parts = append(parts, "access "+b.MemoryAccess.Mode)
		}
		return strings.Join(parts, ", ")
	}},
	{name: "vCPU pinning", of: func(d *libvirtxml.Domain) string {
		if d.CPUTune == nil {
			return ""
		}
		var parts []string
		for _, p := range d.CPUTune.VCPUPin {
			parts = append(parts, fmt.Sprintf("%d:%s", p.VCPU, p.CPUSet))
		}
		return strings.Join(parts, " ")
	}},
	{name: "PCI devices passed through", of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil {
			return ""
		}
		var parts []string
		for _, h := range d.Devices.Hostdevs {
			pci := h.SubsysPCI
			if pci == nil || pci.Source == nil || pci.Source.Address == nil {
				continue
			}
			a := pci.Source.Address
			s := pciAddressString(a.Domain, a.Bus, a.Slot, a.Function)
			if h.Address != nil && h.Address.PCI != nil {
				g := h.Address.PCI
				s += " at guest " + pciAddressString(g.Domain, g.Bus, g.Slot, g.Function)
			}
			if h.Managed == "yes" {
				s += " managed"
			}
			parts = append(parts, s)
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	}},
	// The root ports hpcvm gives passed-through devices; libvirt adds
	// further controllers of its own, which do not count.
	{name: "PCI controllers", fixed: true, pair: diffControllers},
	{name: "video", of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil {
			return ""
		}
		var parts []string
		for _, v := range d.Devices.Videos {
			parts = append(parts, "model "+v.Model.Type)
		}
		return strings.Join(parts, ", ")
	}},
	{name: "shared directories", of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil {
			return ""
		}
		var parts []string
		for _, f := range d.Devices.Filesystems {
			if f.Source == nil || f.Source.Mount == nil || f.Target == nil {
				continue
			}
			s := f.Target.Dir + "=" + f.Source.Mount.Dir
			if f.Driver != nil && f.Driver.Type != "" {
				s += " " + f.Driver.Type
			}
			if f.AccessMode != "" {
				s += " " + f.AccessMode
			}
			parts = append(parts, s)
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	}},
	// The table that tells the guest where and how to mount each share
	// (mount point, owner, group, mode, options from cluster.yaml).
	{name: "firmware config entries", of: func(d *libvirtxml.Domain) string {
		var parts []string
		for _, si := range d.SysInfo {
			if si.FWCfg == nil {
				continue
			}
			for _, e := range si.FWCfg.Entry {
				parts = append(parts, e.Name+"="+e.Value)
			}
		}
		return strings.Join(parts, "; ")
	}},
	{name: "OS", whenRendered: true, fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.OS == nil || d.OS.Type == nil {
			return ""
		}
		return d.OS.Type.Type + " " + d.OS.Type.Arch
	}},
	{name: "boot devices", whenRendered: true, fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.OS == nil {
			return ""
		}
		var parts []string
		for _, b := range d.OS.BootDevices {
			parts = append(parts, b.Dev)
		}
		return strings.Join(parts, " ")
	}},
	{name: "features", whenRendered: true, fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.Features == nil {
			return ""
		}
		var parts []string
		if d.Features.ACPI != nil {
			parts = append(parts, "acpi")
		}
		if d.Features.APIC != nil {
			parts = append(parts, "apic")
		}
		return strings.Join(parts, " ")
	}},
	{name: "clock", whenRendered: true, fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.Clock == nil {
			return ""
		}
		parts := []string{d.Clock.Offset}
		for _, t := range d.Clock.Timer {
			s := t.Name
			if t.TickPolicy != "" {
				s += " tickpolicy " + t.TickPolicy
			}
			if t.Present != "" {
				s += " present " + t.Present
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	}},
	// What libvirt does when the guest powers off, reboots or crashes.
	{name: "lifecycle actions", fixed: true, of: func(d *libvirtxml.Domain) string {
		return fmt.Sprintf("on_poweroff %s, on_reboot %s, on_crash %s",
			orDefault(d.OnPoweroff, "destroy"), orDefault(d.OnReboot, "restart"), orDefault(d.OnCrash, "destroy"))
	}},
	{name: "serial console", whenRendered: true, fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil {
			return ""
		}
		var parts []string
		for _, s := range d.Devices.Serials {
			port := "?"
			if s.Target != nil && s.Target.Port != nil {
				port = fmt.Sprint(*s.Target.Port)
			}
			parts = append(parts, "serial "+chardevKind(s.Source)+" port "+port)
		}
		for _, c := range d.Devices.Consoles {
			port, typ := "?", ""
			if c.Target != nil {
				typ = c.Target.Type
				if c.Target.Port != nil {
					port = fmt.Sprint(*c.Target.Port)
				}
			}
			parts = append(parts, "console "+chardevKind(c.Source)+" on "+typ+" port "+port)
		}
		return strings.Join(parts, ", ")
	}},
	// The QEMU guest agent's channel, which status asks for addresses.
	{name: "channels", fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil {
			return ""
		}
		var parts []string
		for _, c := range d.Devices.Channels {
			s := chardevKind(c.Source)
			if c.Target != nil && c.Target.VirtIO != nil {
				s += " virtio " + c.Target.VirtIO.Name
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	}},
	// libvirt adds a virtio balloon to a definition without one.
	{name: "memory balloon", whenRendered: true, fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil || d.Devices.MemBalloon == nil {
			return ""
		}
		return d.Devices.MemBalloon.Model
	}},
	{name: "random number generator", fixed: true, of: func(d *libvirtxml.Domain) string {
		if d.Devices == nil {
			return ""
		}
		var parts []string
		for _, r := range d.Devices.RNGs {
			s := r.Model
			if r.Backend != nil && r.Backend.Random != nil {
				s += " from " + r.Backend.Random.Device
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", ")
	}},
}

// diffControllers compares the controllers want renders (the PCIe root
// ports of passed-through devices, one per device from index 1, as their
// guest addresses say) with have's of the same type and index. libvirt
// adds controllers of its own (the PCIe root, further root ports for the
// virtio devices, USB, SATA, virtio-serial), which are not asked about.
func diffControllers(have, want *libvirtxml.Domain) (name, h, w string) {
	var hs, ws []string
	for _, c := range controllersOf(want) {
		ws = append(ws, describeController(c))
		found := "no " + c.Type + " controller " + indexOf(c)
		for _, hc := range controllersOf(have) {
			if hc.Type == c.Type && indexOf(hc) == indexOf(c) {
				found = describeController(hc)
			}
		}
		hs = append(hs, found)
	}
	return "PCI controllers", strings.Join(hs, ", "), strings.Join(ws, ", ")
}

func controllersOf(d *libvirtxml.Domain) []libvirtxml.DomainController {
	if d.Devices == nil {
		return nil
	}
	return d.Devices.Controllers
}

func indexOf(c libvirtxml.DomainController) string {
	if c.Index == nil {
		return "?"
	}
	return fmt.Sprint(*c.Index)
}

func describeController(c libvirtxml.DomainController) string {
	return c.Type + " controller " + indexOf(c) + " " + c.Model
}

// diffInterfaces compares the NICs in order: how many, and each one's MAC,
// network and model.
func diffInterfaces(have, want *libvirtxml.Domain) (name, h, w string) {
	hi, wi := interfaces(have), interfaces(want)
	if len(hi) != len(wi) {
		return "interface count", fmt.Sprint(len(hi)), fmt.Sprint(len(wi))
	}
	for i := range wi {
		for _, f := range []struct{ name, h, w string }{
			{"MAC", hi[i].mac, wi[i].mac}, {"network", hi[i].network, wi[i].network}, {"model", hi[i].model, wi[i].model},
		} {
			if f.h != f.w {
				return fmt.Sprintf("interface %d %s", i+1, f.name), f.h, f.w
			}
		}
	}
	return "interfaces", "", ""
}

// diffCPU compares the CPU mode and model with how libvirt is to match
// and check them. A definition without a CPU mode leaves the CPU to the
// hypervisor, and libvirt writes that down as QEMU's default model
// (custom qemu64, check none, fallback forbid): that counts as no mode.
func diffCPU(have, want *libvirtxml.Domain) (name, h, w string) {
	h, w = cpuMode(have), cpuMode(want)
	if w == "" && hypervisorDefaultCPU(have.CPU) {
		h = ""
	}
	return "CPU", h, w
}

func cpuMode(d *libvirtxml.Domain) string {
	c := d.CPU
	if c == nil || c.Mode == "" || c.Mode == "custom" && c.Model == nil {
		return "" // the hypervisor's default CPU
	}
	s := c.Mode
	if c.Model != nil {
		s += " " + c.Model.Value
		if c.Model.Fallback != "" {
			s += ", fallback " + c.Model.Fallback
		}
	}
	if c.Match != "" {
		s += ", match " + c.Match
	}
	check := c.Check
	if check == "" {
		// What libvirt writes for an unset check.
		check = map[string]string{"custom": "partial", "host-model": "partial", "host-passthrough": "none", "maximum": "none"}[c.Mode]
	}
	if check != "" {
		s += ", check " + check
	}
	return s
}

func hypervisorDefaultCPU(c *libvirtxml.DomainCPU) bool {
	return c != nil && c.Mode == "custom" && c.Check == "none" && c.Model != nil &&
		orDefault(c.Model.Fallback, "allow") == "forbid" && len(c.Features) == 0
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// kiB converts a size in libvirt's units (KiB when none is given) to KiB;
// 0 for a unit libvirt does not know.
func kiB(value uint, unit string) uint64 {
	m, err := unitMultiplier(orDefault(unit, "KiB"))
	if err != nil {
		return 0
	}
	return uint64(value) * m / 1024
}

func domainMemoryKiB(d *libvirtxml.Domain) uint64 {
	if d.Memory == nil {
		return 0
	}
	return kiB(d.Memory.Value, d.Memory.Unit)
}

// chardevKind names how a character device is backed (pty, unix, ...).
func chardevKind(s *libvirtxml.DomainChardevSource) string {
	switch {
	case s == nil:
		return "none"
	case s.Pty != nil:
		return "pty"
	case s.UNIX != nil:
		return "unix"
	case s.File != nil:
		return "file"
	}
	return "other"
}

func eachDisk(d *libvirtxml.Domain, describe func(libvirtxml.DomainDisk) string) string {
	if d.Devices == nil {
		return ""
	}
	var parts []string
	for _, disk := range d.Devices.Disks {
		parts = append(parts, describe(disk))
	}
	return strings.Join(parts, "; ")
}

func diskSource(s *libvirtxml.DomainDiskSource) string {
	switch {
	case s == nil:
		return ""
	case s.File != nil:
		return s.File.File
	case s.Block != nil:
		return s.Block.Dev
	case s.Volume != nil:
		return s.Volume.Pool + "/" + s.Volume.Volume
	}
	return ""
}

func diskSources(d *libvirtxml.Domain) string {
	return eachDisk(d, func(disk libvirtxml.DomainDisk) string { return diskSource(disk.Source) })
}

type ifaceKey struct{ mac, network, model string }

func interfaces(d *libvirtxml.Domain) []ifaceKey {
	if d.Devices == nil {
		return nil
	}
	var out []ifaceKey
	for _, i := range d.Devices.Interfaces {
		var k ifaceKey
		if i.MAC != nil {
			k.mac = strings.ToLower(i.MAC.Address)
		}
		if i.Source != nil && i.Source.Network != nil {
			k.network = i.Source.Network.Network
		}
		if i.Model != nil {
			k.model = i.Model.Type
		}
		out = append(out, k)
	}
	return out
}
