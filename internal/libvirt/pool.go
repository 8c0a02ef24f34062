package libvirt

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// PoolInfo describes an existing storage pool. Sizes are in bytes and are
// zero while the pool is inactive.
type PoolInfo struct {
	Name       string
	UUID       string
	Path       string
	Active     bool
	Capacity   uint64
	Allocation uint64
	Available  uint64
}

// EnsurePool makes the storage pool described by xml exist, built (its
// directory created), active and autostarted. An existing pool of that name
// must carry the UUID of xml (the caller's mark of ownership: ErrNotOwned
// otherwise) and have the same type and target path (ErrMismatch).
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
			if err := provenPool(op, have, want.UUID); err != nil {
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
			// and deleting the pool later deletes them and removes the
			// directory: never adopt one that exists, even empty (a mount
			// point, a directory an admin prepared). The directory a pool
			// of ours has is the one its Build made: the pool's UUID
			// proves both.
			if err := checkAbsentDir(op, want.Name, poolPath(&want)); err != nil {
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
		info = PoolInfo{Name: name, UUID: def.UUID, Path: poolPath(def)}
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

// provenPool refuses a pool that does not carry wantUUID: one made by hand
// (or by another tool) with the name the caller plans to use.
func provenPool(op string, have *libvirtxml.StoragePool, wantUUID string) error {
	if wantUUID == "" || strings.EqualFold(have.UUID, wantUUID) {
		return nil
	}
	return newErr(ErrNotOwned, op, have.Name,
		"it was not created by hpcvm (its UUID %s is not the one hpcvm gives this cluster's pool), so hpcvm neither changes nor deletes it nor anything in it; "+
			"remove it yourself if it is stale (virsh pool-destroy %s; virsh pool-undefine %s), or give the cluster another name", have.UUID, have.Name, have.Name)
}

// OwnedPool returns ErrNotOwned unless the pool carries wantUUID, and
// ErrNotFound if there is no such pool. Callers prove a pool is theirs with
// it before they touch a volume in it.
func (c *Client) OwnedPool(name, wantUUID string) error {
	const op = "check owner of pool"
	return c.do(op, name, true, func(conn *lv.Connect) error {
		pool, _, err := ownedPool(conn, op, name, wantUUID)
		if err == nil {
			_ = pool.Free()
		}
		return err
	})
}

// ownedPool looks the pool up and proves it carries wantUUID; it returns
// its persistent definition. The caller frees the pool.
func ownedPool(conn *lv.Connect, op, name, wantUUID string) (*lv.StoragePool, *libvirtxml.StoragePool, error) {
	if err := requireUUID(op, name, wantUUID); err != nil {
		return nil, nil, err
	}
	pool, err := conn.LookupStoragePoolByName(name)
	if err != nil {
		return nil, nil, err
	}
	def, err := poolDef(pool, lv.STORAGE_XML_INACTIVE)
	if err == nil {
		err = provenPool(op, def, wantUUID)
	}
	if err != nil {
		_ = pool.Free()
		return nil, nil, err
	}
	return pool, def, nil
}

// requireUUID refuses to act without a mark to prove: ownership checks
// fail closed.
func requireUUID(op, name, wantUUID string) error {
	if wantUUID == "" {
		return newErr(ErrNotOwned, op, name, "no owner UUID was given to prove it is the caller's, so it is not touched")
	}
	return nil
}

// ActivatePool starts an inactive pool (a host reboot, a `virsh
// pool-destroy`): its volumes cannot be listed or deleted while it is down.
// The pool must carry wantUUID.
func (c *Client) ActivatePool(name, wantUUID string) error {
	const op = "start pool"
	return c.do(op, name, true, func(conn *lv.Connect) error {
		pool, def, err := ownedPool(conn, op, name, wantUUID)
		if err != nil {
			return err
		}
		defer pool.Free()
		if active, err := pool.IsActive(); err != nil || active {
			return err
		}
		if err := pool.Create(0); err != nil {
			return &Error{Op: op, Object: name, Cause: err,
				Detail: libvirtMessage(err) + "; check that its directory " + poolPath(def) + " exists"}
		}
		return nil
	})
}

// DeletePool removes the pool and its (then empty) directory. A missing
// pool is not an error. A pool that does not carry wantUUID is ErrNotOwned
// and is not touched. A pool that still holds volumes is kept
// (ErrNotEmpty): volumes are deleted one by one by whoever proved them
// theirs, and whatever is left is not the caller's to remove.
func (c *Client) DeletePool(name, wantUUID string) error {
	const op = "delete pool"
	return c.do(op, name, true, func(conn *lv.Connect) error {
		pool, def, err := ownedPool(conn, op, name, wantUUID)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer pool.Free()
		// Volumes can only be listed, and the directory only removed, while
		// the pool is active.
		active, err := pool.IsActive()
		if err != nil {
			return ignoreNotFound(err)
		}
		if !active {
			if _, statErr := os.Stat(poolPath(def)); errors.Is(statErr, fs.ErrNotExist) {
				// Its directory is gone (a delete cut short between
				// removing it and undefining the pool, or removed by
				// hand): nothing is left to lose but the definition.
				return ignoreNotFound(pool.Undefine())
			}
			if err := pool.Create(0); err != nil {
				return &Error{Op: op, Object: name, Cause: err,
					Detail: libvirtMessage(err) + "; the pool cannot be started to check that it is empty (does " + poolPath(def) + " exist?): remove it by hand with virsh pool-undefine " + name + " once you have checked its directory"}
			}
		}
		_ = pool.Refresh(0)
		names, err := pool.ListStorageVolumes()
		if err != nil {
			return ignoreNotFound(err)
		}
		if len(names) > 0 {
			sort.Strings(names)
			return newErr(ErrNotEmpty, op, name,
				"its directory %s still holds %s, which hpcvm did not delete (not created by hpcvm, or still in use); the pool is kept: move those files away and run destroy again",
				poolPath(def), strings.Join(names, ", "))
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

// checkAbsentDir refuses a pool directory that exists already (or
// anything else at its path).
func checkAbsentDir(op, object, dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return &Error{Op: op, Object: object, Cause: err, Detail: err.Error()}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) == 0 {
		return newErr(ErrNotOwned, op, object,
			"its directory %s exists already and hpcvm did not create it; deleting the pool would remove it, so hpcvm uses only a directory it creates itself: "+
				"remove it if it is an empty leftover (rmdir %s), or choose another pool_path", dir, dir)
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
