package cluster

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// pathSeeds are the seed corpus of FuzzParsePaths: a share, a pool path and
// a base image, each as cluster.yaml would carry it.
var pathSeeds = [][3]string{
	{"/srv/data", "/var/lib/hpcvm/pools", "/var/lib/hpcvm/images/base.qcow2"},
	{"/srv/projects/alice/certs/../../..", "/var/lib/hpcvm/pools/", "/var/lib/hpcvm/images/../../../../etc/shadow"},
	{"/srv/projects/alice/certs/../ssl/private", "/var/lib//hpcvm", "/var/lib/hpcvm/./images/base.qcow2"},
	{"/", "/", "/"},
	{"", "", ""},
	{".", "..", "./base.qcow2"},
	{"srv/data", "pools", "base.qcow2"},
	{"//srv", "///", "//base.qcow2"},
	{"/srv/data/.", "/var/lib/hpcvm/pools/..", "/var/lib/hpcvm/images/base.qcow2/"},
	{"/srv/da\x00ta", "/var/lib/\nhpcvm", "/var/lib/hpcvm/<images>/base.qcow2"},
	{"/srv/\u202edata", "/var/lib/hpcvm/pools/\u00e9", "/var/lib/hpcvm/images/base qcow2"},
	{"/srv/...", "/var/lib/hpcvm/..pools", "/var/lib/hpcvm/images/.base.qcow2"},
	{"\\srv\\data", "C:\\pools", "/var/lib/hpcvm/images/base.qcow2\\.."},
}

// pathsYAML is a cluster file with the three paths written as YAML
// double-quoted scalars (JSON's escapes are YAML's).
func pathsYAML(share, pool, image string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf("cluster: {name: lab, host: hv1, storage: {pool_path: %s, base_image: %s}}\n"+
		"controller: {virtio_fs_mounts: [{tag: c, host_path: %s, mount_point: /c}]}\n"+
		"compute_nodes: [{name: a, virtio_fs_mounts: [{tag: d, host_path: %s, mount_point: /d}]}]\n",
		q(pool), q(image), q(share), q(share))
}

// FuzzParsePaths checks the paths of cluster.yaml that reach the host: a
// refusal says where, what and what is accepted; every path Parse accepts
// is absolute, clean (filepath.Clean leaves it as it is) and not "/".
// Run it longer with: go test -run XXX -fuzz FuzzParsePaths -fuzztime 60s ./cluster/
func FuzzParsePaths(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, share, pool, image string) {
		spec, err := Parse([]byte(pathsYAML(share, pool, image)))
		if err != nil {
			checkRefusal(t, err)
			return
		}
		paths := map[string]string{
			"cluster.storage.pool_path":  spec.Cluster.Storage.PoolPath,
			"cluster.storage.base_image": spec.Cluster.Storage.BaseImage,
		}
		for i, m := range spec.Controller.VirtioFSMounts {
			paths[fmt.Sprintf("controller.virtio_fs_mounts[%d].host_path", i)] = m.HostPath
		}
		for i, n := range spec.ComputeNodes {
			for j, m := range n.VirtioFSMounts {
				paths[fmt.Sprintf("compute_nodes[%d].virtio_fs_mounts[%d].host_path", i, j)] = m.HostPath
			}
		}
		for field, p := range paths {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
				t.Fatalf("Parse accepted %s %q, which is not a clean absolute path below /", field, p)
			}
		}
	})
}
