package libvirt

import (
	"fmt"
	"sort"
	"strings"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// PCIDevice is one host PCI function as the host describes it.
type PCIDevice struct {
	Address string // "0000:01:00.0"
	Vendor  string // "10de"
	Device  string // "2805"
	Class   string // "030000"
	Driver  string // bound driver, "" if none
	// IOMMUGroup is the function's IOMMU group, nil when the host has no
	// IOMMU (or it is off); GroupMembers are every function of that group,
	// this one included.
	IOMMUGroup   *int
	GroupMembers []string
}

// PCIDevices lists the host's PCI functions from libvirt's node devices.
func (c *Client) PCIDevices() ([]PCIDevice, error) {
	var out []PCIDevice
	err := c.do("list PCI node devices of", c.uri, true, func(conn *lv.Connect) error {
		out = nil
		devs, err := conn.ListAllNodeDevices(lv.CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
		if err != nil {
			return err
		}
		defer func() {
			for i := range devs {
				_ = devs[i].Free()
			}
		}()
		for i := range devs {
			x, err := devs[i].GetXMLDesc(0)
			if isNotFound(err) {
				continue // unplugged meanwhile
			}
			if err != nil {
				return err
			}
			var nd libvirtxml.NodeDevice
			if err := nd.Unmarshal(x); err != nil {
				return &Error{Kind: ErrInvalidXML, Op: "parse node device of", Object: c.uri, Detail: err.Error(), Cause: err}
			}
			pci := nd.Capability.PCI
			if pci == nil {
				continue
			}
			d := PCIDevice{
				Address: pciAddressString(pci.Domain, pci.Bus, pci.Slot, pci.Function),
				Vendor:  strings.TrimPrefix(pci.Vendor.ID, "0x"),
				Device:  strings.TrimPrefix(pci.Product.ID, "0x"),
				Class:   strings.TrimPrefix(pci.Class, "0x"),
			}
			if nd.Driver != nil {
				d.Driver = nd.Driver.Name
			}
			if g := pci.IOMMUGroup; g != nil {
				n := g.Number
				d.IOMMUGroup = &n
				for _, a := range g.Address {
					d.GroupMembers = append(d.GroupMembers, pciAddressString(a.Domain, a.Bus, a.Slot, a.Function))
				}
				sort.Strings(d.GroupMembers)
			}
			out = append(out, d)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, err
}

func pciAddressString(domain, bus, slot, function *uint) string {
	v := func(p *uint) uint {
		if p == nil {
			return 0
		}
		return *p
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", v(domain), v(bus), v(slot), v(function))
}
