package libvirt

import (
	"os"
	"path/filepath"
	"strings"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// PoolInfo describes an existing storage pool. Sizes are in bytes and are
// zero while the pool is inactive.
type PoolInfo struct {
	Name       string
	Path       string
	Active     bool
	Capacity   uint64
	Allocation uint64
	Available  uint64
}

// EnsurePool makes the storage pool described by xml exist, built (its
// directory created), active and autostarted. An existing pool of that name
// must have the same type and target path, or ErrMismatch is returned.
func (c *Client) EnsurePool(xml string) (created bool, err error) {
	var want libvirtxml.StoragePool
	if err := want.Unmarshal(xml); err != nil || want.Name == "" {
		return false, invalidXML("define pool", want.Name, err, "a <pool> with a <name>")
	}
	const op = "define pool"
	err = c.do(op, want.Name, true, func(conn *lv.Connect) error {
		created = false
		pool, err := conn.LookupStoragePoolByName(want.Name)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err == nil {
			defer pool.Free()
			have, err := poolDef(pool, lv.STORAGE_XML_INACTIVE)
			if err != nil {
				return err
			}
			if have.Type != want.Type {
				return mismatch(op, want.Name, "type", have.Type, want.Type)
			}
			if h, w := poolPath(have), poolPath(&want); h != w {
				return mismatch(op, want.Name, "target path", h, w)
			}
		} else {
			// A dir pool's volumes are simply the files in its directory,
			// and deleting the pool later deletes them: never adopt a
			// directory that already holds files.
			if err := checkEmptyDir(op, want.Name, poolPath(&want)); err != nil {
				return err
			}
			pool, err = conn.StoragePoolDefineXML(xml, 0)
			if err != nil {
				return err
			}
			defer pool.Free()
			created = true
		}
		active, err := pool.IsActive()
		if err != nil {
			return err
		}
		if !active {
			// Build creates the target directory; a directory that already
			// exists is fine (flag 0 neither overwrites nor insists on new).
			if err := pool.Build(0); err != nil {
				code, _ := libvirtCode(err)
				if code != lv.ERR_STORAGE_POOL_BUILT {
					return &Error{Op: "build pool", Object: want.Name, Cause: err,
						Detail: libvirtMessage(err) + "; check that the parent of " + poolPath(&want) + " exists and is writable by libvirtd"}
				}
			}
			if err := pool.Create(0); err != nil {
				return &Error{Op: "start pool", Object: want.Name, Cause: err, Detail: libvirtMessage(err)}
			}
		}
		return pool.SetAutostart(true)
	})
	return created, err
}

// LookupPool returns ErrNotFound if no pool has that name.
func (c *Client) LookupPool(name string) (PoolInfo, error) {
	var info PoolInfo
	err := c.do("look up pool", name, true, func(conn *lv.Connect) error {
		pool, err := conn.LookupStoragePoolByName(name)
		if err != nil {
			return err
		}
		defer pool.Free()
		def, err := poolDef(pool, 0)
		if err != nil {
			return err
		}
		info = PoolInfo{Name: name, Path: poolPath(def)}
		if info.Active, err = pool.IsActive(); err != nil {
			return err
		}
		pi, err := pool.GetInfo()
		if err != nil {
			return err
		}
		info.Capacity, info.Allocation, info.Available = pi.Capacity, pi.Allocation, pi.Available
		return nil
	})
	return info, err
}

// DeletePool removes the pool, every volume in it and its (then empty)
// directory. A missing pool is not an error. If the pool's path is not
// wantPath, ErrNotOwned is returned and nothing is touched; an empty
// wantPath skips that check.
func (c *Client) DeletePool(name, wantPath string) error {
	const op = "delete pool"
	return c.do(op, name, true, func(conn *lv.Connect) error {
		pool, err := conn.LookupStoragePoolByName(name)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer pool.Free()
		def, err := poolDef(pool, lv.STORAGE_XML_INACTIVE)
		if err != nil {
			return ignoreNotFound(err)
		}
		if have := poolPath(def); wantPath != "" && have != filepath.Clean(wantPath) {
			return newErr(ErrNotOwned, op, name,
				"its path is %q, not %q; it was not created by this caller, so it is left alone (remove it by hand with virsh pool-destroy/pool-undefine if it is stale)",
				have, wantPath)
		}
		// Volumes can only be listed, and the directory only removed, while
		// the pool is active.
		active, err := pool.IsActive()
		if err != nil {
			return ignoreNotFound(err)
		}
		if !active {
			if err := pool.Create(0); err != nil {
				return ignoreNotFound(err)
			}
		}
		// Only an empty pool is deleted: its volumes are deleted one by
		// one, by name, by whoever created them. Anything left is not ours
		// to remove, so the pool stays and says what it still holds.
		_ = pool.Refresh(0)
		names, err := pool.ListStorageVolumes()
		if err != nil {
			return ignoreNotFound(err)
		}
		if len(names) > 0 {
			return newErr(ErrNotOwned, op, name,
				"its directory %s still holds %s, which were not deleted as this cluster's volumes; the pool is kept (move those files away and run destroy again)",
				wantPath, strings.Join(names, ", "))
		}
		if err := pool.Destroy(); err != nil && !isInvalidState(err) {
			return ignoreNotFound(err)
		}
		if err := pool.Delete(lv.STORAGE_POOL_DELETE_NORMAL); err != nil {
			return &Error{Op: op, Object: name, Cause: err,
				Detail: libvirtMessage(err) + "; files libvirt does not list as volumes may remain in " + poolPath(def)}
		}
		return ignoreNotFound(pool.Undefine())
	})
}

func poolDef(pool *lv.StoragePool, flags lv.StorageXMLFlags) (*libvirtxml.StoragePool, error) {
	x, err := pool.GetXMLDesc(flags)
	if err != nil {
		return nil, err
	}
	var def libvirtxml.StoragePool
	if err := def.Unmarshal(x); err != nil {
		return nil, err
	}
	return &def, nil
}

func poolPath(p *libvirtxml.StoragePool) string {
	if p.Target == nil || p.Target.Path == "" {
		return ""
	}
	return filepath.Clean(p.Target.Path)
}

// checkEmptyDir refuses a directory that exists and holds anything.
func checkEmptyDir(op, object, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return nil // absent (libvirt creates it) or empty
	}
	var names []string
	for i, e := range entries {
		if i == 3 {
			names = append(names, "...")
			break
		}
		names = append(names, e.Name())
	}
	return newErr(ErrNotOwned, op, object,
		"its directory %s already exists and holds files (%s); hpcvm keeps each cluster's disks in a directory of its own: choose another pool_path, or move those files away",
		dir, strings.Join(names, ", "))
}
