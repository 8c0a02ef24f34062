package cluster

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// pathSeeds are the seed corpus of FuzzParsePaths: a share, a pool path, a
// base image and a host directory hpcvm writes into (the registry agent's
// and dnsmasq's), each as cluster.yaml would carry it.
var pathSeeds = [][4]string{
	{"/srv/data", "/var/lib/hpcvm/pools", "/var/lib/hpcvm/images/base.qcow2", "/etc/consul.d"},
	{"/srv/data", "/var/lib/hpcvm/pools", "/var/lib/hpcvm/images/base.qcow2", "/etc/dnsmasq.d/hpcvm/../../shadow"},
	{"/srv/data", "/var/lib/hpcvm/pools", "/var/lib/hpcvm/images/base.qcow2", "/etc/consul.d/"},
	{"/srv/projects/alice/certs/../../..", "/var/lib/hpcvm/pools/", "/var/lib/hpcvm/images/../../../../etc/shadow", "/etc/dnsmasq.d/hpcvm/../../.."},
	{"/srv/projects/alice/certs/../ssl/private", "/var/lib//hpcvm", "/var/lib/hpcvm/./images/base.qcow2", "/etc/dnsmasq.d/"},
	{"/", "/", "/", "/"},
	{"", "", "", ""},
	{".", "..", "./base.qcow2", "consul.d"},
	{"srv/data", "pools", "base.qcow2", "../etc"},
	{"//srv", "///", "//base.qcow2", "//etc/consul.d"},
	{"/srv/data/.", "/var/lib/hpcvm/pools/..", "/var/lib/hpcvm/images/base.qcow2/", "/etc/./consul.d"},
	{"/srv/da\x00ta", "/var/lib/\nhpcvm", "/var/lib/hpcvm/<images>/base.qcow2", "/etc/consul\x00.d"},
	{"/srv/\u202edata", "/var/lib/hpcvm/pools/\u00e9", "/var/lib/hpcvm/images/base qcow2", "/etc/\u202econsul.d"},
	{"/srv/...", "/var/lib/hpcvm/..pools", "/var/lib/hpcvm/images/.base.qcow2", "/etc/..."},
	{"\\srv\\data", "C:\\pools", "/var/lib/hpcvm/images/base.qcow2\\..", "C:\\dnsmasq.d"},
}

// pathsYAML is a cluster file with the paths written as YAML double-quoted
// scalars (JSON's escapes are YAML's); hostDir is both the registry
// agent's and dnsmasq's directory.
func pathsYAML(share, pool, image, hostDir string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf("cluster: {name: lab, host: hv1, storage: {pool_path: %s, base_image: %s}}\n"+
		"controller: {virtio_fs_mounts: [{tag: c, host_path: %s, mount_point: /c}]}\n"+
		"compute_nodes: [{name: a, virtio_fs_mounts: [{tag: d, host_path: %s, mount_point: /d}]}]\n"+
		"host_configuration: {network: {dnsmasq_config_path: %s, service_discovery: {config_dir: %s}}}\n",
		q(pool), q(image), q(share), q(share), q(hostDir), q(hostDir))
}

// FuzzParsePaths checks the paths of cluster.yaml that reach the host: a
// refusal says where, what and what is accepted; every path Parse accepts
// is absolute, clean (filepath.Clean leaves it as it is) and not "/".
// Run it longer with: go test -run XXX -fuzz FuzzParsePaths -fuzztime 60s ./cluster/
func FuzzParsePaths(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, share, pool, image, hostDir string) {
		spec, err := Parse([]byte(pathsYAML(share, pool, image, hostDir)))
		if err != nil {
			checkRefusal(t, err)
			return
		}
		paths := map[string]string{
			"cluster.storage.pool_path":  spec.Cluster.Storage.PoolPath,
			"cluster.storage.base_image": spec.Cluster.Storage.BaseImage,
		}
		for _, rel := range []string{"network.dnsmasq_config_path", "network.service_discovery.config_dir"} {
			v, ok := hostSetting(spec.HostConfiguration, rel).(string)
			if !ok {
				t.Fatalf("Parse accepted host_configuration.%s %#v, which is not text", rel, hostSetting(spec.HostConfiguration, rel))
			}
			paths["host_configuration."+rel] = v
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
