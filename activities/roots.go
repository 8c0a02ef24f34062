package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Default roots: where a host's worker reads base images from and creates
// pools under, unless it is configured otherwise.
var (
	DefaultImageRoots = []string{"/var/lib/libvirt/images", "/var/lib/hpcvm"}
	DefaultPoolRoots  = []string{"/var/lib/libvirt/images", "/var/lib/hpcvm"}
	// DefaultShareRoots are where directories shared into VMs may be.
	DefaultShareRoots = []string{"/srv", "/var/lib/hpcvm/shares"}
	// DefaultDiscoveryRoots are where service discovery records may be
	// written (dns_mode service_discovery).
	DefaultDiscoveryRoots = []string{"/etc/consul.d", "/var/lib/hpcvm/discovery"}
	// DefaultResolverRoots are where the host resolver's entries may be
	// written (host DNS integration): dnsmasq's drop-in directory.
	DefaultResolverRoots = []string{"/etc/dnsmasq.d"}
)

// PathsRequest names the host paths a start would use.
type PathsRequest struct {
	BaseImage string `json:"base_image,omitempty"` // "" when the base volume exists already
	PoolDir   string `json:"pool_dir"`
	// SharedDirs are the host directories VMs share (virtio_fs_mounts),
	// by where cluster.yaml names them.
	SharedDirs []SharedDir `json:"shared_dirs,omitempty"`
	// DiscoveryDir is where the cluster's service discovery record goes.
	DiscoveryDir string `json:"discovery_dir,omitempty"`
	// ResolverDir is where the host resolver's entry of the cluster goes.
	ResolverDir string `json:"resolver_dir,omitempty"`
}

// SharedDir is one host directory a VM shares, and where it is written.
type SharedDir struct {
	Field string `json:"field"` // "compute_nodes[0].virtio_fs_mounts[1].host_path"
	Path  string `json:"path"`
}

// Empty says there is nothing to check.
func (r PathsRequest) Empty() bool {
	return r.BaseImage == "" && r.PoolDir == "" && len(r.SharedDirs) == 0 && r.DiscoveryDir == "" && r.ResolverDir == ""
}

// CheckHostPaths refuses, before anything is created, a base image outside
// the worker's image roots and a pool directory outside its pool roots.
// Whoever can start workflows on this host's queue acts as root here; the
// roots bound what such a request can read or create.
func (a *Activities) CheckHostPaths(ctx context.Context, req PathsRequest) error {
	if req.BaseImage != "" {
		if err := within("cluster.storage.base_image", req.BaseImage, a.ImageRoots, "--image-root"); err != nil {
			return err
		}
	}
	if req.PoolDir != "" {
		if err := within("cluster.storage.pool_path", req.PoolDir, a.PoolRoots, "--pool-root"); err != nil {
			return err
		}
	}
	host, _ := os.Hostname()
	for _, d := range req.SharedDirs {
		if err := within(d.Field, d.Path, a.ShareRoots, "--share-root"); err != nil {
			return err
		}
	}
	dirs := req.SharedDirs
	for _, hd := range []struct {
		field, path, flag string
		roots             []string
	}{
		{"host_configuration.network.service_discovery.config_dir", req.DiscoveryDir, "--discovery-root", a.DiscoveryRoots},
		{"host_configuration.network.dnsmasq_config_path", req.ResolverDir, "--resolver-root", a.ResolverRoots},
	} {
		if hd.path == "" {
			continue
		}
		if err := within(hd.field, hd.path, hd.roots, hd.flag); err != nil {
			return err
		}
		dirs = append(dirs[:len(dirs):len(dirs)], SharedDir{Field: hd.field, Path: hd.path})
	}
	for _, d := range dirs {
		st, err := os.Stat(d.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return badInput(fmt.Sprintf("%s %q does not exist on host %s: create the directory (or fix the path) and run again", d.Field, d.Path, host), err)
		case err != nil:
			return badInput(fmt.Sprintf("%s %q cannot be read on host %s: %v", d.Field, d.Path, host, err), err)
		case !st.IsDir():
			return badInput(fmt.Sprintf("%s %q on host %s is not a directory", d.Field, d.Path, host), nil)
		}
	}
	return nil
}

// within checks that path, with every symbolic link in its existing part
// resolved, lies inside one of roots (resolved too).
func within(field, path string, roots []string, flag string) error {
	host, _ := os.Hostname()
	if len(roots) == 0 {
		return badInput(fmt.Sprintf("%s %q: the worker on host %s has no %s configured, so it uses no path at all", field, path, host, flag), nil)
	}
	real, err := resolveExisting(path)
	if err != nil {
		return badInput(fmt.Sprintf("%s %q on host %s: %v", field, path, host, err), err)
	}
	for _, r := range roots {
		rr, err := resolveExisting(r)
		if err != nil {
			continue
		}
		if real == rr || strings.HasPrefix(real, rr+string(filepath.Separator)) {
			return nil
		}
	}
	shown := path
	if real != filepath.Clean(path) {
		shown = fmt.Sprintf("%s (%s once links are followed)", path, real)
	}
	return badInput(fmt.Sprintf("%s %s is outside what the worker on host %s may use (%s %s): move it under one of those, or start that host's worker with %s for its directory",
		field, shown, host, flag, strings.Join(roots, ", "), flag), nil)
}

// resolveExisting resolves symbolic links in the longest existing prefix of
// path and appends the rest, so a path that does not exist yet (a pool's
// directory) is judged by where it would be created.
func resolveExisting(path string) (string, error) {
	p := filepath.Clean(path)
	var rest []string
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if _, lerr := os.Lstat(p); lerr == nil {
			// It exists as a link whose target does not: judging it by its
			// parent would let a link out of a root pass.
			return "", fmt.Errorf("%s is a symbolic link to a path that does not exist", p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Clean(path), nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}
