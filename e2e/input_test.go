package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Explicit zeros and negative sizes are refused before anything is sent.
func TestZeroAndNegativeSizesAreRefused(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	good := readFile(t, e.config)
	for _, bad := range []struct{ from, to, field string }{
		{"cpu_cores: 1, disk_size_gb: 1}\ncompute_nodes", "cpu_cores: 0, disk_size_gb: 1}\ncompute_nodes", "controller.cpu_cores"},
		{"controller: {count: 1, memory_mb: 128", "controller: {count: 1, memory_mb: 0", "controller.memory_mb"},
		{"controller: {count: 1,", "controller: {count: -1,", "controller.count"},
		{"controller: {count: 1,", "controller: {count: 0,", "controller.count"},
		{"name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1", "name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 0", "compute_nodes[0].disk_size_gb"},
		{"name: compute-01, memory_mb: 128, cpu_cores: 1", "name: compute-01, memory_mb: 128, cpu_cores: -2", "compute_nodes[0].cpu_cores"},
	} {
		writeFile(t, e.config, strings.Replace(good, bad.from, bad.to, 1))
		code, out := e.hpcvm("start")
		assert.Equal(t, cli.ExitBadInput, code, out)
		assert.Contains(t, out, bad.field)
		assert.Contains(t, out, "nothing was submitted")
	}
	assert.Empty(t, e.leftovers())
}

// A pool outside the worker's --pool-root is refused before anything exists.
func TestPathsOutsideTheWorkersRootsAreRefused(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{poolPath: "/srv/hpcvm-not-a-root"})
	e.startWorker()
	e.mustLeaveNothing()
	code, out := e.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "cluster.storage.pool_path /srv/hpcvm-not-a-root/"+e.cluster+" is outside what the worker")
	assert.Contains(t, out, "--pool-root")
	assert.Empty(t, e.leftovers())

	// list does not call the cluster "unknown": it never existed.
	require.Eventually(t, func() bool {
		_, out = e.hpcvm("list", "-o", "json")
		return strings.Contains(out, `"cluster": "`+e.cluster+`"`)
	}, 15*time.Second, 200*time.Millisecond, "list shows the start: %s", out)
	assert.Contains(t, out, "absent: the last start failed and the cluster did not exist before it")
}

// A base image outside the worker's --image-root is refused once, by the
// paths check, not a second time by the base-image check.
func TestAnImageOutsideTheRootsIsReportedOnce(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()
	writeFile(t, e.config, strings.Replace(readFile(t, e.config), testImage(t), "/srv/hpcvm-not-a-root/base.qcow2", 1))
	code, out := e.hpcvm("validate")
	assert.NotEqual(t, cli.ExitOK, code, out)
	refusal := "cluster.storage.base_image /srv/hpcvm-not-a-root/base.qcow2 is outside what the worker"
	assert.Equal(t, 1, strings.Count(out, refusal), out)
	assert.Contains(t, out, "✗ base image: refused by the paths check above")
	assert.Empty(t, e.leftovers())
}
