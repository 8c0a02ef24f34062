package workflows

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
)

// destroyDecision is what destroy will delete and what it will keep, decided
// from what the cluster owns in libvirt (never from today's cluster.yaml),
// before anything is touched. The workflow only executes it.
type destroyDecision struct {
	// Domains to delete, each with the volumes (of the owned pool) that
	// are its disks: they go once the domain is gone.
	Domains []domainTeardown
	// Leases to remove from the network (destroy --vm only).
	Leases []cluster.HostLease
	// LooseVolumes are disks of ours that no domain claims: a half-created
	// VM's, or one whose domain was removed by hand.
	LooseVolumes []string
	// Bases go only once no volume that stays stands on them.
	Bases []string
	// Pool and Network say whether the cluster's own pool and network go.
	Pool, Network bool
	// LeftAlone are objects with the cluster's names that hpcvm did not
	// create: never touched, not counted as left over.
	LeftAlone []string
	// Kept are objects of the cluster, or inside its pool, that stay for a
	// reason known before anything runs.
	Kept []string
	// Missing are VMs asked for with --vm that the cluster does not have.
	Missing []string
}

type domainTeardown struct {
	Name    string
	VM      string
	Volumes []string
}

// decideDestroy sorts what the inventory shows into what destroy deletes and
// what it keeps. onlyVMs, if not empty, limits destroy to those nodes: their
// domains, disks and leases; the base, pool and network stay.
//
// A volume is the cluster's only inside the cluster's pool (proven by its
// UUID), and then only if it is a base volume (named like one), the disk of
// a domain of the cluster, or a copy-on-write layer on a base; a volume a
// domain outside the cluster uses stays whatever it is.
func decideDestroy(name string, inv api.Inventory, onlyVMs []string) destroyDecision {
	var d destroyDecision
	only := map[string]bool{}
	for _, vm := range onlyVMs {
		only[vm] = true
	}
	partial := len(only) > 0

	if n := inv.Network; n != nil && !n.Owned {
		d.LeftAlone = append(d.LeftAlone, fmt.Sprintf("network %s (its UUID %s is not the one hpcvm gives cluster %s's network: not created by hpcvm)", n.Name, n.UUID, name))
	}
	if p := inv.Pool; p != nil && !p.Owned {
		d.LeftAlone = append(d.LeftAlone, fmt.Sprintf("pool %s and everything in %s (its UUID %s is not the one hpcvm gives cluster %s's pool: not created by hpcvm)", p.Name, p.Path, p.UUID, name))
	}

	poolPath := ""
	if inv.PoolOwned() {
		poolPath = inv.Pool.Path
	}
	volumeAt := map[string]string{} // path → volume name, in the owned pool
	for vname, v := range inv.Volumes {
		volumeAt[filepath.Clean(v.Path)] = vname
	}
	foreign := map[string]bool{}
	for _, p := range inv.ForeignDisks {
		foreign[filepath.Clean(p)] = true
	}

	claimed := map[string]bool{}
	found := map[string]bool{}
	for _, dom := range inv.Domains {
		if !dom.Owned {
			d.LeftAlone = append(d.LeftAlone, fmt.Sprintf("domain %s (it has no hpcvm metadata for cluster %s: not created by hpcvm)", dom.Name, name))
			continue
		}
		if partial && !only[dom.VM] {
			// Its disks are not to be touched either.
			for _, disk := range dom.Disks {
				if v, ok := volumeAt[filepath.Clean(disk)]; ok {
					claimed[v] = true
				}
			}
			continue
		}
		found[dom.VM] = true
		td := domainTeardown{Name: dom.Name, VM: dom.VM}
		for _, disk := range dom.Disks {
			v, ok := volumeAt[filepath.Clean(disk)]
			if !ok {
				if poolPath == "" || filepath.Dir(filepath.Clean(disk)) != poolPath {
					d.Kept = append(d.Kept, fmt.Sprintf("file %s (a disk of domain %s outside the cluster's pool: hpcvm did not create it)", disk, dom.Name))
				}
				continue
			}
			if claimed[v] {
				continue
			}
			claimed[v] = true
			if foreign[filepath.Clean(disk)] {
				d.Kept = append(d.Kept, fmt.Sprintf("volume %s (a domain outside cluster %s uses it too)", v, name))
				continue
			}
			td.Volumes = append(td.Volumes, v)
		}
		d.Domains = append(d.Domains, td)
	}

	isBase := map[string]bool{}
	basePaths := map[string]string{}
	for _, b := range cluster.BaseVolumeNames(name) {
		if v, ok := inv.Volumes[b]; ok {
			isBase[b] = true
			basePaths[filepath.Clean(v.Path)] = b
		}
	}
	if partial {
		for _, vm := range slices.Sorted(maps.Keys(only)) {
			if !found[vm] {
				// The domain is gone; its disk may still be there.
				if v, ok := inv.Volumes[vm+".qcow2"]; ok && !claimed[v.Name] && basePaths[filepath.Clean(v.BackingPath)] != "" && !foreign[filepath.Clean(v.Path)] {
					d.LooseVolumes = append(d.LooseVolumes, v.Name)
					found[vm] = true
				}
			}
			if n := inv.Network; n != nil && n.Owned {
				for _, l := range n.Leases {
					if l.Name == vm {
						d.Leases = append(d.Leases, l)
						found[vm] = true
					}
				}
			}
			if !found[vm] {
				d.Missing = append(d.Missing, vm)
			}
		}
		keepBackingChains(&d, inv, foreign)
		return d
	}

	for _, vname := range slices.Sorted(maps.Keys(inv.Volumes)) {
		v := inv.Volumes[vname]
		switch {
		case claimed[vname] || isBase[vname]:
		case foreign[filepath.Clean(v.Path)]:
			d.Kept = append(d.Kept, fmt.Sprintf("volume %s (a domain outside cluster %s uses it)", vname, name))
		case basePaths[filepath.Clean(v.BackingPath)] != "":
			d.LooseVolumes = append(d.LooseVolumes, vname)
		default:
			d.Kept = append(d.Kept, fmt.Sprintf("volume %s in %s (not created by hpcvm: it is neither a base volume nor a disk layered on one)", vname, poolPath))
		}
	}
	for _, b := range cluster.BaseVolumeNames(name) {
		if !isBase[b] {
			continue
		}
		if foreign[filepath.Clean(inv.Volumes[b].Path)] {
			d.Kept = append(d.Kept, fmt.Sprintf("volume %s (a domain outside cluster %s uses it)", b, name))
			continue
		}
		d.Bases = append(d.Bases, b)
	}
	keepBackingChains(&d, inv, foreign)
	switch {
	case !inv.PoolOwned():
	case len(inv.Unreadable) > 0:
		d.Kept = append(d.Kept, fmt.Sprintf("pool %s and its volumes (the definitions of domain(s) %s cannot be read, so hpcvm cannot prove they use nothing of it)", inv.Pool.Name, strings.Join(inv.Unreadable, ", ")))
		d.LooseVolumes, d.Bases = nil, nil
		for i := range d.Domains {
			d.Domains[i].Volumes = nil
		}
	case inv.Pool.DirMissing:
		d.Pool = true // only its definition is left: DeletePool undefines it
	case !inv.VolumesListed:
		d.Kept = append(d.Kept, fmt.Sprintf("pool %s (%s; its volumes could not be listed, so neither they nor the pool were deleted)", inv.Pool.Name, orDefault(inv.Pool.Problem, "it is inactive")))
	default:
		d.Pool = true
	}
	if inv.NetworkOwned() {
		switch {
		case len(inv.Unreadable) > 0:
			d.Kept = append(d.Kept, fmt.Sprintf("network %s (the definitions of domain(s) %s cannot be read, so hpcvm cannot prove they are not attached to it)", inv.Network.Name, strings.Join(inv.Unreadable, ", ")))
		case len(inv.NetworkUsers) > 0:
			d.Kept = append(d.Kept, fmt.Sprintf("network %s (domains outside the cluster are attached to it: %s)", inv.Network.Name, strings.Join(inv.NetworkUsers, ", ")))
		default:
			d.Network = true
		}
	}
	return d
}

