package templates

import (
	"github.com/hpcvm/hpcvm/cluster"
	"libvirt.org/go/libvirtxml"
)

// Network is the cluster's private network, with a static DHCP lease for
// every VM so each VM always gets its planned address. With forward "nat"
// (the default) libvirt's own NAT rules let the guests out through the
// host's addresses and let nothing in: other clusters' guests cannot reach
// them. With "none" there is no <forward>: the guests reach their bridge
// and nothing else (libvirt gives them no default route). The network's
// dnsmasq answers for the cluster's domain itself (localOnly) and forwards
// the rest as DNSForwarders says.
func Network(p cluster.Plan) (string, error) {
	n := p.Network
	hosts := make([]libvirtxml.NetworkDHCPHost, 0, len(n.Leases))
	for _, l := range n.Leases {
		hosts = append(hosts, libvirtxml.NetworkDHCPHost{MAC: l.MAC, Name: l.Name, IP: l.IP})
	}
	doc := libvirtxml.Network{
		Name:   n.Name,
		UUID:   n.UUID, // hpcvm's mark of ownership: see cluster.NetworkUUID
		Bridge: &libvirtxml.NetworkBridge{Name: n.Bridge, STP: "on", Delay: "0"},
		Domain: &libvirtxml.NetworkDomain{Name: n.DomainName, LocalOnly: "yes"},
		IPs: []libvirtxml.NetworkIP{{
			Address: n.Gateway,
			Prefix:  uint(n.PrefixLen),
			DHCP: &libvirtxml.NetworkDHCP{
				Ranges: []libvirtxml.NetworkDHCPRange{{Start: n.DHCPStart, End: n.DHCPEnd}},
				Hosts:  hosts,
			},
		}},
	}
	if n.ForwardMode() == cluster.ForwardNAT {
		doc.Forward = &libvirtxml.NetworkForward{Mode: "nat"}
	}
	if fw := n.DNSForwarders(); len(fw) > 0 {
		dns := &libvirtxml.NetworkDNS{}
		for _, f := range fw {
			dns.Forwarders = append(dns.Forwarders, libvirtxml.NetworkDNSForwarder{Domain: f.Domain, Addr: f.Addr})
		}
		doc.DNS = dns
	}
	return doc.Marshal()
}

// DHCPHost is the <host> element of a static lease, as a network update
// hands it to libvirt when a node joins or leaves a running network.
func DHCPHost(l cluster.HostLease) (string, error) {
	return (&libvirtxml.NetworkDHCPHost{MAC: l.MAC, Name: l.Name, IP: l.IP}).Marshal()
}
