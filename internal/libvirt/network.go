package libvirt

import (
	"fmt"
	"net"
	"strings"
	"time"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// NetworkInfo describes an existing virtual network.
type NetworkInfo struct {
	Name   string
	UUID   string
	Bridge string
	Active bool
	// Address is the host side address with its prefix ("10.0.0.1/24"),
	// DHCPRange the first range ("10.0.0.10-10.0.0.254").
	Address   string
	DHCPRange string
	Hosts     []DHCPHost // static DHCP entries, as the persistent definition has them
	XML       string     // live definition
	// Forward is the network's forward mode ("nat", "route", ...), "none"
	// for a network without <forward> (isolated).
	Forward string
	// DNSForwarders are the network's <dns><forwarder>s, in order.
	DNSForwarders []DNSForwarder
}

// DNSForwarder is a <forwarder>: queries for Domain ("" for any) go to
// Addr ("" for: answered locally only).
type DNSForwarder struct {
	Domain string
	Addr   string
}

// DHCPHost is one static DHCP entry of a network.
type DHCPHost struct {
	MAC  string
	Name string
	IP   string
}

// EnsureNetwork makes the network described by xml exist, persistent,
// active and autostarted. An existing network of that name must carry the
// UUID of xml (the caller's mark of ownership) or ErrNotOwned is returned;
// it must match in bridge, forward mode, IP addresses, DHCP ranges and
// domain name, or ErrMismatch is returned; in both cases nothing is changed.
// Static DHCP hosts of an existing network are not compared: callers add
// theirs in place with EnsureDHCPHost.
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
			if err := provenNetwork(op, &have, want.UUID); err != nil {
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
		info.UUID = x.UUID
		info.Forward = "none"
		if x.Forward != nil {
			info.Forward = x.Forward.Mode
			if info.Forward == "" {
				info.Forward = "nat" // libvirt's default mode for <forward/>
			}
		}
		if x.Bridge != nil {
			info.Bridge = x.Bridge.Name
		}
		if x.DNS != nil {
			for _, f := range x.DNS.Forwarders {
				info.DNSForwarders = append(info.DNSForwarders, DNSForwarder{Domain: f.Domain, Addr: f.Addr})
			}
		}
		info.Address = ipSummary(x.IPs)
		if r := strings.SplitN(dhcpRanges(x.IPs), ",", 2); r[0] != "" {
			info.DHCPRange = r[0]
		}
		// The persistent definition is where hpcvm's added hosts live for
		// good; the live one may lag after a failed live update.
		inactive, err := net.GetXMLDesc(lv.NETWORK_XML_INACTIVE)
		if err != nil {
			return err
		}
		var def libvirtxml.Network
		if err := def.Unmarshal(inactive); err != nil {
			return err
		}
		info.Hosts = hostsOf(&def)
		return nil
	})
	return info, err
}

func hostsOf(n *libvirtxml.Network) []DHCPHost {
	var out []DHCPHost
	for _, ip := range n.IPs {
		if ip.DHCP == nil {
			continue
		}
		for _, h := range ip.DHCP.Hosts {
			out = append(out, DHCPHost{MAC: strings.ToLower(h.MAC), Name: h.Name, IP: h.IP})
		}
	}
	return out
}

// provenNetwork refuses a network that does not carry wantUUID: one made by
// hand (or by another tool) with the name the caller plans to use.
func provenNetwork(op string, have *libvirtxml.Network, wantUUID string) error {
	if wantUUID == "" || strings.EqualFold(have.UUID, wantUUID) {
		return nil
	}
	return newErr(ErrNotOwned, op, have.Name,
		"it was not created by hpcvm (its UUID %s is not the one hpcvm gives this cluster's network), so hpcvm neither changes nor deletes it; "+
			"remove it yourself if it is stale (virsh net-destroy %s; virsh net-undefine %s), or give the cluster another name", have.UUID, have.Name, have.Name)
}

