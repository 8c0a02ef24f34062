package libvirt

import (
	"fmt"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// HostFacts is what the hypervisor host offers, as libvirtd sees it.
type HostFacts struct {
	Hostname          string
	Arch              string // host CPU architecture, e.g. "x86_64"
	LibvirtVersion    string // of the daemon, e.g. "9.0.0"
	HypervisorVersion string // QEMU's, e.g. "7.2.22"
	// KVMUsable: libvirt offers the "kvm" domain type for x86_64, which it
	// does only when its QEMU can open /dev/kvm, and it can describe a kvm
	// guest (domain capabilities). Otherwise guests run under TCG.
	KVMUsable    bool
	Emulator     string   // the x86_64 emulator binary
	MachineTypes []string // every x86_64 machine name, aliases included
}

const guestArch = "x86_64"

// HostFacts reads the host's capabilities from libvirtd.
func (c *Client) HostFacts() (HostFacts, error) {
	var f HostFacts
	err := c.do("read capabilities of", c.uri, true, func(conn *lv.Connect) error {
		f = HostFacts{}
		var err error
		if f.Hostname, err = conn.GetHostname(); err != nil {
			return err
		}
		libVer, err := conn.GetLibVersion()
		if err != nil {
			return err
		}
		f.LibvirtVersion = versionString(libVer)
		hvVer, err := conn.GetVersion()
		if err != nil {
			return err
		}
		f.HypervisorVersion = versionString(hvVer)
		capsXML, err := conn.GetCapabilities()
		if err != nil {
			return err
		}
		var caps libvirtxml.Caps
		if err := caps.Unmarshal(capsXML); err != nil {
			return &Error{Kind: ErrInvalidXML, Op: "parse capabilities of", Object: c.uri, Detail: err.Error(), Cause: err}
		}
		if caps.Host.CPU != nil {
			f.Arch = caps.Host.CPU.Arch
		}
		seen := map[string]bool{}
		addMachines := func(ms []libvirtxml.CapsGuestMachine) {
			for _, m := range ms {
				for _, n := range []string{m.Name, m.Canonical} {
					if n != "" && !seen[n] {
						seen[n] = true
						f.MachineTypes = append(f.MachineTypes, n)
					}
				}
			}
		}
		kvmOffered := false
		for _, g := range caps.Guests {
			if g.Arch.Name != guestArch || g.OSType != "hvm" {
				continue
			}
			f.Emulator = g.Arch.Emulator
			addMachines(g.Arch.Machines)
			for _, d := range g.Arch.Domains {
				addMachines(d.Machines)
				if d.Type == "kvm" {
					kvmOffered = true
				}
			}
		}
		if f.Emulator == "" {
			return &Error{Op: "read capabilities of", Object: c.uri,
				Detail: "libvirtd offers no x86_64 hvm guests; install qemu-system-x86 on the host and restart libvirtd"}
		}
		if kvmOffered {
			// Confirms the daemon can actually build a kvm guest, not just
			// that it saw /dev/kvm when it probed QEMU.
			_, derr := conn.GetDomainCapabilities(f.Emulator, guestArch, "", "kvm", 0)
			if derr != nil && isConnLoss(derr, conn) {
				return derr
			}
			f.KVMUsable = derr == nil
		}
		return nil
	})
	return f, err
}

// versionString renders libvirt's major*1e6+minor*1e3+micro encoding.
func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}
