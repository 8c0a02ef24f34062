package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/libvirt"
)

// ProbeHost reads what this host's libvirt offers.
func (a *Activities) ProbeHost(ctx context.Context) (cluster.HostCapabilities, error) {
	var caps cluster.HostCapabilities
	err := a.heartbeating(ctx, func() error {
		f, err := a.Libvirt.HostFacts()
		if err != nil {
			return err
		}
		caps = cluster.HostCapabilities{
			Hostname: f.Hostname, Arch: f.Arch,
			LibvirtVersion: f.LibvirtVersion, HypervisorVersion: f.HypervisorVersion,
			KVMUsable: f.KVMUsable, Emulator: f.Emulator, MachineTypes: f.MachineTypes,
		}
		return nil
	})
	return caps, err
}

// InspectBaseImage checks that the base image exists on this host and reads
// its format and size, before anything is created.
func (a *Activities) InspectBaseImage(ctx context.Context, path string) (ImageInfo, error) {
	host, _ := os.Hostname()
	if err := within("cluster.storage.base_image", path, a.ImageRoots, "--image-root"); err != nil {
		return ImageInfo{}, err
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ImageInfo{}, badInput(fmt.Sprintf("cluster.storage.base_image %q does not exist on host %s: put the image there (or fix the path) and run again", path, host), err)
	case err != nil:
		return ImageInfo{}, badInput(fmt.Sprintf("cluster.storage.base_image %q cannot be read on host %s: %v", path, host, err), err)
	case !st.Mode().IsRegular():
		return ImageInfo{}, badInput(fmt.Sprintf("cluster.storage.base_image %q on host %s is not a regular file", path, host), nil)
	}
	format, virtual, size, err := libvirt.InspectImage(path)
	if err != nil {
		return ImageInfo{}, badInput(fmt.Sprintf("cluster.storage.base_image %q on host %s: %v", path, host, err), err)
	}
	return ImageInfo{Path: path, Format: format, VirtualSize: virtual, FileSize: size}, nil
}