// EnsureDHCPHost makes the network lease ip to mac under name, live (if the
// network runs) and in its persistent definition, without restarting it:
// an entry for mac with another name or address is modified, a missing one
// added. The network must carry wantUUID (ErrNotOwned otherwise).
func (c *Client) EnsureDHCPHost(network, wantUUID string, h DHCPHost) (changed bool, err error) {
	const op = "add DHCP host to network"
	entry, err := (&libvirtxml.NetworkDHCPHost{MAC: h.MAC, Name: h.Name, IP: h.IP}).Marshal()
	if err != nil {
		return false, invalidXML(op, network, err, "a DHCP host")
	}
	err = c.do(op, network, true, func(conn *lv.Connect) error {
		changed = false
		net, def, err := ownedNetwork(conn, op, network, wantUUID)
		if err != nil {
			return err
		}
		defer net.Free()
		cmd := lv.NETWORK_UPDATE_COMMAND_ADD_LAST
		for _, have := range hostsOf(def) {
			if have.MAC != strings.ToLower(h.MAC) {
				if have.Name == h.Name || have.IP == h.IP {
					return newErr(ErrMismatch, op, network, "its entry %s %s %s already uses the name or address planned for %s %s", have.MAC, have.Name, have.IP, h.Name, h.IP)
				}
				continue
			}
			if have.Name == h.Name && have.IP == h.IP {
				return nil
			}
			cmd = lv.NETWORK_UPDATE_COMMAND_MODIFY
		}
		flags := lv.NETWORK_UPDATE_AFFECT_CONFIG
		if active, err := net.IsActive(); err != nil {
			return err
		} else if active {
			flags |= lv.NETWORK_UPDATE_AFFECT_LIVE
		}
		if err := net.Update(cmd, lv.NETWORK_SECTION_IP_DHCP_HOST, -1, entry, flags); err != nil {
			return err
		}
		changed = true
		return nil
	})
	return changed, err
}

// DeleteDHCPHost removes the network's static entry for mac, live and
// persistent; an absent entry or network is success.
func (c *Client) DeleteDHCPHost(network, wantUUID, mac string) error {
	const op = "remove DHCP host from network"
	return c.do(op, network, true, func(conn *lv.Connect) error {
		net, def, err := ownedNetwork(conn, op, network, wantUUID)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer net.Free()
		for _, have := range hostsOf(def) {
			if have.MAC != strings.ToLower(mac) {
				continue
			}
			entry, err := (&libvirtxml.NetworkDHCPHost{MAC: have.MAC, Name: have.Name, IP: have.IP}).Marshal()
			if err != nil {
				return err
			}
			flags := lv.NETWORK_UPDATE_AFFECT_CONFIG
			if active, err := net.IsActive(); err != nil {
				return err
			} else if active {
				flags |= lv.NETWORK_UPDATE_AFFECT_LIVE
			}
			return net.Update(lv.NETWORK_UPDATE_COMMAND_DELETE, lv.NETWORK_SECTION_IP_DHCP_HOST, -1, entry, flags)
		}
		return nil
	})
}

// ownedNetwork looks the network up and proves it carries wantUUID; it
// returns its persistent definition. The caller frees the network.
func ownedNetwork(conn *lv.Connect, op, name, wantUUID string) (*lv.Network, *libvirtxml.Network, error) {
	if err := requireUUID(op, name, wantUUID); err != nil {
		return nil, nil, err
	}
	net, err := conn.LookupNetworkByName(name)
	if err != nil {
		return nil, nil, err
	}
	x, err := net.GetXMLDesc(lv.NETWORK_XML_INACTIVE)
	if err != nil {
		_ = net.Free()
		return nil, nil, err
	}
	var def libvirtxml.Network
	if err := def.Unmarshal(x); err != nil {
		_ = net.Free()
		return nil, nil, err
	}
	if err := provenNetwork(op, &def, wantUUID); err != nil {
		_ = net.Free()
		return nil, nil, err
	}
	return net, &def, nil
}

