package cluster

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every path of cluster.yaml that reaches the host is absolute and clean
// before anything exists: a path the kernel reads one way and a lexical
// check reads another (a link followed by '..') never gets to the host.
func TestHostPathsMustBeClean(t *testing.T) {
	fields := []struct {
		path string
		yaml func(v string) string
	}{
		{"compute_nodes[0].virtio_fs_mounts[0].host_path", func(v string) string {
			return labYAML + fmt.Sprintf("compute_nodes: [{name: a, virtio_fs_mounts: [{tag: data, host_path: %q, mount_point: /data}]}]\n", v)
		}},
		{"controller.virtio_fs_mounts[0].host_path", func(v string) string {
			return labYAML + fmt.Sprintf("controller: {virtio_fs_mounts: [{tag: data, host_path: %q, mount_point: /data}]}\n", v)
		}},
		{"cluster.storage.pool_path", func(v string) string {
			return fmt.Sprintf("cluster: {name: lab, host: hv1, storage: {base_image: /var/lib/images/base.qcow2, pool_path: %q}}\n", v)
		}},
		{"cluster.storage.base_image", func(v string) string {
			return fmt.Sprintf("cluster: {name: lab, host: hv1, storage: {base_image: %q}}\n", v)
		}},
	}
	bad := []struct{ value, clean string }{
		{"/srv/projects/alice/certs/../../..", "/srv"},
		{"/srv/projects/alice/certs/../ssl/private", "/srv/projects/alice/ssl/private"},
		{"/srv/./data", "/srv/data"},
		{"/srv//data", "/srv/data"},
		{"/srv/data/", "/srv/data"},
		{"/srv/data/.", "/srv/data"},
		{"/srv/data/..", "/srv"},
	}
	for _, f := range fields {
		for _, b := range bad {
			t.Run(f.path+" "+b.value, func(t *testing.T) {
				_, err := Parse([]byte(f.yaml(b.value)))
				require.Error(t, err)
				p := problemAt(t, err, f.path)
				assert.Equal(t, b.value, p.Value)
				assert.Contains(t, p.Problem, "not a clean path")
				assert.Contains(t, p.Want, fmt.Sprintf("%q", b.clean), "the refusal names the clean form")
			})
		}
		t.Run(f.path+" relative", func(t *testing.T) {
			_, err := Parse([]byte(f.yaml("srv/data")))
			require.Error(t, err)
			assert.Contains(t, problemAt(t, err, f.path).Problem, "absolute path")
		})
		t.Run(f.path+" clean", func(t *testing.T) {
			_, err := Parse([]byte(f.yaml("/srv/data")))
			require.NoError(t, err)
		})
	}
	// A share of the host's whole root is never meant.
	_, err := Parse([]byte(fields[0].yaml("/")))
	require.Error(t, err)
	assert.Contains(t, problemAt(t, err, fields[0].path).Problem, "root directory")
}
