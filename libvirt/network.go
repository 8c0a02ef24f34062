package libvirt

import (
	"fmt"
	"net"
	"strings"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// NetworkInfo describes an existing virtual network.
type NetworkInfo struct {
	Name   string
	Bridge string
	Active bool
	XML    string // live definition
}

// EnsureNetwork makes the network described by xml exist, persistent,
// active and autostarted. An existing network of that name must match in
// bridge, forward mode, IP addresses, DHCP ranges and static hosts and
// domain name, or ErrMismatch is returned and nothing is changed.
func (c *Client) EnsureNetwork(xml string) (created bool, err error) {
	var want libvirtxml.Network
	if err := want.Unmarshal(xml); err != nil || want.Name == "" {
		return false, invalidXML("define network", want.Name, err, "a <network> with a <name>")
	}
	const op = "define network"
	err = c.do(op, want.Name, true, func(conn *lv.Connect) error {
		created = false
		net, err := conn.LookupNetworkByName(want.Name)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err == nil {
			defer net.Free()
			haveXML, err := net.GetXMLDesc(lv.NETWORK_XML_INACTIVE)
			if err != nil {
				return err
			}
			var have libvirtxml.Network
			if err := have.Unmarshal(haveXML); err != nil {
				return err
			}
			if d := diffNetwork(&have, &want); d != nil {
				d.Op, d.Object = op, want.Name
				return d
			}
			if persistent, err := net.IsPersistent(); err != nil {
				return err
			} else if !persistent {
				// A transient network of ours (from an earlier run cut
				// short): give it a persistent definition.
				if _, err := conn.NetworkDefineXML(xml); err != nil {
					return err
				}
			}
		} else {
			net, err = conn.NetworkDefineXML(xml)
			if err != nil {
				return err
			}
			defer net.Free()
			created = true
		}
		active, err := net.IsActive()
		if err != nil {
			return err
		}
		if !active {
			if err := net.Create(); err != nil {
				return &Error{Op: "start network", Object: want.Name, Cause: err,
					Detail: libvirtMessage(err) + "; the bridge name or address range may clash with another network"}
			}
		}
		return net.SetAutostart(true)
	})
	return created, err
}

// LookupNetwork returns ErrNotFound if no network has that name.
func (c *Client) LookupNetwork(name string) (NetworkInfo, error) {
	var info NetworkInfo
	err := c.do("look up network", name, true, func(conn *lv.Connect) error {
		net, err := conn.LookupNetworkByName(name)
		if err != nil {
			return err
		}
		defer net.Free()
		info = NetworkInfo{Name: name}
		if info.Active, err = net.IsActive(); err != nil {
			return err
		}
		if info.XML, err = net.GetXMLDesc(0); err != nil {
			return err
		}
		var x libvirtxml.Network
		if err := x.Unmarshal(info.XML); err != nil {
			return err
		}
		if x.Bridge != nil {
			info.Bridge = x.Bridge.Name
		}
		return nil
	})
	return info, err
}

// DeleteNetwork stops and undefines the network. A missing network is not
// an error. wantBridge guards against deleting someone else's network of
// the same name: if the network's bridge differs, ErrNotOwned is returned
// and nothing is touched. An empty wantBridge skips that check.
func (c *Client) DeleteNetwork(name, wantBridge string) error {
	const op = "delete network"
	return c.do(op, name, true, func(conn *lv.Connect) error {
		net, err := conn.LookupNetworkByName(name)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer net.Free()
		haveXML, err := net.GetXMLDesc(0)
		if err != nil {
			return ignoreNotFound(err)
		}
		var have libvirtxml.Network
		if err := have.Unmarshal(haveXML); err != nil {
			return err
		}
		bridge := ""
		if have.Bridge != nil {
			bridge = have.Bridge.Name
		}
		if wantBridge != "" && bridge != wantBridge {
			return newErr(ErrNotOwned, op, name,
				"its bridge is %q, not %q; it was not created by this caller, so it is left alone (remove it by hand with virsh net-destroy/net-undefine if it is stale)",
				bridge, wantBridge)
		}
		persistent, err := net.IsPersistent()
		if err != nil {
			return ignoreNotFound(err)
		}
		if active, err := net.IsActive(); err != nil {
			return ignoreNotFound(err)
		} else if active {
			if err := net.Destroy(); err != nil && !isInvalidState(err) {
				return ignoreNotFound(err)
			}
		}
		if persistent {
			return ignoreNotFound(net.Undefine())
		}
		return nil
	})
}

func diffNetwork(have, want *libvirtxml.Network) *Error {
	if want.Bridge != nil && want.Bridge.Name != "" {
		hb := ""
		if have.Bridge != nil {
			hb = have.Bridge.Name
		}
		if hb != want.Bridge.Name {
			return mismatch("", "", "bridge", hb, want.Bridge.Name)
		}
	}
	if h, w := forwardMode(have.Forward), forwardMode(want.Forward); h != w {
		return mismatch("", "", "forward mode", h, w)
	}
	if h, w := domainName(have.Domain), domainName(want.Domain); h != w {
		return mismatch("", "", "domain name", h, w)
	}
	if h, w := ipSummary(have.IPs), ipSummary(want.IPs); h != w {
		return mismatch("", "", "IP addresses", h, w)
	}
	if h, w := dhcpRanges(have.IPs), dhcpRanges(want.IPs); h != w {
		return mismatch("", "", "DHCP ranges", h, w)
	}
	if h, w := dhcpHosts(have.IPs), dhcpHosts(want.IPs); h != w {
		return mismatch("", "", "DHCP static hosts", h, w)
	}
	return nil
}

// forwardMode: no <forward> is an isolated network; <forward/> means NAT.
func forwardMode(f *libvirtxml.NetworkForward) string {
	switch {
	case f == nil:
		return "none"
	case f.Mode == "":
		return "nat"
	}
	return f.Mode
}

func domainName(d *libvirtxml.NetworkDomain) string {
	if d == nil {
		return ""
	}
	return d.Name
}

// ipSummary renders addresses as address/prefix so that a netmask and the
// equivalent prefix compare equal.
func ipSummary(ips []libvirtxml.NetworkIP) string {
	var parts []string
	for _, ip := range ips {
		prefix := ip.Prefix
		if ip.Netmask != "" {
			if m := net.ParseIP(ip.Netmask).To4(); m != nil {
				ones, _ := net.IPMask(m).Size()
				prefix = uint(ones)
			}
		}
		parts = append(parts, fmt.Sprintf("%s/%d", ip.Address, prefix))
	}
	return strings.Join(parts, ",")
}

func dhcpRanges(ips []libvirtxml.NetworkIP) string {
	var parts []string
	for _, ip := range ips {
		if ip.DHCP == nil {
			continue
		}
		for _, r := range ip.DHCP.Ranges {
			parts = append(parts, r.Start+"-"+r.End)
		}
	}
	return strings.Join(parts, ",")
}

func dhcpHosts(ips []libvirtxml.NetworkIP) string {
	var parts []string
	for _, ip := range ips {
		if ip.DHCP == nil {
			continue
		}
		for _, h := range ip.DHCP.Hosts {
			parts = append(parts, strings.ToLower(h.MAC)+" "+h.Name+" "+h.IP)
		}
	}
	return strings.Join(parts, ",")
}

func invalidXML(op, object string, err error, want string) error {
	detail := "expected " + want
	if err != nil {
		detail = err.Error() + "; " + detail
	}
	return &Error{Kind: ErrInvalidXML, Op: op, Object: object, Detail: detail, Cause: err}
}

func ignoreNotFound(err error) error {
	if isNotFound(err) {
		return nil
	}
	return err
}

func isInvalidState(err error) bool {
	code, ok := libvirtCode(err)
	return ok && code == lv.ERR_OPERATION_INVALID
}
