package hostchange

import (
	"context"
	"encoding/json"
	"sort"
)

// dns_mode service_discovery is a hook for an external registry: hpcvm
// writes the cluster's names and addresses as a Consul service-definition
// file, hpcvm-<cluster>.json in the agent's configuration directory, which
// the agent loads on its next reload (`consul reload`); etcd or any other
// registry can read the same file. The cluster is the service, each VM a
// tagged instance of it: controller-01.<cluster>.service.consul resolves
// through Consul's DNS. Each service carries meta.hpcvm_cluster: a file of
// that name without it is not hpcvm's, and is neither replaced nor removed.

// Node is one VM of the cluster as a registry sees it.
type Node struct {
	VM      string `json:"vm"`
	Role    string `json:"role"`
	Domain  string `json:"domain"`
	Address string `json:"address"`
	MAC     string `json:"mac"`
}

type consulFile struct {
	Services []consulService `json:"services"`
}

type consulService struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Tags    []string          `json:"tags"`
	Address string            `json:"address"`
	Meta    map[string]string `json:"meta"`
}

// DiscoveryFile is the cluster's registry file in dir.
func DiscoveryFile(dir, cluster string) string {
	return clusterFile(dir, cluster, registryFile.ext)
}

// RegistryDocument is the registry file of the cluster's nodes.
func RegistryDocument(cluster string, nodes []Node) ([]byte, error) {
	sorted := append([]Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].VM < sorted[j].VM })
	f := consulFile{Services: []consulService{}}
	for _, n := range sorted {
		f.Services = append(f.Services, consulService{
			ID: "hpcvm-" + cluster + "-" + n.VM, Name: cluster, Tags: []string{n.VM, n.Role, "hpcvm"}, Address: n.Address,
			Meta: map[string]string{"hpcvm_cluster": cluster, "hpcvm_vm": n.VM, "hpcvm_role": n.Role, "hpcvm_domain": n.Domain, "hpcvm_mac": n.MAC},
		})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// registryFile is the kind of the service discovery record.
var registryFile = fileKind{
	what: "service discovery record",
	noun: "registry file",
	ext:  ".json",
	owned: func(b []byte, cluster string) bool {
		var cf consulFile
		if json.Unmarshal(b, &cf) != nil || len(cf.Services) == 0 {
			return false
		}
		for _, s := range cf.Services {
			if s.Meta["hpcvm_cluster"] != cluster {
				return false
			}
		}
		return true
	},
	notOurs: "its services do not carry meta.hpcvm_cluster %q",
}

// RecordExists says whether the cluster's registry file is at path.
func (h *Host) RecordExists(path, cluster string) (bool, error) {
	exists, _, err := registryFile.read(path, cluster)
	return exists, err
}

// RecordCurrent says whether path holds exactly doc as the cluster's
// registry file: a WriteRecord would change nothing.
func (h *Host) RecordCurrent(path, cluster string, doc []byte) (bool, error) {
	return registryFile.current(path, cluster, doc)
}

// WriteRecord writes the cluster's registry file when it is missing or
// differs (atomically: a reader never sees half a file), and records it.
func (h *Host) WriteRecord(ctx context.Context, meta Meta, path string, doc []byte) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionApply)
	_, _, err = registryFile.write(&j, path, doc)
	return j.recs, err
}

// RemoveRecord removes the registry files hpcvm wrote for the cluster,
// found in the audit log (destroy needs no cluster file) and by their mark
// in each of dirs, if they are still the cluster's; with only set, that
// file alone (a start's rollback removes what it wrote, not a file an
// earlier start wrote elsewhere). A cluster without one changes nothing.
func (h *Host) RemoveRecord(ctx context.Context, meta Meta, only string, dirs []string) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionRevert)
	_, _, err = registryFile.removeAll(&j, only, dirs)
	return j.recs, err
}

// PruneRecord takes the VMs out of the cluster's registry files (a destroy
// of some of its VMs), found in the audit log; a file left without a VM is
// removed. A cluster without one changes nothing.
func (h *Host) PruneRecord(ctx context.Context, meta Meta, vms []string) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := h.newJournal(meta, ActionRevert)
	paths, _, err := registryFile.written(&j)
	if err != nil {
		return nil, err
	}
	gone := map[string]bool{}
	for _, vm := range vms {
		gone[vm] = true
	}
	for _, path := range paths {
		exists, old, err := registryFile.read(path, meta.Cluster)
		if err != nil {
			return j.recs, err
		}
		if !exists {
			continue
		}
		var cf consulFile
		if err := json.Unmarshal(old, &cf); err != nil {
			return j.recs, err
		}
		var kept []Node
		for _, s := range cf.Services {
			if !gone[s.Meta["hpcvm_vm"]] {
				kept = append(kept, Node{VM: s.Meta["hpcvm_vm"], Role: s.Meta["hpcvm_role"], Domain: s.Meta["hpcvm_domain"], Address: s.Address, MAC: s.Meta["hpcvm_mac"]})
			}
		}
		if len(kept) == len(cf.Services) {
			continue
		}
		if len(kept) == 0 {
			_, err = registryFile.remove(&j, path, false)
		} else {
			var doc []byte
			if doc, err = RegistryDocument(meta.Cluster, kept); err == nil {
				_, _, err = registryFile.write(&j, path, doc)
			}
		}
		if err != nil {
			return j.recs, err
		}
	}
	return j.recs, nil
}
