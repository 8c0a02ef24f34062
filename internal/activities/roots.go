package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hpcvm/hpcvm/api"
)

// Default roots: where a host's worker reads base images from, creates
// pools under, and so on, unless it is configured otherwise. They do not
// overlap: a directory a guest can write into (a share) is never one base
// images are read from or pools are made in, and a base image is never
// read from a pool (another cluster's disk, or any libvirt VM's).
var (
	DefaultImageRoots = []string{"/var/lib/hpcvm/images"}
	// DefaultPoolRoots holds cluster.DefaultPoolPath, so a cluster.yaml
	// without pool_path runs.
	DefaultPoolRoots = []string{"/var/lib/libvirt/images", "/var/lib/hpcvm/pools"}
	// DefaultShareRoots are where directories shared into VMs may be.
	DefaultShareRoots = []string{"/srv", "/var/lib/hpcvm/shares"}
	// DefaultDiscoveryRoots are where service discovery records may be
	// written (dns_mode service_discovery).
	DefaultDiscoveryRoots = []string{"/etc/consul.d", "/var/lib/hpcvm/discovery"}
	// DefaultResolverRoots are where the host resolver's entries may be
	// written (host DNS integration): dnsmasq's drop-in directory.
	DefaultResolverRoots = []string{"/etc/dnsmasq.d"}
)

// CheckHostPaths refuses, before anything is created, a path outside the
// worker's roots for its kind, a path that is not clean or that has a
// symbolic link on the way (see checkUnder), a pool directory that exists
// already (hpcvm deletes a pool's directory with the pool, so it uses only
// one it creates), and a shared, discovery or resolver directory that does
// not exist. Whoever can start workflows on this host's queue acts as root
// here; the roots bound what such a request can read, share or create.
func (a *Activities) CheckHostPaths(ctx context.Context, req api.PathsRequest) error {
	if req.BaseImage != "" {
		if _, err := checkUnder("cluster.storage.base_image", req.BaseImage, a.ImageRoots, "--image-root"); err != nil {
			return err
		}
	}
	if req.PoolDir != "" {
		p, err := checkUnder("cluster.storage.pool_path", req.PoolDir, a.PoolRoots, "--pool-root")
		if err != nil {
			return err
		}
		if p.Exists {
			return badInput(existingPoolDir(p.Path), nil)
		}
	}
	for _, d := range req.SharedDirs {
		if _, err := checkDir(d.Field, d.Path, a.ShareRoots, "--share-root"); err != nil {
			return err
		}
	}
	if req.DiscoveryDir != "" {
		if _, err := checkDir(discoveryDirField, req.DiscoveryDir, a.DiscoveryRoots, "--discovery-root"); err != nil {
			return err
		}
	}
	if req.ResolverDir != "" {
		if _, err := checkDir(resolverDirField, req.ResolverDir, a.ResolverRoots, "--resolver-root"); err != nil {
			return err
		}
	}
	return nil
}

// The settings of cluster.yaml that name the discovery and resolver
// directories.
const (
	discoveryDirField = "host_configuration.network.service_discovery.config_dir"
	resolverDirField  = "host_configuration.network.dnsmasq_config_path"
)

// existingPoolDir refuses a pool directory hpcvm did not create.
func existingPoolDir(dir string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("cluster.storage.pool_path: the cluster's pool directory %s exists already on host %s and hpcvm did not create it; "+
		"destroy removes a pool's directory, so hpcvm uses only one it creates itself: remove it if it is an empty leftover (rmdir %s), or choose another pool_path",
		dir, host, dir)
}

// checkDir checks an existing directory under roots.
func checkDir(field, path string, roots []string, flag string) (rootedPath, error) {
	host, _ := os.Hostname()
	p, err := checkUnder(field, path, roots, flag)
	switch {
	case err != nil:
		return p, err
	case !p.Exists:
		return p, badInput(fmt.Sprintf("%s %q does not exist on host %s: create the directory (or fix the path) and run again", field, path, host), nil)
	case !p.Mode.IsDir():
		return p, badInput(fmt.Sprintf("%s %q on host %s is not a directory", field, path, host), nil)
	}
	return p, nil
}

// rootedPath is a host path found clean, inside a root, and with no
// symbolic link on the way at the time of the check.
type rootedPath struct {
	Path string // as given, which is also where it resolves
	Root string // the root it is in, resolved
	Rel  string // Path relative to Root ("." for the root itself)
	// Exists says Path exists; Mode is then its type and permissions.
	Exists bool
	Mode   fs.FileMode
}