// keepBackingChains keeps every volume that a volume which stays stands on,
// however deep the chain: a disk layered on another VM's disk keeps that
// disk and the base under it. A volume stays if destroy does not delete it:
// kept, foreign, or not scheduled.
func keepBackingChains(d *destroyDecision, inv api.Inventory, foreign map[string]bool) {
	doomed := map[string]bool{}
	for _, td := range d.Domains {
		for _, v := range td.Volumes {
			doomed[v] = true
		}
	}
	for _, v := range d.LooseVolumes {
		doomed[v] = true
	}
	for _, v := range d.Bases {
		doomed[v] = true
	}
	byPath := map[string]string{}
	for name, v := range inv.Volumes {
		byPath[filepath.Clean(v.Path)] = name
	}
	needed := map[string]string{} // volume → the volume that stays on it
	var walk func(from, path string, depth int)
	walk = func(from, path string, depth int) {
		name, ok := byPath[filepath.Clean(path)]
		if !ok || depth > 64 {
			return
		}
		if _, seen := needed[name]; seen {
			return
		}
		needed[name] = from
		walk(from, inv.Volumes[name].BackingPath, depth+1)
	}
	for _, name := range slices.Sorted(maps.Keys(inv.Volumes)) {
		if !doomed[name] && inv.Volumes[name].BackingPath != "" {
			walk(name, inv.Volumes[name].BackingPath, 0)
		}
	}
	for p := range foreign {
		if name, ok := byPath[p]; ok && inv.Volumes[name].BackingPath != "" {
			walk(name, inv.Volumes[name].BackingPath, 0)
		}
	}
	spare := func(list []string, what string) []string {
		var out []string
		for _, v := range list {
			if by, ok := needed[v]; ok && doomed[v] {
				d.Kept = append(d.Kept, fmt.Sprintf("volume %s (%s stands on it)", v, by))
				continue
			}
			out = append(out, v)
		}
		return out
	}
	for i := range d.Domains {
		d.Domains[i].Volumes = spare(d.Domains[i].Volumes, "disk")
	}
	d.LooseVolumes = spare(d.LooseVolumes, "disk")
	d.Bases = spare(d.Bases, "base")
}

// basesInUse lists, for each base volume, the volumes that stay and stand
// on it, directly or through other volumes: a base goes only when that list
// is empty (a domain that could not be deleted keeps its disk, and the disk
// keeps its base).
func basesInUse(inv api.Inventory, bases []string, deleted map[string]bool) map[string][]string {
	byPath := map[string]string{}
	for name, v := range inv.Volumes {
		byPath[filepath.Clean(v.Path)] = name
	}
	out := map[string][]string{}
	for _, vname := range slices.Sorted(maps.Keys(inv.Volumes)) {
		if deleted[vname] {
			continue
		}
		seen := map[string]bool{vname: true}
		for p := inv.Volumes[vname].BackingPath; p != ""; {
			under, ok := byPath[filepath.Clean(p)]
			if !ok || seen[under] {
				break
			}
			seen[under] = true
			out[under] = append(out[under], vname)
			p = inv.Volumes[under].BackingPath
		}
	}
	for k := range out {
		if !slices.Contains(bases, k) {
			delete(out, k)
		}
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
