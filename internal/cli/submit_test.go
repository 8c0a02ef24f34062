package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/spf13/viper"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func labRequest(computeNames ...string) api.Request {
	spec := cluster.Spec{
		Cluster: cluster.ClusterSpec{Name: "lab", Host: "hv1",
			Storage: cluster.StorageSpec{PoolPath: "/var/lib/libvirt/images", PoolType: "dir", BaseImage: "/var/lib/hpcvm/base.qcow2"}},
		Controller: cluster.ControllerSpec{Count: 1, MemoryMB: 4096, CPUCores: 2, DiskSizeGB: 50},
	}
	for _, n := range computeNames {
		spec.ComputeNodes = append(spec.ComputeNodes, cluster.NodeSpec{Name: n, MemoryMB: 8192, CPUCores: 4, DiskSizeGB: 100})
	}
	return api.Request{Spec: spec}
}

func TestIdenticalRequestsHaveNoDifferences(t *testing.T) {
	diffs, err := requestDifferences(labRequest("compute-01", "compute-02"), labRequest("compute-01", "compute-02"))
	require.NoError(t, err)
	assert.Empty(t, diffs)

	// A nil and an empty list read the same once the request went through
	// JSON, as the running run's request did: they are the same request.
	running, yours := labRequest(), labRequest()
	yours.VMs = []string{}
	diffs, err = requestDifferences(running, yours)
	require.NoError(t, err)
	assert.Empty(t, diffs)

	// Another operator asking the same follows the running run.
	running.RequestedBy, yours.RequestedBy = "alice@desk", "bob@laptop"
	diffs, err = requestDifferences(running, yours)
	require.NoError(t, err)
	assert.Empty(t, diffs)
}

func TestDifferencesNameTheFieldAndBothValues(t *testing.T) {
	diffs, err := requestDifferences(labRequest("compute-01", "compute-02", "compute-03"), labRequest("compute-01", "compute-02", "compute-04"))
	require.NoError(t, err)
	assert.Equal(t, []string{`  spec.compute_nodes[2].name: running "compute-03", yours "compute-04"`}, diffs)

	diffs, err = requestDifferences(labRequest("compute-01"), labRequest("compute-01", "compute-02"))
	require.NoError(t, err)
	assert.Equal(t, []string{`  spec.compute_nodes[1]: running (none), yours {"cpu_cores":4,"disk_size_gb":100,"memory_mb":8192,"name":"compute-02"}`}, diffs)

	kvmOff := false
	running, yours := labRequest(), labRequest()
	yours.Spec.Cluster.Hardware.Acceleration.EnableKVM = &kvmOff
	yours.Spec.Controller.MemoryMB = 2048
	diffs, err = requestDifferences(running, yours)
	require.NoError(t, err)
	assert.Equal(t, []string{
		`  spec.cluster.hardware.acceleration.enable_kvm: running (not set), yours false`,
		`  spec.controller.memory_mb: running 4096, yours 2048`,
	}, diffs)
}

func TestStopTimeoutDifferenceReadsAsDurations(t *testing.T) {
	running, yours := labRequest(), labRequest()
	running.Options.ShutdownTimeout = 30 * time.Second
	yours.Options.ShutdownTimeout = 2 * time.Minute
	diffs, err := requestDifferences(running, yours)
	require.NoError(t, err)
	assert.Equal(t, []string{`  options.shutdown_timeout: running 30s, yours 2m0s`}, diffs)
}

func TestManyDifferencesAreCapped(t *testing.T) {
	var a, b []string
	for i := 1; i <= 14; i++ {
		a = append(a, fmt.Sprintf("compute-%02d", i))
		b = append(b, fmt.Sprintf("node-%02d", i))
	}
	diffs, err := requestDifferences(labRequest(a...), labRequest(b...))
	require.NoError(t, err)
	require.Len(t, diffs, differencesShown+1)
	assert.Equal(t, `  spec.compute_nodes[0].name: running "compute-01", yours "node-01"`, diffs[0])
	assert.Equal(t, "  and 4 more", diffs[differencesShown])
}