// checkUnder checks a path that reaches the host, in this order, so that
// nothing outside the roots is ever looked at:
//
//  1. it is absolute and clean (filepath.Clean leaves it as it is);
//  2. it lies, as written, inside one of roots (each resolved once);
//     a path under a root spelled through a link is refused with the
//     resolved spelling;
//  3. walked from that root one component at a time (os.Root, which
//     never leaves it), no component is a symbolic link: a path whose
//     resolution differs from itself is refused, naming the path it
//     resolves to (or that it leads outside the roots).
//
// So the path checked is the path that goes into libvirt's XML and the
// path that is opened. A part that does not exist yet (a pool directory)
// ends the walk.
func checkUnder(field, path string, roots []string, flag string) (rootedPath, error) {
	host, _ := os.Hostname()
	res := rootedPath{Path: path}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		want := filepath.Clean(path)
		if !filepath.IsAbs(path) {
			return res, badInput(fmt.Sprintf("%s %q is not an absolute path: give a path starting with '/'", field, path), nil)
		}
		return res, badInput(fmt.Sprintf("%s %q is not a clean path ('.', '..', '//' or a trailing '/'): write it as %q, and if a symbolic link is on the way, as the path it leads to", field, path, want), nil)
	}
	if len(roots) == 0 {
		return res, badInput(fmt.Sprintf("%s %q: the worker on host %s has no %s configured, so it uses no path at all", field, path, host, flag), nil)
	}
	for _, r := range roots {
		named := filepath.Clean(r)
		real, err := filepath.EvalSymlinks(named)
		if err != nil {
			continue // a root that does not exist holds nothing
		}
		if rel, ok := under(real, path); ok {
			res.Root, res.Rel = real, rel
			break
		}
		if rel, ok := under(named, path); ok && real != named {
			return res, badInput(fmt.Sprintf("%s %s lies under %s, which is a symbolic link to %s; hpcvm uses a path only as it resolves: write %s instead",
				field, path, named, real, filepath.Join(real, rel)), nil)
		}
	}
	if res.Root == "" {
		return res, badInput(fmt.Sprintf("%s %s is outside what the worker on host %s may use (%s %s): move it under one of those, or start that host's worker with %s for its directory",
			field, path, host, flag, strings.Join(roots, ", "), flag), nil)
	}
	root, err := os.OpenRoot(res.Root)
	if err != nil {
		return res, badInput(fmt.Sprintf("%s %s on host %s: %v", field, path, host, err), err)
	}
	defer root.Close()
	parts := splitPath(res.Rel)
	if len(parts) == 0 {
		st, err := root.Lstat(".")
		if err != nil {
			return res, badInput(fmt.Sprintf("%s %s on host %s: %v", field, path, host, err), err)
		}
		res.Exists, res.Mode = true, st.Mode()
		return res, nil
	}
	for i := range parts {
		prefix := filepath.Join(parts[:i+1]...)
		st, err := root.Lstat(prefix)
		if errors.Is(err, fs.ErrNotExist) {
			return res, nil
		}
		if err != nil {
			return res, badInput(fmt.Sprintf("%s %s on host %s: %v", field, path, host, err), err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			link := filepath.Join(res.Root, prefix)
			target, _ := root.Readlink(prefix)
			leads, inside := resolveIn(root, res.Root, res.Rel)
			if inside {
				return res, badInput(fmt.Sprintf("%s %s: %s is a symbolic link (to %s); hpcvm uses a path only as it resolves: write %s instead",
					field, path, link, target, leads), nil)
			}
			return res, badInput(fmt.Sprintf("%s %s: %s is a symbolic link (to %s) and the path leads to %s, outside %s %s: share, read or create only what lies in a root, as it resolves",
				field, path, link, target, leads, flag, res.Root), nil)
		}
		if i == len(parts)-1 {
			res.Exists, res.Mode = true, st.Mode()
		}
	}
	return res, nil
}

