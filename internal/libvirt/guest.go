package libvirt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// QEMURunDir is where libvirt's QEMU driver keeps the pid file of each
// running domain; the file is written when the domain's QEMU starts.
var QEMURunDir = "/run/libvirt/qemu"

// domainStartedAt is when the running domain's QEMU process started (its
// pid file's time), or zero when that cannot be seen: libvirtd is not the
// local system one (a remote or session URI: its files are not these).
func (c *Client) domainStartedAt(name string) time.Time {
	if c.uri != "qemu:///system" && c.uri != "" {
		return time.Time{}
	}
	fi, err := os.Stat(filepath.Join(QEMURunDir, name+".pid"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// leaseClockSlack allows for the guest's DHCP exchange being stamped a
// little before the pid file's time on a host whose clock stepped.
const leaseClockSlack = 2 * time.Second

// GuestAnswers says whether the guest of a running domain is far enough
// into its boot to act on the ACPI power button, and how that shows: its
// QEMU guest agent is connected, or its network gave one of its
// interfaces a DHCP lease after bootedAt (a lease from before lingers in
// the table until it runs out, and proves nothing). "" means not yet.
// A guest with neither an agent nor DHCP never answers here: the caller
// gives it a grace period instead.
func (c *Client) GuestAnswers(name string, bootedAt time.Time) (string, error) {
	var def libvirtxml.Domain
	err := c.withDomain("read live definition of domain", name, func(dom *lv.Domain) error {
		x, err := dom.GetXMLDesc(0)
		if err != nil {
			return err
		}
		return def.Unmarshal(x)
	})
	if err != nil {
		return "", err
	}
	if def.Devices == nil {
		return "", nil
	}
	if agentConnected(&def) {
		return "its guest agent is connected", nil
	}
	leasesOf := map[string][]DHCPLease{}
	for _, i := range interfaces(&def) {
		if i.network == "" || i.mac == "" {
			continue
		}
		leases, seen := leasesOf[i.network]
		if !seen {
			if leases, err = c.NetworkDHCPLeases(i.network); err != nil {
				return "", err
			}
			leasesOf[i.network] = leases
		}
		for _, l := range leases {
			if l.MAC == i.mac && leaseSince(l, bootedAt) {
				return fmt.Sprintf("it took its DHCP lease %s", strings.TrimSpace(l.IP)), nil
			}
		}
	}
	return "", nil
}

// leaseSince says the lease was taken (or renewed) after bootedAt.
func leaseSince(l DHCPLease, bootedAt time.Time) bool {
	return api.LeaseTakenSince(l.Expiry, bootedAt, leaseClockSlack)
}

// agentConnected says libvirt marks the QEMU guest agent's channel of a
// live definition connected: an agent answers in the guest.
func agentConnected(def *libvirtxml.Domain) bool {
	if def.Devices == nil {
		return false
	}
	for _, ch := range def.Devices.Channels {
		if t := ch.Target; t != nil && t.VirtIO != nil && t.VirtIO.Name == guestAgentChannel && t.VirtIO.State == "connected" {
			return true
		}
	}
	return false
}