// cli runs the CLI without any Temporal: for what is refused before
// connecting.
func cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String() + errOut.String()
}

func TestCancelHelpTeachesForceAndWait(t *testing.T) {
	code, out := cli(t, "cancel", "--help")
	require.Equal(t, ExitOK, code, out)
	for _, want := range []string{"--force", "WITHOUT ANY", "hpcvm destroy", "--wait", "still pending", "exits 5", "exits 3", "no worker"} {
		assert.Contains(t, out, want)
	}
}

func TestBadTLSFlagsExitBadInput(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	for _, tc := range []struct {
		flags   []string
		mention string
	}{
		{[]string{"--tls-key", filepath.Join(dir, "client.key")}, "--tls-key"},
		{[]string{"--tls-ca", notPEM}, "--tls-ca " + notPEM},
		{[]string{"--tls-ca", filepath.Join(dir, "missing.pem")}, "cannot read"},
	} {
		args := append([]string{"status", "--name", "lab", "--host", "hv1", "--temporal-address", "127.0.0.1:1"}, tc.flags...)
		code, out := cli(t, args...)
		assert.Equal(t, ExitBadInput, code, out)
		assert.Contains(t, out, tc.mention)
	}
}

// Stop and destroy act on the cluster's name and host: the same stop given
// from the file and from --name attaches; another timeout does not.
func TestStopAndDestroyCompareWhatTheyActOn(t *testing.T) {
	fromFile := api.Request{Spec: cluster.Spec{Cluster: cluster.ClusterSpec{Name: "lab", Host: "hv1",
		Storage: cluster.StorageSpec{PoolPath: "/var/lib/hpcvm/pools"}}, Controller: cluster.ControllerSpec{Count: 1}}}
	byName := api.Request{Spec: cluster.Spec{Cluster: cluster.ClusterSpec{Name: "lab", Host: "hv1"}}, NameOnly: true}
	for _, op := range []string{api.StopClusterName, api.DestroyClusterName} {
		diffs, err := requestDifferences(actedOn(op, fromFile), actedOn(op, byName))
		require.NoError(t, err)
		assert.Empty(t, diffs, op)
	}
	other := byName
	other.Options.ShutdownTimeout = time.Second
	diffs, err := requestDifferences(actedOn(api.StopClusterName, fromFile), actedOn(api.StopClusterName, other))
	require.NoError(t, err)
	assert.NotEmpty(t, diffs)
	diffs, err = requestDifferences(actedOn(api.StartClusterName, fromFile), actedOn(api.StartClusterName, byName))
	require.NoError(t, err)
	assert.NotEmpty(t, diffs, "a start compares the whole spec")
}

// An option that only means something beside another is refused alone,
// before anything is read or submitted.
func TestStartRefusesOptionsThatContradictOrMissTheirPartner(t *testing.T) {
	code, out := cli(t, "start", "-c", "no-such.yaml", "--wait-ip-timeout", "1m")
	assert.Equal(t, ExitBadInput, code, out)
	assert.Contains(t, out, "add --wait-ip")
	assert.NotContains(t, out, "no-such.yaml", "refused before the file is read")

	code, out = cli(t, "start", "-c", "no-such.yaml", "--inventory", "hosts.ini", "--no-inventory")
	assert.Equal(t, ExitBadInput, code, out)
	assert.Contains(t, out, "[inventory no-inventory]")
}

func TestEmptyTraceDirEnvironmentSwitchesTracesOff(t *testing.T) {
	a := &app{v: viper.New()}
	a.rootCommand()
	t.Setenv("HPCVM_TRACE_DIR", "")
	assert.Equal(t, "", a.traceDir())
	t.Setenv("HPCVM_TRACE_DIR", "elsewhere")
	assert.Equal(t, "elsewhere", a.traceDir())
	require.NoError(t, a.flags.Set("trace-dir", "given"))
	t.Setenv("HPCVM_TRACE_DIR", "")
	assert.Equal(t, "given", a.traceDir(), "the flag wins over the environment")
}