// under says whether the clean absolute path lies in (or is) dir, and
// where relative to it; lexically, both being clean.
func under(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

func splitPath(rel string) []string {
	var parts []string
	for _, p := range strings.Split(rel, "/") {
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	return parts
}

// maxLinks is how many links resolveIn follows, as the kernel's ELOOP.
const maxLinks = 40

// resolveIn says where rel (in root, at rootPath) leads, following links
// as the kernel would but without looking at anything outside the root:
// at the first step out it stops and reports the lexical rest (inside
// false). Only messages use it; the decision is checkUnder's.
func resolveIn(root *os.Root, rootPath, rel string) (leads string, inside bool) {
	var done []string // resolved components: real directories in the root
	todo := splitPath(rel)
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			if len(done) == 0 {
				return filepath.Join(append([]string{filepath.Dir(rootPath)}, todo...)...), false
			}
			done = done[:len(done)-1]
			continue
		}
		cand := filepath.Join(append(append([]string{}, done...), c)...)
		st, err := root.Lstat(cand)
		if err != nil || st.Mode()&fs.ModeSymlink == 0 {
			// Not there (the rest is taken as written), or not a link.
			done = append(done, c)
			continue
		}
		target, err := root.Readlink(cand)
		if links++; err != nil || links > maxLinks {
			return filepath.Join(rootPath, cand), true
		}
		if filepath.IsAbs(target) {
			rel, ok := under(rootPath, filepath.Clean(target))
			if !ok || filepath.Clean(target) != target {
				return filepath.Join(append([]string{target}, todo...)...), false
			}
			done, todo = nil, append(splitPath(rel), todo...)
			continue
		}
		todo = append(splitPath(target), todo...)
	}
	return filepath.Join(append([]string{rootPath}, done...)...), true
}

// open opens the checked file for reading without following a link that
// appeared since the check: os.Root never leaves the root, O_NOFOLLOW
// refuses a link at the end, and the descriptor's own path
// (/proc/self/fd) must be the path checked, so a directory on the way
// swapped for a link inside the root is refused too.
func (p rootedPath) open() (*os.File, error) {
	root, err := os.OpenRoot(p.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(p.Rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		// ELOOP (a link at the end), or os.Root's refusal of a link that
		// leaves it: either way a link appeared after the check.
		return nil, fmt.Errorf("%s cannot be opened where it was checked (%v); a symbolic link that appears after the check is not followed", p.Path, err)
	}
	at, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || at != p.Path {
		_ = f.Close()
		return nil, fmt.Errorf("%s changed after it was checked (it opens as %s); a symbolic link is on the way now, and it is not followed", p.Path, at)
	}
	return f, nil
}

// afterPathCheck, if set (by tests), runs between a file's check and its
// opening: where a link can be swapped in.
var afterPathCheck func(path string)

// openChecked checks path under roots and opens it for reading (a regular
// file), as rootedPath.open does; a path that does not exist, or cannot be
// opened, is bad input naming field.
func openChecked(field, path string, roots []string, flag string) (*os.File, error) {
	host, _ := os.Hostname()
	p, err := checkUnder(field, path, roots, flag)
	if err != nil {
		return nil, err
	}
	if !p.Exists {
		return nil, badInput(fmt.Sprintf("%s %q does not exist on host %s: put the image there (or fix the path) and run again", field, path, host), nil)
	}
	if !p.Mode.IsRegular() {
		return nil, badInput(fmt.Sprintf("%s %q on host %s is not a regular file", field, path, host), nil)
	}
	if afterPathCheck != nil {
		afterPathCheck(p.Path)
	}
	f, err := p.open()
	if err != nil {
		return nil, badInput(fmt.Sprintf("%s %q cannot be read on host %s: %v", field, path, host, err), err)
	}
	return f, nil
}

// RootsOverlap says which roots of different kinds overlap (one is, or lies
// in, the other), judged resolved where they exist. A share root must
// overlap no other: a guest writes into what it shares, and could plant a
// base image, a pool's disk, a discovery record or a resolver entry there.
// Image and pool roots that overlap are returned apart: a base image could
// then be read from a pool (another cluster's disk).
func RootsOverlap(image, pool, share, discovery, resolver []string) (shared []string, imagePool []string) {
	// real resolves the longest existing part of r (the roots are the
	// admin's; following their links is what is meant).
	real := func(r string) string {
		p, rest := filepath.Clean(r), ""
		for {
			if rp, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Join(rp, rest)
			}
			if parent := filepath.Dir(p); parent != p {
				p, rest = parent, filepath.Join(filepath.Base(p), rest)
				continue
			}
			return filepath.Clean(r)
		}
	}
	overlap := func(a, b string) bool {
		ra, rb := real(a), real(b)
		_, in := under(ra, rb)
		_, out := under(rb, ra)
		return in || out
	}
	for _, s := range share {
		for _, o := range []struct {
			flag  string
			roots []string
		}{{"--image-root", image}, {"--pool-root", pool}, {"--discovery-root", discovery}, {"--resolver-root", resolver}} {
			for _, r := range o.roots {
				if overlap(s, r) {
					shared = append(shared, fmt.Sprintf("--share-root %s and %s %s", s, o.flag, r))
				}
			}
		}
	}
	for _, i := range image {
		for _, p := range pool {
			if overlap(i, p) {
				imagePool = append(imagePool, fmt.Sprintf("--image-root %s and --pool-root %s", i, p))
			}
		}
	}
	return shared, imagePool
}