// DeleteNetwork stops and undefines the network. A missing network is not
// an error. A network that does not carry wantUUID (the caller's mark of
// ownership) is ErrNotOwned and is not touched.
func (c *Client) DeleteNetwork(name, wantUUID string) error {
	const op = "delete network"
	return c.do(op, name, true, func(conn *lv.Connect) error {
		net, _, err := ownedNetwork(conn, op, name, wantUUID)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer net.Free()
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

// DHCPLease is an address the network's DHCP server has handed out.
type DHCPLease struct {
	MAC      string
	IP       string
	Hostname string
	Expiry   time.Time
}

// NetworkDHCPLeases lists the leases the network's DHCP server holds now
// (addresses guests have taken, not the static hosts of its definition).
// An inactive network has none.
func (c *Client) NetworkDHCPLeases(name string) ([]DHCPLease, error) {
	var out []DHCPLease
	err := c.do("read DHCP leases of network", name, true, func(conn *lv.Connect) error {
		out = nil
		net, err := conn.LookupNetworkByName(name)
		if err != nil {
			return err
		}
		defer net.Free()
		if active, err := net.IsActive(); err != nil || !active {
			return err
		}
		leases, err := net.GetDHCPLeases()
		if err != nil {
			return err
		}
		for _, l := range leases {
			out = append(out, DHCPLease{MAC: strings.ToLower(l.Mac), IP: l.IPaddr, Hostname: l.Hostname, Expiry: l.ExpiryTime})
		}
		return nil
	})
	return out, err
}

// networkDefs are the definitions of every network listFlags lists (0:
// all, active or not), without one that went away meanwhile.
func (c *Client) networkDefs(listFlags lv.ConnectListAllNetworksFlags, xmlFlags lv.NetworkXMLFlags) ([]libvirtxml.Network, error) {
	var defs []libvirtxml.Network
	err := c.do("list networks", "", true, func(conn *lv.Connect) error {
		nets, err := conn.ListAllNetworks(listFlags)
		if err != nil {
			return err
		}
		defer func() {
			for i := range nets {
				_ = nets[i].Free()
			}
		}()
		defs = defs[:0] // a retried call starts over
		for i := range nets {
			xml, err := nets[i].GetXMLDesc(xmlFlags)
			if err != nil {
				if isNotFound(err) {
					continue // gone meanwhile
				}
				return err
			}
			var x libvirtxml.Network
			if err := x.Unmarshal(xml); err != nil {
				return err
			}
			defs = append(defs, x)
		}
		return nil
	})
	return defs, err
}

// ForwardingNetworks names the active networks that forward their guests'
// traffic off their bridge (nat, route, open): those that need the host's
// IP forwarding on.
func (c *Client) ForwardingNetworks() ([]string, error) {
	defs, err := c.networkDefs(lv.CONNECT_LIST_NETWORKS_ACTIVE, 0)
	var names []string
	for _, x := range defs {
		if x.Forward != nil {
			switch x.Forward.Mode {
			case "", "nat", "route", "open":
				names = append(names, x.Name)
			}
		}
	}
	return names, err
}

// NetworkAddresses are every network's addresses (active or not), as
// address/prefix, by network name, with its bridge: what a new network's
// range must not overlap.
type NetworkAddresses struct {
	Name    string
	Bridge  string
	Address string // "10.0.0.1/24,..." as ipSummary renders it
}

// AllNetworkAddresses lists NetworkAddresses of every network of the host.
func (c *Client) AllNetworkAddresses() ([]NetworkAddresses, error) {
	defs, err := c.networkDefs(0, lv.NETWORK_XML_INACTIVE)
	var out []NetworkAddresses
	for _, x := range defs {
		n := NetworkAddresses{Name: x.Name, Address: ipSummary(x.IPs)}
		if x.Bridge != nil {
			n.Bridge = x.Bridge.Name
		}
		out = append(out, n)
	}
	return out, err
}
