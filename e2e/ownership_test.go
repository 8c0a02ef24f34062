package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clusterFile is what writeSpec puts into cluster.yaml; zero fields take
// the harness's defaults.
type clusterFile struct {
	computes  []string       // compute node names; nil means compute-01
	cpus      map[string]int // per compute node; default 1
	poolPath  string
	baseImage string
	third     int    // x in 10.<octet>.x.0/24
	bridge    string // network.bridge_name, "" for the derived one
	diskGB    int    // every VM's disk_size_gb; default 1
	// leaseController gives controller-01 the static lease .10.
	leaseController bool
}

// writeSpec writes cluster.yaml for the env's cluster (TCG, 128 MiB VMs).
func (e *env) writeSpec(f clusterFile) {
	if f.computes == nil {
		f.computes = []string{"compute-01"}
	}
	if f.poolPath == "" {
		f.poolPath = e.poolRoot
	}
	if f.baseImage == "" {
		f.baseImage = testImage(e.t)
	}
	// The range comes from a hash of the whole random name: two clusters
	// of one test (five in the network test) must not pick the same range,
	// which the last two characters alone did about once in 25 runs.
	h := fnv.New32a()
	_, _ = h.Write([]byte(e.cluster))
	sum := int(h.Sum32())
	octet := 200 + sum%50
	if f.diskGB == 0 {
		f.diskGB = 1
	}
	if f.third == 0 {
		f.third = 1 + (sum/50)%249
	}
	var nodes strings.Builder
	for _, n := range f.computes {
		cpu := f.cpus[n]
		if cpu == 0 {
			cpu = 1
		}
		fmt.Fprintf(&nodes, "  - {name: %s, memory_mb: 128, cpu_cores: %d, disk_size_gb: %d}\n", n, cpu, f.diskGB)
	}
	bridge := ""
	if f.bridge != "" {
		bridge = "\n  bridge_name: " + f.bridge
	}
	if f.leaseController {
		bridge += fmt.Sprintf("\n  static_leases:\n    controller-01: 10.%d.%d.10", octet, f.third)
	}
	yaml := fmt.Sprintf(`cluster:
  name: %s
  host: %s
  storage:
    pool_path: %s
    base_image: %s
  hardware:
    acceleration:
      enable_kvm: false
network:
  network_range: 10.%d.%d.0/24%s
controller: {count: 1, memory_mb: 128, cpu_cores: 1, disk_size_gb: %d}
compute_nodes:
%s`, e.cluster, e.host, f.poolPath, f.baseImage, octet, f.third, bridge, f.diskGB, nodes.String())
	e.config = filepath.Join(e.poolRoot, "cluster.yaml")
	writeFile(e.t, e.config, yaml)
}

