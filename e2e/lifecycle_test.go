package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/templates"
	"github.com/hpcvm/hpcvm/internal/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClusterLifecycle(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "created 9 object(s), started 3 VM(s)") // network, pool, base, 3 volumes, 3 domains
	// Its XML trace: the 9 documents handed libvirt, and the 3 starts.
	assert.Contains(t, out, "9 XML operations (9 successful, 0 failed); 3 other libvirt call(s) without a document")
	m := e.readTrace(out)
	assert.Equal(t, "start", m.Operation)
	assert.Equal(t, "completed", m.Result)
	assert.Equal(t, e.host, m.Host)
	require.Len(t, m.FileListing, 9)
	assert.Equal(t, fmt.Sprintf("001_network_create_%s-network_SUCCESS.xml", e.cluster), m.FileListing[0])
	doc, err := os.ReadFile(filepath.Join(e.traceDir(), m.TraceFolder, fmt.Sprintf("%03d_domain_define_%s-compute-02_SUCCESS.xml", e.traceSequence(m, "domain", "define", e.cluster+"-compute-02"), e.cluster)))
	require.NoError(t, err)
	assert.Contains(t, string(doc), "<name>"+e.cluster+"-compute-02</name>")
	// The Ansible inventory start wrote, as Ansible reads it; and the
	// one `hpcvm inventory -o yaml` prints.
	inventoryFile := os.Getenv("HPCVM_INVENTORY")
	assert.Contains(t, out, "Ansible inventory: "+inventoryFile+" (3 host(s))")
	code, yamlOut := e.hpcvm("inventory", "-o", "yaml")
	require.Equal(t, cli.ExitOK, code, yamlOut)
	yamlFile := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(yamlFile, []byte(yamlOut), 0o644))
	for _, file := range []string{inventoryFile, yamlFile} {
		list := ansibleInventoryList(t, file)
		hostvars := list["_meta"].(map[string]any)["hostvars"].(map[string]any)
		require.Len(t, hostvars, 3, file)
		for _, vm := range []string{"controller-01", "compute-01", "compute-02"} {
			ip, err := e.plannedIP(vm)
			require.NoError(t, err)
			assert.Equal(t, ip, hostvars[vm].(map[string]any)["ansible_host"], "%s in %s", vm, file)
		}
		assert.ElementsMatch(t, []any{"controller-01"}, list["controllers"].(map[string]any)["hosts"])
	}

	// Each step carries a summary naming its object, for the Web UI.
	assert.Contains(t, e.stepSummaries(api.StartClusterName), "define domain "+e.cluster+"-compute-02")
	// The run's progress says which VM each step worked for: what the
	// live view's line per VM is made of.
	stepVMs := map[string]string{}
	for _, s := range e.progress() {
		stepVMs[s.Name] = s.VM
	}
	assert.Equal(t, "compute-02", stepVMs["start "+e.cluster+"-compute-02"])
	assert.Equal(t, "controller-01", stepVMs["volume controller-01.qcow2"])
	vm, ok := stepVMs["network "+e.cluster+"-network"]
	assert.True(t, ok, "the network step is in the progress")
	assert.Equal(t, "", vm, "the cluster's shared objects belong to no VM")

	// Every object, checked through libvirt itself.
	net, err := e.lv.LookupNetwork(e.cluster + "-network")
	require.NoError(t, err)
	assert.True(t, net.Active)
	pool, err := e.lv.LookupPool(e.cluster + "-pool")
	require.NoError(t, err)
	assert.True(t, pool.Active)
	assert.Equal(t, e.poolRoot+"/"+e.cluster, pool.Path)
	vols, err := e.lv.ListVolumes(e.cluster + "-pool")
	require.NoError(t, err)
	names := map[string]string{}
	for _, v := range vols {
		names[v.Name] = v.BackingPath
	}
	assert.Len(t, names, 4)
	for _, vm := range []string{"controller-01", "compute-01", "compute-02"} {
		assert.Equal(t, pool.Path+"/"+e.cluster+"-base.qcow2", names[vm+".qcow2"], "volume of %s is copy-on-write on the base", vm)
		dom := e.cluster + "-" + vm
		st, err := e.lv.DomainState(dom)
		require.NoError(t, err)
		assert.Equal(t, "running", string(st))
		meta, err := e.lv.DomainMetadata(dom, templates.MetadataNamespace)
		require.NoError(t, err)
		owner, err := templates.ParseOwner(meta)
		require.NoError(t, err)
		assert.Equal(t, e.cluster, owner.Cluster)
		assert.Equal(t, vm, owner.VM)
	}
	assert.Contains(t, virsh(t, "net-dumpxml", e.cluster+"-network"), "controller-01")

	// A second start of a running cluster changes nothing.
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "created 0 object(s), started 0 VM(s)")
	assert.NotContains(t, out, "kept as it is", "libvirt's reading of hpcvm's own domains differs in no fixed part")
	code, out = e.hpcvm("plan")
	require.Equal(t, cli.ExitOK, code, out)
	assert.NotContains(t, out, "kept as it is")

	code, out = e.hpcvm("status", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	var st cli.Status
	require.NoError(t, json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &st))
	assert.Equal(t, "running", st.State)
	require.Len(t, st.VMs, 3)
	assert.Equal(t, "running", st.VMs[0].State)
	require.NotNil(t, st.LastOperation, "the last operation, its result and time")
	assert.Equal(t, api.StartClusterName, st.LastOperation.Type)
	assert.Equal(t, "completed", st.LastOperation.Result)
	for _, vm := range st.VMs {
		assert.Positive(t, vm.VolumeAllocatedGB, vm.Name)
		assert.Equal(t, 128, vm.MemoryMB, "%s: memory as libvirt has it", vm.Name)
	}

	// The booted guests take their static leases from the cluster network,
	// and status shows what each holds beside what was planned.
	leases := e.waitForLeases(3, 90*time.Second)
	assert.Contains(t, leases, "10.")
	code, out = e.hpcvm("status", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	st = cli.Status{}
	require.NoError(t, json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &st))
	for _, vm := range st.VMs {
		assert.Equal(t, []string{vm.IP}, vm.LiveIPs, "%s holds its planned address", vm.Name)
	}

	// Stop keeps the disks; the booted guests power off on the ACPI button.
	code, out = e.hpcvm("stop", "--timeout", "60s")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "3 shut down cleanly, 0 forced off")
	for _, vm := range []string{"controller-01", "compute-01", "compute-02"} {
		st, err := e.lv.DomainState(e.cluster + "-" + vm)
		require.NoError(t, err)
		assert.Equal(t, "shut off", string(st))
	}
	vols, err = e.lv.ListVolumes(e.cluster + "-pool")
	require.NoError(t, err)
	assert.Len(t, vols, 4, "stop keeps every disk")

	// Start of a stopped cluster only starts it; --wait-ip waits for the
	// guests to boot and take their addresses.
	code, out = e.hpcvm("start", "--wait-ip", "--wait-ip-timeout", "150s")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "created 0 object(s), started 3 VM(s)")
	assert.Contains(t, out, "every VM holds an address")

	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Status: running")
	assert.Contains(t, out, "compute-02")

	// -o json: one document for scripts, no progress.
	code, out = e.hpcvm("destroy", "--yes", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
	var report struct {
		cli.RunReport
		Result api.DestroyResult `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report), "the output is one JSON document: %s", out)
	assert.Equal(t, "destroy", report.Operation)
	assert.Equal(t, e.cluster, report.Cluster)
	assert.Equal(t, 0, report.ExitCode)
	assert.Len(t, report.Result.Deleted, 9)
	require.NotNil(t, report.Trace)
	assert.DirExists(t, report.Trace.Folder)

	// Destroy is idempotent.
	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "deleted 0 object(s)")

	// The runs can be found by cluster and operation (search attributes),
	// and list shows the cluster with the state its last run left.
	starts := e.waitForRuns(fmt.Sprintf("HpcvmCluster = '%s' AND HpcvmOperation = 'start' AND HpcvmHost = '%s'", e.cluster, e.host), 3)
	assert.Len(t, starts, 3)
	var listed []cli.ClusterEntry
	require.Eventually(t, func() bool {
		code, out = e.hpcvm("list", "-o", "json")
		require.Equal(t, cli.ExitOK, code, out)
		listed = nil
		require.NoError(t, json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &listed))
		for _, c := range listed {
			if c.Cluster == e.cluster && c.Operation == "destroy" {
				return true
			}
		}
		return false
	}, 15*time.Second, 200*time.Millisecond, "list shows the destroy: %s", out)
	for _, c := range listed {
		if c.Cluster == e.cluster {
			assert.Equal(t, "destroyed", c.State)
			assert.Equal(t, e.host, c.Host)
			assert.Equal(t, "completed", c.Result)
		}
	}
}

// A start whose second compute domain libvirt refuses leaves nothing behind.
func TestFailedStartLeavesNothingBehind(t *testing.T) {
	e := newEnv(t)
	// More vCPUs than the Q35 machine supports: libvirt defines the domain,
	// QEMU refuses to start it.
	e.writeConfig("300")
	e.startWorker()
	e.mustLeaveNothing()

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitFailed, code, out)
	assert.Contains(t, out, e.cluster+"-compute-02")
	assert.Contains(t, out, "rolled back")
	assert.Contains(t, out, "network "+e.cluster+"-network")
	assert.Empty(t, e.leftovers())

	// The trace shows the domain libvirt refused, its document, and the
	// rollback that followed.
	assert.Contains(t, out, "1 failed)")
	m := e.readTrace(out)
	assert.Equal(t, "failed", m.Result)
	var failedStart, undone []string
	for _, r := range append(append([]trace.Record{}, m.XMLOperations...), m.OtherCalls...) {
		if !r.Success {
			failedStart = append(failedStart, r.Operation+" "+r.TargetName)
			require.NotNil(t, r.XMLFile)
			assert.Equal(t, fmt.Sprintf("%03d_domain_define_%s-compute-02_FAILED.xml", r.Sequence, e.cluster), *r.XMLFile)
			require.NotNil(t, r.Error)
			assert.Contains(t, *r.Error, "Maximum CPUs")
		}
		if r.Compensation {
			undone = append(undone, r.Operation+" "+r.TargetName)
		}
	}
	assert.Equal(t, []string{"define " + e.cluster + "-compute-02"}, failedStart)
	assert.Contains(t, undone, "delete "+e.cluster+"-network")
	assert.Contains(t, undone, "undefine "+e.cluster+"-controller-01")
	assert.Contains(t, e.stepSummaries(api.StartClusterName), "undo: delete network "+e.cluster+"-network")
}

func TestBadInputCreatesNothing(t *testing.T) {
	e := newEnv(t)
	e.writeConfig("")
	e.startWorker()
	e.mustLeaveNothing()

	// A base image that is not on the host fails the host checks.
	cfg := strings.Replace(readFile(t, e.config), testImage(t), "/var/tmp/no-such-image.qcow2", 1)
	writeFile(t, e.config, cfg)
	code, out := e.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "does not exist on host")
	assert.Empty(t, e.leftovers())

	// A bad field is refused before anything is submitted.
	writeFile(t, e.config, strings.Replace(cfg, "memory_mb: 128", "memory_mb: 1", 1))
	code, out = e.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "controller.memory_mb")
	assert.Contains(t, out, "nothing was submitted")
}
