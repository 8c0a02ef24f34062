// Package pcifixture writes sysfs trees of PCI functions and IOMMU groups
// for tests: the machines hpcvm is built on have no IOMMU and no GPUs, so
// these trees are the only way to exercise passthrough checks. The layout
// is a real GPU host's: a GPU and its HDMI audio function share an IOMMU
// group with the PCIe root port above them.
package pcifixture

import (
	"fmt"
	"os"
	"path/filepath"
)

// Function is one PCI function of a fixture.
type Function struct {
	Address string // "0000:01:00.0"
	Vendor  string // "10de"
	Device  string // "2805"
	Class   string // "030000"
	Driver  string // "" for none
	Group   int    // IOMMU group; -1 for none
}

// GPUHost is a host with an NVIDIA GPU (10de:2805) and its audio function
// (10de:22bd) behind a root port, all in IOMMU group 7; a second GPU alone
// in group 9 (its audio function disabled); and a NIC alone in group 8.
var GPUHost = []Function{
	{Address: "0000:00:01.0", Vendor: "8086", Device: "a70d", Class: "060400", Driver: "pcieport", Group: 7},
	{Address: "0000:01:00.0", Vendor: "10de", Device: "2805", Class: "030000", Driver: "nvidia", Group: 7},
	{Address: "0000:01:00.1", Vendor: "10de", Device: "22bd", Class: "040300", Driver: "snd_hda_intel", Group: 7},
	{Address: "0000:02:00.0", Vendor: "8086", Device: "1533", Class: "020000", Driver: "igb", Group: 8},
	{Address: "0000:03:00.0", Vendor: "10de", Device: "2684", Class: "030000", Driver: "vfio-pci", Group: 9},
}

// Write lays functions out under root as sysfs does: root/bus/pci/devices/
// ADDR/{vendor,device,class,driver,iommu_group} and root/kernel/
// iommu_groups/N/devices/ADDR. With iommu false no group exists (the IOMMU
// is off).
func Write(root string, functions []Function, iommu bool) error {
	devices := filepath.Join(root, "bus", "pci", "devices")
	if err := os.MkdirAll(devices, 0o755); err != nil {
		return err
	}
	if iommu {
		if err := os.MkdirAll(filepath.Join(root, "kernel", "iommu_groups"), 0o755); err != nil {
			return err
		}
	}
	for _, f := range functions {
		dir := filepath.Join(root, "devices", "pci0000:00", f.Address)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for name, v := range map[string]string{"vendor": "0x" + f.Vendor, "device": "0x" + f.Device, "class": "0x" + f.Class} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
				return err
			}
		}
		if f.Driver != "" {
			drv := filepath.Join(root, "bus", "pci", "drivers", f.Driver)
			if err := os.MkdirAll(drv, 0o755); err != nil {
				return err
			}
			if err := os.Symlink(drv, filepath.Join(dir, "driver")); err != nil {
				return err
			}
		}
		if iommu && f.Group >= 0 {
			group := filepath.Join(root, "kernel", "iommu_groups", fmt.Sprint(f.Group))
			if err := os.MkdirAll(filepath.Join(group, "devices"), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(dir, filepath.Join(group, "devices", f.Address)); err != nil {
				return err
			}
			if err := os.Symlink(group, filepath.Join(dir, "iommu_group")); err != nil {
				return err
			}
		}
		if err := os.Symlink(dir, filepath.Join(devices, f.Address)); err != nil {
			return err
		}
	}
	return nil
}
