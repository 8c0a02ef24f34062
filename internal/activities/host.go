package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/qcow2"
)

// ProbeHost reads what this host's libvirt offers.
func (a *Activities) ProbeHost(ctx context.Context) (cluster.HostCapabilities, error) {
	var caps cluster.HostCapabilities
	err := a.heartbeating(ctx, func() error {
		f, err := a.hostFacts()
		if err != nil {
			return err
		}
		// What changes while the host runs is read afresh every time.
		if err := a.Libvirt.FillFreePages(f.NUMACells); err != nil {
			return err
		}
		caps = hostCapabilities(f)
		caps.KVMModules = kvmModules(a.sysfs())
		domains, err := a.Libvirt.ListDomains("")
		if err != nil {
			return err
		}
		for _, d := range domains {
			if len(d.VCPUPins) > 0 {
				if caps.PinnedCPUs == nil {
					caps.PinnedCPUs = map[string][]int{}
				}
				caps.PinnedCPUs[d.Name] = d.VCPUPins
			}
		}
		return nil
	})
	return caps, err
}

// ProbeRefresh is how long the worker keeps what libvirt says about the
// host's hardware (capabilities, domain capabilities, the expanded CPU):
// it changes only when QEMU, libvirt or the kernel does. Free hugepages
// and vCPU pins are read on every probe.
const ProbeRefresh = 5 * time.Minute

// hostFacts returns the host's hardware facts, read from libvirt at most
// every ProbeRefresh (a failed read keeps nothing). A copy is returned, so
// callers may fill in the free pages.
func (a *Activities) hostFacts() (libvirt.HostFacts, error) {
	a.probeMu.Lock()
	defer a.probeMu.Unlock()
	if a.probeFacts == nil || time.Since(a.probeAt) > ProbeRefresh {
		f, err := a.Libvirt.HostFacts()
		if err != nil {
			a.probeFacts = nil
			return libvirt.HostFacts{}, err
		}
		a.probeFacts, a.probeAt = &f, time.Now()
	}
	f := *a.probeFacts
	f.NUMACells = append([]libvirt.NUMACell(nil), f.NUMACells...)
	return f, nil
}

func hostCapabilities(f libvirt.HostFacts) cluster.HostCapabilities {
	caps := cluster.HostCapabilities{
		ProbeVersion: cluster.ProbeVersionHardware,
		Hostname:     f.Hostname, Arch: f.Arch,
		LibvirtVersion: f.LibvirtVersion, HypervisorVersion: f.HypervisorVersion,
		KVMUsable: f.KVMUsable, Emulator: f.Emulator, MachineTypes: f.MachineTypes,
		CPUs: f.CPUs, MemoryKiB: f.MemoryKiB,
		HostCPU:              cluster.HostCPU{Vendor: f.HostCPU.Vendor, Model: f.HostCPU.Model, Features: f.HostCPU.Features},
		GuestCPU:             map[string]cluster.GuestCPU{},
		MemoryBackingSources: f.MemoryBackingSources,
		HostdevSupported:     f.HostdevSupported,
		VirtioFSSupported:    f.VirtioFSSupported,
		IOMMU:                f.IOMMU,
	}
	for virtType, g := range f.GuestCPU {
		gc := cluster.GuestCPU{Modes: g.Modes, HostModelName: g.HostModelName,
			HostModelFeatures: g.HostModelFeatures, DisabledFeatures: g.DisabledFeatures}
		for _, m := range g.Models {
			gc.Models = append(gc.Models, cluster.CPUModel{Name: m.Name, Usable: m.Usable})
		}
		caps.GuestCPU[virtType] = gc
	}
	for _, c := range f.NUMACells {
		caps.NUMACells = append(caps.NUMACells, cluster.HostNUMACell{ID: c.ID, MemoryKiB: c.MemoryKiB, CPUs: c.CPUs, FreeHugepages: c.FreePages})
	}
	return caps
}

// kvmModules says which KVM modules the host has loaded and whether they
// allow nesting: libvirt reports whether a guest can get vmx/svm, not why.
func kvmModules(sysfs string) string {
	var parts []string
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		dir := filepath.Join(sysfs, "module", m)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		nested, err := os.ReadFile(filepath.Join(dir, "parameters", "nested"))
		if err != nil {
			parts = append(parts, m+" loaded, its nested parameter unreadable")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s nested=%s", m, strings.TrimSpace(string(nested))))
	}
	if len(parts) == 0 {
		others, _ := filepath.Glob(filepath.Join(sysfs, "module", "kvm_*"))
		names := []string{}
		for _, o := range others {
			names = append(names, filepath.Base(o))
		}
		if len(names) > 0 {
			return "neither kvm_intel nor kvm_amd is loaded (loaded: " + strings.Join(names, ", ") + ")"
		}
		return "neither kvm_intel nor kvm_amd is loaded"
	}
	return strings.Join(parts, ", ")
}

// InspectBaseImage checks that the base image exists on this host, under
// the worker's image roots, and that it is self-contained (no backing file,
// no external data file), and reads its format and size, before anything
// is created. Validate and start both ask it.
func (a *Activities) InspectBaseImage(ctx context.Context, path string) (api.ImageInfo, error) {
	f, err := openChecked(baseImageField, path, a.ImageRoots, "--image-root")
	if err != nil {
		return api.ImageInfo{}, err
	}
	defer f.Close()
	img, st, err := inspectImage(f, path)
	if err != nil {
		return api.ImageInfo{}, err
	}
	info := api.ImageInfo{Path: path, Format: img.Format, VirtualSize: img.VirtualSize, FileSize: st.Size(), Allocated: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		info.Allocated = sys.Blocks * 512
	}
	return info, nil
}

// baseImageField is the setting of cluster.yaml that names the base image.
const baseImageField = "cluster.storage.base_image"

// inspectImage reads the header of the open image f (named path in
// messages) and refuses one that is not self-contained: QEMU would open
// the file its header names, as root, wherever it is.
func inspectImage(f *os.File, path string) (qcow2.Image, os.FileInfo, error) {
	host, _ := os.Hostname()
	st, err := f.Stat()
	if err != nil {
		return qcow2.Image{}, nil, badInput(fmt.Sprintf("%s %q cannot be read on host %s: %v", baseImageField, path, host, err), err)
	}
	img, err := qcow2.Read(f, st.Size())
	if err == nil {
		err = img.SelfContained(path)
	}
	if err != nil {
		return img, st, badInput(fmt.Sprintf("%s %q on host %s: %v", baseImageField, path, host, err), err)
	}
	return img, st, nil
}

// PoolSpace measures the file system the pool directory is on, or would
// be created on (its nearest existing parent).
func (a *Activities) PoolSpace(ctx context.Context, dir string) (api.SpaceInfo, error) {
	p := filepath.Clean(dir)
	for {
		var fs syscall.Statfs_t
		err := syscall.Statfs(p, &fs)
		if err == nil {
			return api.SpaceInfo{Measured: p, Available: fs.Bavail * uint64(fs.Bsize), Total: fs.Blocks * uint64(fs.Bsize)}, nil
		}
		if !errors.Is(err, syscall.ENOENT) || p == "/" {
			return api.SpaceInfo{}, fmt.Errorf("measure free space at %s: %w", p, err)
		}
		p = filepath.Dir(p)
	}
}