// hpcvmBare runs the CLI without -c, as an operator whose file is gone.
func (e *env) hpcvmBare(args ...string) (int, string) {
	var out, errOut bytes.Buffer
	full := append(append([]string{}, args...), "--temporal-address", e.ts.GetFrontendHostPort(), "--namespace", e.ts.GetDefaultNamespace())
	full = append(full, e.cliConn...)
	code := cli.Main(full, strings.NewReader(""), &out, &errOut)
	e.t.Logf("hpcvm %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String() + errOut.String()
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// A network and a pool made by hand with the names, bridge and path hpcvm
// would plan are not hpcvm's: start refuses before creating anything, and
// destroy leaves them (and the operator's disk in the pool) byte-identical.
func TestHandMadeLookalikesAreNeverTouched(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	e.startWorker()
	netName, poolName := e.cluster+"-network", e.cluster+"-pool"
	bridge := "br-" + e.cluster
	octet := 200 + int(e.cluster[len(e.cluster)-1])%50
	third := int(e.cluster[len(e.cluster)-2])
	netXML := fmt.Sprintf(`<network><name>%s</name><bridge name='%s'/><ip address='10.%d.%d.1' prefix='24'/></network>`, netName, bridge, octet, third)
	writeFile(t, filepath.Join(e.poolRoot, "net.xml"), netXML)
	virsh(t, "net-define", filepath.Join(e.poolRoot, "net.xml"))
	virsh(t, "net-start", netName)
	poolDir := filepath.Join(e.poolRoot, e.cluster)
	require.NoError(t, os.MkdirAll(poolDir, 0o755))
	virsh(t, "pool-define-as", poolName, "dir", "--target", poolDir)
	virsh(t, "pool-start", poolName)
	disk := filepath.Join(poolDir, "controller-01.qcow2")
	made, err := exec.Command("qemu-img", "create", "-f", "qcow2", disk, "64M").CombinedOutput()
	require.NoError(t, err, string(made))
	// A domain of the cluster's naming, defined by hand, with no hpcvm
	// metadata: one the file plans and one it does not.
	lookalikes := []string{e.cluster + "-controller-01", e.cluster + "-by-hand"}
	for _, dom := range lookalikes {
		domXML := fmt.Sprintf(`<domain type='qemu'><name>%s</name><memory unit='MiB'>32</memory><os><type arch='x86_64'>hvm</type></os></domain>`, dom)
		writeFile(t, filepath.Join(e.poolRoot, dom+".xml"), domXML)
		virsh(t, "define", filepath.Join(e.poolRoot, dom+".xml"))
	}
	t.Cleanup(func() {
		for _, dom := range lookalikes {
			_, _ = exec.Command("virsh", "-c", libvirtURI(), "undefine", dom).CombinedOutput()
		}
		_, _ = exec.Command("virsh", "-c", libvirtURI(), "net-destroy", netName).CombinedOutput()
		_, _ = exec.Command("virsh", "-c", libvirtURI(), "net-undefine", netName).CombinedOutput()
		_, _ = exec.Command("virsh", "-c", libvirtURI(), "pool-destroy", poolName).CombinedOutput()
		_, _ = exec.Command("virsh", "-c", libvirtURI(), "pool-undefine", poolName).CombinedOutput()
	})
	before := map[string]string{
		"net":  virsh(t, "net-dumpxml", "--inactive", netName),
		"pool": virsh(t, "pool-dumpxml", "--inactive", poolName),
		"disk": fileDigest(t, disk),
	}
	for _, dom := range lookalikes {
		before[dom] = virsh(t, "dumpxml", "--inactive", dom)
	}
	same := func() {
		t.Helper()
		assert.Equal(t, before["net"], virsh(t, "net-dumpxml", "--inactive", netName))
		assert.Equal(t, before["pool"], virsh(t, "pool-dumpxml", "--inactive", poolName))
		assert.Equal(t, before["disk"], fileDigest(t, disk))
		assert.Contains(t, virsh(t, "net-info", netName), "Active:         yes")
		assert.Contains(t, virsh(t, "pool-info", poolName), "running")
		for _, dom := range lookalikes {
			assert.Equal(t, before[dom], virsh(t, "dumpxml", "--inactive", dom))
		}
	}

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitFailed, code, out)
	assert.Contains(t, out, "network "+netName+" exists but was not created by hpcvm")
	assert.Contains(t, out, "pool "+poolName)
	assert.Contains(t, out, "nothing had been created")
	same()

	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "not created by hpcvm, left untouched: network "+netName)
	assert.Contains(t, out, "not created by hpcvm, left untouched: pool "+poolName)
	assert.NotContains(t, out, "deleted volume")
	for _, dom := range lookalikes {
		assert.Contains(t, out, "not created by hpcvm, left untouched: domain "+dom, "destroy names every look-alike it leaves, domains too")
	}
	same()

	code, out = e.hpcvmBare("destroy", "--name", e.cluster, "--host", e.host, "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "not created by hpcvm, left untouched: domain "+e.cluster+"-by-hand", "also without the file")
	same()

	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "was not created by hpcvm")
	same()
}

// Every drift of cluster.yaml after start, then destroy: everything the
// cluster owns goes, whatever the file says now, and nothing else.
func TestDestroyAfterTheFileDrifted(t *testing.T) {
	drifts := map[string]func(f *clusterFile, e *env){
		"node removed":     func(f *clusterFile, _ *env) { f.computes = []string{"compute-02"} },
		"pool_path moved":  func(f *clusterFile, e *env) { f.poolPath = filepath.Join(e.poolRoot, "elsewhere") },
		"base renamed raw": func(f *clusterFile, e *env) { f.baseImage = filepath.Join(e.poolRoot, "base.img") },
		"network changed":  func(f *clusterFile, _ *env) { f.third = 7; f.bridge = "br-drifted" },
		"file gone":        nil,
	}
	for name, drift := range drifts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			f := clusterFile{computes: []string{"compute-01", "compute-02"}}
			e.writeSpec(f)
			e.startWorker()
			e.mustLeaveNothing()
			code, out := e.hpcvm("start")
			require.Equal(t, cli.ExitOK, code, out)

			if drift == nil {
				require.NoError(t, os.Remove(e.config))
				code, out = e.hpcvmBare("destroy", "--name", e.cluster, "--host", e.host, "--yes")
			} else {
				drift(&f, e)
				e.writeSpec(f)
				code, out = e.hpcvm("status")
				require.Equal(t, cli.ExitOK, code, out)
				if name == "node removed" {
					assert.Contains(t, out, "(not in file)")
				}
				code, out = e.hpcvm("destroy", "--yes")
			}
			require.Equal(t, cli.ExitOK, code, out)
			assert.Contains(t, out, "nothing of it is left")
			assert.Empty(t, e.leftovers())
			_, err := os.Stat(filepath.Join(e.poolRoot, e.cluster))
			assert.True(t, os.IsNotExist(err), "the pool directory is gone")
		})
	}
}

