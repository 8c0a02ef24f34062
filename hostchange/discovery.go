package hostchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
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
	return filepath.Join(dir, "hpcvm-"+cluster+".json")
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

// maxRecordSize bounds what is read of a file in the registry directory.
const maxRecordSize = 4 << 20

// ownedRecord says whether the file at path is the cluster's registry
// file (false, nil when there is none). It reads only a regular file, not
// through a symbolic link, and at most maxRecordSize: the directory may
// belong to the registry's own user.
func ownedRecord(path, cluster string) (exists bool, content []byte, err error) {
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return false, nil, err
	}
	defer root.Close()
	name := filepath.Base(path)
	st, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	if !st.Mode().IsRegular() {
		return true, nil, &RefusedError{fmt.Sprintf("%s is not a regular file (%s), so it is not hpcvm's registry file of cluster %s: hpcvm neither follows, replaces nor removes it; move it away", path, st.Mode().Type(), cluster)}
	}
	if st.Size() > maxRecordSize {
		return true, nil, notOurs(path, cluster)
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return true, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return true, nil, err
	}
	var cf consulFile
	if len(b) > maxRecordSize || json.Unmarshal(b, &cf) != nil || len(cf.Services) == 0 {
		return true, b, notOurs(path, cluster)
	}
	for _, s := range cf.Services {
		if s.Meta["hpcvm_cluster"] != cluster {
			return true, b, notOurs(path, cluster)
		}
	}
	return true, b, nil
}

func notOurs(path, cluster string) error {
	return &RefusedError{fmt.Sprintf("%s exists but is not hpcvm's registry file of cluster %s (its services do not carry meta.hpcvm_cluster %q), so hpcvm neither replaces nor removes it: move it away, or give the cluster another name", path, cluster, cluster)}
}

func digest(b []byte) string {
	if b == nil {
		return "absent"
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// RecordExists says whether the cluster's registry file is at path.
func (h *Host) RecordExists(path, cluster string) (bool, error) {
	exists, _, err := ownedRecord(path, cluster)
	return exists, err
}

// WriteRecord writes the cluster's registry file when it is missing or
// differs (atomically: a reader never sees half a file), and records it.
func (h *Host) WriteRecord(ctx context.Context, meta Meta, path string, doc []byte) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := journal{h: h, meta: meta, action: ActionApply}
	_, old, err := ownedRecord(path, meta.Cluster)
	if err != nil {
		return nil, err
	}
	r := Record{Netns: "-", Change: "service discovery record of cluster " + meta.Cluster + " (" + path + ")", Before: digest(old), After: digest(doc)}
	if bytes.Equal(old, doc) {
		j.add(Record{Netns: "-", Change: r.Change, Before: r.Before, After: r.After, Outcome: OutcomeUnchanged})
		return j.recs, nil
	}
	r.Command = "write " + path
	err = j.do(r, func() error {
		// Inside the directory only: a link planted there cannot send the
		// write elsewhere. The temporary name does not end in .json, so
		// the agent never loads half a file.
		root, err := os.OpenRoot(filepath.Dir(path))
		if err != nil {
			return err
		}
		defer root.Close()
		var suffix [6]byte
		_, _ = rand.Read(suffix[:])
		tmpName := ".hpcvm-" + meta.Cluster + "-" + hex.EncodeToString(suffix[:]) + ".tmp"
		tmp, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			return err
		}
		defer root.Remove(tmpName)
		if _, err := tmp.Write(doc); err != nil {
			tmp.Close()
			return err
		}
		// The agent reads it, whoever it runs as; nothing secret in it.
		if err := tmp.Chmod(0o644); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return root.Rename(tmpName, filepath.Base(path))
	})
	return j.recs, err
}

// RemoveRecord removes the registry files hpcvm wrote for the cluster,
// found in the audit log (destroy needs no cluster file), if they are
// still the cluster's; with only set, that file alone (a start's rollback
// removes what it wrote, not a file an earlier start wrote elsewhere). A
// cluster without one changes nothing.
func (h *Host) RemoveRecord(ctx context.Context, meta Meta, only string) ([]Record, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	j := journal{h: h, meta: meta, action: ActionRevert}
	recs, _, err := h.Audit.Read(func(r Record) bool {
		return r.Cluster == meta.Cluster && r.Outcome == OutcomeDone && isRecordChange(r)
	})
	if err != nil {
		return nil, err
	}
	paths := map[string]bool{}
	for _, r := range recs {
		if path, ok := recordPath(r); ok {
			paths[path] = r.Action == ActionApply
		}
	}
	for _, path := range sortedTrue(paths) {
		if only != "" && path != only {
			continue
		}
		exists, old, err := ownedRecord(path, meta.Cluster)
		if err != nil {
			return j.recs, err
		}
		if !exists {
			continue
		}
		err = j.do(Record{Netns: "-", Change: "service discovery record of cluster " + meta.Cluster + " (" + path + ")", Command: "remove " + path,
			Before: digest(old), After: "absent"}, func() error {
			root, err := os.OpenRoot(filepath.Dir(path))
			if err != nil {
				return err
			}
			defer root.Close()
			return root.Remove(filepath.Base(path))
		})
		if err != nil {
			return j.recs, err
		}
	}
	return j.recs, nil
}

func isRecordChange(r Record) bool {
	_, ok := recordPath(r)
	return ok
}

// recordPath is the file a registry-file record wrote or removed.
func recordPath(r Record) (string, bool) {
	for _, verb := range []string{"write ", "remove "} {
		if len(r.Command) > len(verb) && r.Command[:len(verb)] == verb && filepath.Ext(r.Command) == ".json" {
			return r.Command[len(verb):], true
		}
	}
	return "", false
}

func sortedTrue(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
