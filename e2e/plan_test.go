package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validate and plan run every check start runs and say what start would
// do, through the host's worker, and create nothing.
func TestValidateAndPlanCreateNothing(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("validate")
	require.Equal(t, cli.ExitOK, code, out)
	for _, want := range []string{"✓ file:", "✓ names:", "✓ host:", "✓ hardware: pc-q35-", "✓ paths:", "✓ base image:", "✓ disk sizes:", "✓ pool space:", "✓ xml: 9 documents rendered", "can start on host " + e.host} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "✗")
	assert.Empty(t, e.leftovers())

	code, out = e.hpcvm("plan", "--xml")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "create  network  "+e.cluster+"-network")
	assert.Contains(t, out, "create  domain   "+e.cluster+"-compute-02")
	assert.Equal(t, 3, strings.Count(out, "<domain type=\"qemu\">"), "every domain's XML")
	assert.Contains(t, out, "<network>")
	assert.Empty(t, e.leftovers())

	code, out = e.hpcvm("plan", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	var r api.PlanReport
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	assert.True(t, r.OK())
	assert.Len(t, r.Objects, 9)
	assert.Empty(t, r.Documents, "documents only with --xml")
	assert.Equal(t, "qemu", r.Plan.Machine.DomainType)
	assert.NotEmpty(t, r.Host.GuestCPU["qemu"].Models)

	// Once the cluster runs, start would keep everything; once stopped, it
	// would start the domains.
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	code, out = e.hpcvm("plan")
	require.Equal(t, cli.ExitOK, code, out)
	assert.NotContains(t, out, "create ")
	assert.Contains(t, out, "keep    domain   "+e.cluster+"-controller-01")
	code, out = e.hpcvm("validate")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "✓ existing domains: 3 match the file")

	// A changed VM is what start would refuse; plan says so.
	cfg := readFile(t, e.config)
	writeFile(t, e.config, strings.Replace(cfg, "controller: {count: 1, memory_mb: 128,", "controller: {count: 1, memory_mb: 256,", 1))
	code, out = e.hpcvm("plan")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "refused  domain   "+e.cluster+"-controller-01")
	assert.Contains(t, out, "✗ existing domains: "+e.cluster+"-controller-01: memory is")
	writeFile(t, e.config, cfg)
	code, out = e.hpcvm("stop", "--timeout", "1s") // the guests need not shut down cleanly here
	require.Equal(t, cli.ExitOK, code, out)
	code, out = e.hpcvm("plan")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "start   domain   "+e.cluster+"-controller-01")
}

func TestValidateNamesWhatTheHostCannotDo(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.withAcceleration(`      cpu_model: host-passthrough
      enable_nested: true
      performance: {enable_hugepages: true}
`, 1)
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("validate")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, `✗ hardware: cluster.hardware.acceleration.cpu_model "host-passthrough" is not offered by TCG on this host`)
	assert.Contains(t, out, "✗ hardware: cluster.hardware.acceleration.enable_nested is true, but nested virtualisation needs KVM and these VMs run under TCG")
	assert.Contains(t, out, "✗ hardware: cluster.hardware.acceleration.performance: the VMs to start need 192 free 2M hugepages (384 MiB), but the host has 0 free")
	assert.Contains(t, out, "✓ base image:", "the other checks still run")
	assert.Contains(t, out, "cannot start on host "+e.host+" as written: 3 check(s) failed; nothing was created")
	assert.Empty(t, e.leftovers())

	// A file that fails its own checks is shown line by line; the host is
	// not asked.
	writeFile(t, e.config, strings.Replace(readFile(t, e.config), "memory_mb: 128", "memory_mb: 1", 1))
	code, out = e.hpcvm("validate")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "✗ file: controller.memory_mb")
	assert.Contains(t, out, "the host was not asked")
}

// A cluster whose network range another network of the host already holds
// is refused by validate, naming that network, and start refuses it before
// anything exists (it used to fail at the network step and roll back).
func TestValidateRefusesARangeInUse(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()
	ip, err := e.plannedIP("controller-01")
	require.NoError(t, err)
	subnet := ip[:strings.LastIndex(ip, ".")]
	other := e.cluster + "-handmade"
	netXML := fmt.Sprintf(`<network><name>%s</name><bridge name='br-hm-%s'/><ip address='%s.129' prefix='25'/></network>`, other, e.cluster[len(e.cluster)-6:], subnet)
	file := filepath.Join(t.TempDir(), "net.xml")
	writeFile(t, file, netXML)
	virsh(t, "net-define", file)
	t.Cleanup(func() { _, _ = exec.Command("virsh", "-c", libvirtURI(), "net-undefine", other).CombinedOutput() })

	code, out := e.hpcvm("validate")
	assert.NotEqual(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "✗ network range")
	assert.Contains(t, out, subnet+".128/25 of libvirt network "+other)

	code, out = e.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "overlaps "+subnet+".128/25 of libvirt network "+other)
	assert.Equal(t, []string{"net-list: " + other}, e.leftovers(), "refused before anything was created: only the hand-made network is there")

	// A network without an address that holds the cluster's bridge name.
	virsh(t, "net-undefine", other)
	code, out = e.hpcvm("plan", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	var rep api.PlanReport
	require.NoError(t, json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep))
	bridge := rep.Plan.Network.Bridge
	require.NotEmpty(t, bridge)
	writeFile(t, file, fmt.Sprintf(`<network><name>%s</name><bridge name='%s'/></network>`, other, bridge))
	virsh(t, "net-define", file)
	code, out = e.hpcvm("validate")
	assert.NotEqual(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "✗ network range")
	assert.Contains(t, out, "the cluster network's bridge "+bridge+" is taken on host "+e.host+" by libvirt network "+other)
}
