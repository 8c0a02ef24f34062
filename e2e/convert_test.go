package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A configuration file of the Python tool, in its real format, converted by
// hpcvm convert and started as it comes out: no edit of the result.
func TestConvertedAIHowFileStarts(t *testing.T) {
	e := newEnv(t)
	image := testImage(t)
	t.Setenv("HPCVM_TEST_IMAGES", filepath.Dir(image))
	// The converted file keeps hpcvm's default pool directory; hpcvm-worker
	// makes a missing pool root when it starts, as this in-process one
	// does not (a host without libvirt-daemon-system has none).
	require.NoError(t, os.MkdirAll(cluster.DefaultPoolPath, 0o755))
	e.startWorkerWith(func(o *hostworker.Options) { o.PoolRoots = append(o.PoolRoots, cluster.DefaultPoolPath) })
	octet := 100 + int(e.cluster[len(e.cluster)-1])%100
	src := fmt.Sprintf(`version: "1.0"
metadata:
  name: %[1]s
  description: converted by the e2e test
global: {}
clusters:
  hpc:
    name: %[1]s
    base_image_path: ${HPCVM_TEST_IMAGES}/%[2]s
    network:
      subnet: 10.%[3]d.7.0/24
      bridge: brc%[4]s
    hardware:
      acceleration:
        enable_kvm: false
        cpu_model: qemu64
    controller:
      cpu_cores: 1
      memory_gb: 1
      disk_gb: 10
      ip_address: 10.%[3]d.7.10
    compute_nodes:
      - cpu_cores: 1
        memory_gb: 1
        disk_gb: 10
        ip: 10.%[3]d.7.11
      - count: 1
        cpu_cores: 1
        memory_gb: 1
        disk_gb: 10
        ip: DHCP
    slurm_config:
      partitions: [debug]
      default_partition: debug
`, e.cluster, filepath.Base(image), octet, e.cluster[len(e.cluster)-6:])
	dir := t.TempDir()
	in := filepath.Join(dir, "ai-how.yaml")
	require.NoError(t, os.WriteFile(in, []byte(src), 0o644))

	code, out := e.hpcvm("convert", in, "--out-dir", dir)
	require.Equal(t, cli.ExitOK, code, out)
	converted := filepath.Join(dir, e.cluster+".cluster.yaml")
	assert.Contains(t, out, "wrote "+converted)
	assert.NotContains(t, out, "not carried over")
	// A second convert does not overwrite the result.
	code, out = e.hpcvm("convert", in, "--out-dir", dir)
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "exists")

	e.config = converted
	code, out = e.hpcvm("start", "--host", e.host)
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "started 3 VM(s)")
	t.Cleanup(func() {
		if code, out := e.hpcvm("destroy", "--yes", "--host", e.host); code != cli.ExitOK {
			t.Errorf("destroy: %s", out)
		}
		assert.Empty(t, e.leftovers())
	})
	for _, vm := range []string{"controller-01", "compute-01", "compute-02"} {
		st, err := e.lv.DomainState(e.cluster + "-" + vm)
		require.NoError(t, err)
		assert.Equal(t, "running", string(st), vm)
	}
	// The addresses the Python tool's file gave.
	hosts := virsh(t, "net-dumpxml", e.cluster+"-network")
	assert.Contains(t, hosts, fmt.Sprintf("name='controller-01' ip='10.%d.7.10'", octet))
	assert.Contains(t, hosts, fmt.Sprintf("name='compute-01' ip='10.%d.7.11'", octet))
	// Slurm's settings reach Ansible.
	inv, err := os.ReadFile(os.Getenv("HPCVM_INVENTORY"))
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(inv), `slurm_partitions=["debug"]`), "%s", inv)
}
