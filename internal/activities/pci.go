package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/templates"
	"go.temporal.io/api/serviceerror"
)

// ValidatePCI describes the requested PCI functions and the other functions
// of their IOMMU groups, and which domains of other clusters hold them. It
// reads libvirt's node devices; where libvirt cannot list them (no node
// device driver), and whenever the worker is pointed at another sysfs tree
// (tests), it reads sysfs.
func (a *Activities) ValidatePCI(ctx context.Context, req api.PCIRequest) (cluster.PCIFacts, error) {
	var facts cluster.PCIFacts
	err := a.heartbeating(ctx, func() error {
		var devs []libvirt.PCIDevice
		var err error
		if a.SysfsRoot == "" {
			devs, err = a.Libvirt.PCIDevices()
			facts.Source = "libvirt node devices"
		}
		if a.SysfsRoot != "" || err != nil {
			if err != nil && !libvirt.IsUnsupported(err) {
				return err
			}
			devs, err = sysfsPCIDevices(a.sysfs())
			if err != nil {
				return err
			}
			facts.Source = "sysfs at " + a.sysfs()
		}
		facts.IOMMU = iommuOn(a.sysfs(), devs)
		byAddr := map[string]libvirt.PCIDevice{}
		for _, d := range devs {
			byAddr[d.Address] = d
		}
		facts.Devices = map[string]cluster.HostPCIDevice{}
		add := func(addr string) {
			d, ok := byAddr[addr]
			if _, done := facts.Devices[addr]; !ok || done {
				return
			}
			facts.Devices[addr] = cluster.HostPCIDevice{Address: d.Address, Vendor: d.Vendor, Device: d.Device, Class: d.Class,
				Driver: d.Driver, IOMMUGroup: d.IOMMUGroup, GroupMembers: d.GroupMembers}
		}
		for _, addr := range req.Addresses {
			add(addr)
			for _, m := range byAddr[addr].GroupMembers {
				add(m)
			}
		}
		domains, err := a.Libvirt.ListDomains(templates.MetadataNamespace)
		if err != nil {
			return err
		}
		for _, d := range domains {
			if owner, err := templates.ParseOwner(d.Metadata); err == nil && owner.Cluster == req.Cluster {
				continue
			}
			if d.Unreadable {
				facts.Unreadable = append(facts.Unreadable, d.Name)
				continue
			}
			for _, addr := range d.PCIHostdevs {
				if dev, ok := facts.Devices[addr]; ok {
					dev.HeldBy = append(dev.HeldBy, d.Name)
					if d.State != libvirt.StateShutOff {
						dev.HeldByRunning = append(dev.HeldByRunning, d.Name)
					}
					facts.Devices[addr] = dev
				}
			}
		}
		return a.readClaims(ctx, req, &facts)
	})
	return facts, err
}

// readClaims marks the devices another cluster claims in the host's device
// ledger: whatever this cluster's exclusive_mode, it cannot have them.
func (a *Activities) readClaims(ctx context.Context, req api.PCIRequest, facts *cluster.PCIFacts) error {
	if a.Temporal == nil || req.Host == "" {
		return nil
	}
	v, err := a.Temporal.QueryWorkflow(ctx, api.LedgerWorkflowID(req.Host), "", api.LedgerQueryClaims)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil // no ledger: nothing claimed
	}
	if err != nil {
		return fmt.Errorf("read the device ledger of host %s: %w", req.Host, err)
	}
	var claims []api.DeviceClaim
	if err := v.Get(&claims); err != nil {
		return err
	}
	for _, c := range claims {
		if dev, ok := facts.Devices[c.Address]; ok && c.Cluster != req.Cluster {
			dev.ClaimedBy = fmt.Sprintf("cluster %s (VM %s) since %s", c.Cluster, c.VM, c.Since.UTC().Format(time.RFC3339))
			facts.Devices[c.Address] = dev
		}
	}
	return nil
}

// iommuOn: the kernel made IOMMU groups (sysfs), or libvirt placed a
// device in one.
func iommuOn(sysfs string, devs []libvirt.PCIDevice) bool {
	for _, d := range devs {
		if d.IOMMUGroup != nil {
			return true
		}
	}
	entries, err := os.ReadDir(filepath.Join(sysfs, "kernel", "iommu_groups"))
	return err == nil && len(entries) > 0
}

// sysfsPCIDevices reads the PCI functions under root/bus/pci/devices: each
// a directory (or link) named by its address, with vendor, device and
// class files, an iommu_group link to root/kernel/iommu_groups/N, and a
// driver link.
func sysfsPCIDevices(root string) ([]libvirt.PCIDevice, error) {
	dir := filepath.Join(root, "bus", "pci", "devices")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read PCI devices from %s: %w", dir, err)
	}
	var out []libvirt.PCIDevice
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(p, name))
			return strings.TrimPrefix(strings.TrimSpace(string(b)), "0x")
		}
		d := libvirt.PCIDevice{Address: e.Name(), Vendor: read("vendor"), Device: read("device"), Class: read("class")}
		if drv, err := os.Readlink(filepath.Join(p, "driver")); err == nil {
			d.Driver = filepath.Base(drv)
		}
		if g, err := os.Readlink(filepath.Join(p, "iommu_group")); err == nil {
			n, err := strconv.Atoi(filepath.Base(g))
			if err != nil {
				return nil, fmt.Errorf("%s: iommu_group points to %s, not a group number", p, g)
			}
			d.IOMMUGroup = &n
			members, _ := os.ReadDir(filepath.Join(root, "kernel", "iommu_groups", strconv.Itoa(n), "devices"))
			for _, m := range members {
				d.GroupMembers = append(d.GroupMembers, m.Name())
			}
			sort.Strings(d.GroupMembers)
		}
		out = append(out, d)
	}
	return out, nil
}
