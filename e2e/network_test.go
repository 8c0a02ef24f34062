package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/starter/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// uplink makes the clusters' outside world (scripts/test-uplink.sh): a
// network namespace beyond libvirtd's, with no route back to the clusters'
// networks. It returns the world's address.
func uplink(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", "../scripts/test-uplink.sh", "up").CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("bash", "../scripts/test-uplink.sh", "down").CombinedOutput(); err != nil {
			t.Errorf("test-uplink.sh down: %v\n%s", err, out)
		}
	})
	return strings.TrimSpace(string(out))
}

// writeProbingSpec writes the env's cluster.yaml with network.forward set
// (unless empty) and a share on compute-01 that asks the test guest what it
// reaches (scripts/testimage/hpcvm-connect); it returns the share.
func (e *env) writeProbingSpec(forward string, probes ...string) string {
	e.t.Helper()
	e.writeSpec(clusterFile{})
	share, err := os.MkdirTemp("/var/tmp", "hpcvm-probe-")
	require.NoError(e.t, err)
	require.NoError(e.t, os.Chmod(share, 0o755))
	e.t.Cleanup(func() { _ = os.RemoveAll(share) })
	writeFile(e.t, filepath.Join(share, "hpcvm-connect"), strings.Join(probes, "\n")+"\n")
	node := "  - {name: compute-01, memory_mb: 128, cpu_cores: 1, disk_size_gb: 1}\n"
	spec := strings.Replace(readFile(e.t, e.config), node, `  - name: compute-01
    memory_mb: 128
    cpu_cores: 1
    disk_size_gb: 1
    virtio_fs_mounts:
      - {tag: probe, host_path: `+share+`, mount_point: /mnt/probe}
`, 1)
	if forward != "" {
		spec = strings.Replace(spec, "network:\n", "network:\n  forward: "+forward+"\n", 1)
	}
	writeFile(e.t, e.config, spec)
	return share
}

// probeResults waits for the guest's answers: probe line → result.
func probeResults(t *testing.T, share string) map[string]string {
	t.Helper()
	var raw []byte
	var err error
	for end := time.Now().Add(4 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		if raw, err = os.ReadFile(filepath.Join(share, "hpcvm-connect.result")); err == nil {
			break
		}
	}
	require.NoError(t, err, "the guest never wrote what it reaches")
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		require.Len(t, f, 3, line)
		out[f[0]+" "+f[1]] = f[2]
	}
	return out
}

// What network.forward promises, proved from inside the guests: a guest
// of a nat cluster reaches a host beyond libvirt's namespace (its replies
// come back only through libvirt's NAT); a guest of a none cluster reaches
// its own cluster and nothing beyond; neither reaches into the other
// cluster, also when dns_mode routed asks for it without the host changes
// it needs; each resolves its own nodes' names in <cluster>.local.
func TestGuestsReachWhatTheirForwardModePromises(t *testing.T) {
	world := uplink(t)

	airgapped := newEnv(t)
	airgapped.startWorker()
	airgapped.mustLeaveNothing()
	airgapped.writeSpec(clusterFile{}) // for the planned addresses
	gappedController, err := airgapped.plannedIP("controller-01")
	require.NoError(t, err)
	gappedShare := airgapped.writeProbingSpec("none",
		"ping "+world, "ping "+gappedController, "resolve controller-01."+airgapped.cluster+".local")
	code, out := airgapped.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	var n libvirtxml.Network
	require.NoError(t, n.Unmarshal(virsh(t, "net-dumpxml", airgapped.cluster+"-network")))
	assert.Nil(t, n.Forward, "forward none: a network without <forward>")
	code, out = airgapped.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Forward: none (air-gapped")
	gapped := probeResults(t, gappedShare)
	t.Logf("air-gapped guest: %v", gapped)
	assert.Equal(t, "unreachable", gapped["ping "+world], "forward none: nothing beyond the bridge")
	assert.Equal(t, "ok", gapped["ping "+gappedController], "its own cluster")
	assert.Equal(t, gappedController, gapped["resolve controller-01."+airgapped.cluster+".local"])
	gappedCompute, err := airgapped.plannedIP("compute-01")
	require.NoError(t, err)

	natted := newEnv(t)
	natted.startWorker()
	natted.mustLeaveNothing()
	natted.writeSpec(clusterFile{})
	natController, err := natted.plannedIP("controller-01")
	require.NoError(t, err)
	natShare := natted.writeProbingSpec("", // nat, the default
		"ping "+world, "ping "+natController, "ping "+gappedCompute, "resolve controller-01."+natted.cluster+".local")
	// dns_mode routed needs host changes, which are off: the start warns
	// with the steps to make them by hand and runs isolated (the probe of
	// the other cluster's guest below shows it).
	writeFile(t, natted.config, strings.Replace(readFile(t, natted.config), "network:\n", "network:\n  dns_mode: routed\n", 1))
	code, out = natted.hpcvm("plan")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "forward nat")
	code, out = natted.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Cross-cluster routing requested for "+natted.cluster+" but host changes are disabled; the cluster runs isolated")
	assert.Contains(t, out, "sudo sysctl -w net.ipv4.ip_forward=1")
	n = libvirtxml.Network{}
	require.NoError(t, n.Unmarshal(virsh(t, "net-dumpxml", natted.cluster+"-network")))
	require.NotNil(t, n.Forward)
	assert.Equal(t, "nat", n.Forward.Mode)
	reached := probeResults(t, natShare)
	t.Logf("nat guest: %v", reached)
	assert.Equal(t, "ok", reached["ping "+world], "forward nat: out through the host's address")
	assert.Equal(t, "ok", reached["ping "+natController])
	assert.Equal(t, "unreachable", reached["ping "+gappedCompute], "another cluster's guest, up (it answered its own probes), is not reachable")
	assert.Equal(t, natController, reached["resolve controller-01."+natted.cluster+".local"])

	// The running cluster's forwarding is not changed by an edited file.
	writeFile(t, natted.config, strings.Replace(readFile(t, natted.config), "network:\n", "network:\n  forward: none\n", 1))
	code, out = natted.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, `network.forward is "none", but the cluster's network `+natted.cluster+`-network was created with forward "nat"`)

	for _, e := range []*env{natted, airgapped} {
		code, out = e.hpcvm("destroy", "--yes")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Empty(t, e.leftovers())
	}
}