// A running 1+1 cluster grows by one node without touching the others;
// then a node that cannot start is rolled back alone; removing a node from
// the file renumbers nothing, and destroy --vm removes one node.
func TestScaleOutAndIn(t *testing.T) {
	e := newEnv(t)
	f := clusterFile{computes: []string{"compute-01"}}
	e.writeSpec(f)
	e.startWorker()
	e.mustLeaveNothing()
	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	ids := map[string]string{}
	for _, vm := range []string{"controller-01", "compute-01"} {
		ids[vm] = strings.TrimSpace(virsh(t, "domid", e.cluster+"-"+vm))
	}
	addresses := func() string { return virsh(t, "net-dumpxml", e.cluster+"-network") }
	hostLine := func(vm string) string {
		for _, l := range strings.Split(addresses(), "\n") {
			if strings.Contains(l, "name='"+vm+"'") || strings.Contains(l, `name="`+vm+`"`) {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	c01 := hostLine("compute-01")
	require.NotEmpty(t, c01)

	// compute-00 sorts before compute-01: it must not take its address.
	f.computes = []string{"compute-00", "compute-01"}
	e.writeSpec(f)
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "created 2 object(s), started 1 VM(s)")
	for vm, id := range ids {
		assert.Equal(t, id, strings.TrimSpace(virsh(t, "domid", e.cluster+"-"+vm)), "%s kept running, same domain ID", vm)
	}
	assert.Equal(t, c01, hostLine("compute-01"), "compute-01 keeps its lease")
	assert.NotEmpty(t, hostLine("compute-00"), "the running network got the new lease in place")
	assert.Equal(t, "running", strings.TrimSpace(virsh(t, "domstate", e.cluster+"-compute-00")))

	// A node QEMU refuses to start is rolled back alone.
	f.computes = []string{"compute-00", "compute-01", "compute-09"}
	f.cpus = map[string]int{"compute-09": 300}
	e.writeSpec(f)
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitFailed, code, out)
	assert.Contains(t, out, "compute-09 rolled back alone")
	_, err := e.lv.DomainState(e.cluster + "-compute-09")
	assert.Error(t, err, "the failed node's domain is gone")
	assert.Empty(t, hostLine("compute-09"), "its lease is gone")
	for vm, id := range ids {
		assert.Equal(t, id, strings.TrimSpace(virsh(t, "domid", e.cluster+"-"+vm)), "%s untouched", vm)
	}

	// Removing compute-00 from the file removes nothing and renumbers nothing.
	f.computes, f.cpus = []string{"compute-01"}, nil
	e.writeSpec(f)
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "no longer names: compute-00")
	assert.Equal(t, c01, hostLine("compute-01"))
	assert.Equal(t, "running", strings.TrimSpace(virsh(t, "domstate", e.cluster+"-compute-00")))

	code, out = e.hpcvm("destroy", "--yes", "--vm", "compute-00")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "deleted domain "+e.cluster+"-compute-00")
	assert.Contains(t, out, "deleted volume compute-00.qcow2")
	assert.NotContains(t, out, "still in the cluster file", "the file no longer names compute-00")
	assert.Empty(t, hostLine("compute-00"))
	for vm, id := range ids {
		assert.Equal(t, id, strings.TrimSpace(virsh(t, "domid", e.cluster+"-"+vm)), "%s untouched by destroy --vm", vm)
	}
}

// A stopped cluster starts again with its source image moved away: the
// VMs stand on the pool's copy.
func TestRestartWithoutTheSourceImage(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.poolRoot, "base.qcow2")
	out, err := exec.Command("cp", testImage(t), src).CombinedOutput()
	require.NoError(t, err, string(out))
	e.writeSpec(clusterFile{baseImage: src})
	e.startWorker()
	e.mustLeaveNothing()
	code, outS := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, outS)
	code, outS = e.hpcvm("stop", "--timeout", "1s")
	require.Equal(t, cli.ExitOK, code, outS)
	require.NoError(t, os.Rename(src, src+".moved"))
	code, outS = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, outS)
	assert.Contains(t, outS, "created 0 object(s), started 2 VM(s)")
}

// Status changes nothing: it does not start an inactive pool. A pool that
// cannot start (its directory moved away by hand) does not stop destroy
// from removing the rest.
func TestInactiveAndBrokenPools(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{})
	e.startWorker()
	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	code, out = e.hpcvm("stop", "--timeout", "1s")
	require.Equal(t, cli.ExitOK, code, out)
	pool := e.cluster + "-pool"
	virsh(t, "pool-destroy", pool)

	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "is inactive: its volumes are not listed")
	assert.Contains(t, virsh(t, "pool-info", pool), "inactive", "status started nothing")

	// Break the pool: its directory goes away behind libvirt's back. The
	// rest is removed, and of the pool only its definition was left to
	// remove; the moved directory is the operator's now and stays.
	dir := filepath.Join(e.poolRoot, e.cluster)
	require.NoError(t, os.Rename(dir, dir+".moved"))
	t.Cleanup(func() {
		_, _ = exec.Command("virsh", "-c", libvirtURI(), "pool-undefine", pool).CombinedOutput()
		_ = os.RemoveAll(dir + ".moved")
	})
	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "deleted domain "+e.cluster+"-controller-01")
	assert.Contains(t, out, "deleted network "+e.cluster+"-network")
	assert.Contains(t, out, "deleted pool "+pool)
	assert.Empty(t, e.leftovers())
	_, err := os.Stat(filepath.Join(dir+".moved", "controller-01.qcow2"))
	assert.NoError(t, err, "files hpcvm no longer sees are not hunted down")
}
