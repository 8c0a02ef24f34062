package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// uplink makes the clusters' outside world (scripts/test-uplink.sh): a
// network namespace beyond libvirtd's, with no route back to the clusters'
// networks. It returns the world's address.
func uplink(t *testing.T) string {
	t.Helper()
	// Registered first: an up that fails half-way is undone too.
	t.Cleanup(func() {
		if out, err := exec.Command("bash", "../scripts/test-uplink.sh", "down").CombinedOutput(); err != nil {
			t.Errorf("test-uplink.sh down: %v\n%s", err, out)
		}
	})
	out, err := exec.Command("bash", "../scripts/test-uplink.sh", "up").CombinedOutput()
	require.NoError(t, err, "%s", out)
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
		require.GreaterOrEqual(t, len(f), 3, line)
		out[strings.Join(f[:len(f)-1], " ")] = f[len(f)-1]
	}
	return out
}

// probingCluster starts a cluster (network.forward as given, dns_mode as
// given) whose compute-01 asks the probes probes(controller IP) once it
// has a lease, and returns the env and the guest's answers.
func probingCluster(t *testing.T, forward, dnsMode string, probes func(e *env, controller string) []string) (*env, map[string]string, string) {
	e := newEnv(t)
	e.startWorker()
	e.mustLeaveNothing()
	e.writeSpec(clusterFile{}) // for the planned addresses
	controller, err := e.plannedIP("controller-01")
	require.NoError(t, err)
	share := e.writeProbingSpec(forward, probes(e, controller)...)
	if dnsMode != "" {
		writeFile(t, e.config, strings.Replace(readFile(t, e.config), "network:\n", "network:\n  dns_mode: "+dnsMode+"\n", 1))
	}
	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	answers := probeResults(t, share)
	t.Logf("%s guest (forward %q, dns_mode %q): %v", e.cluster, forward, dnsMode, answers)
	return e, answers, out
}

// What network.forward promises, proved from inside the guests: a guest
// of a nat cluster reaches a host beyond libvirt's namespace (its replies
// come back only through libvirt's NAT); a guest of a none cluster reaches
// its own cluster and nothing beyond; no guest reaches into another
// cluster, also when dns_mode routed asks for it without the host changes
// it needs; each resolves its own nodes' names in <cluster>.local.
func TestGuestsReachWhatTheirForwardModePromises(t *testing.T) {
	world := uplink(t)

	gapped, reached, _ := probingCluster(t, "none", "", func(e *env, controller string) []string {
		return []string{"ping-wait " + controller, "ping " + world, "resolve controller-01." + e.cluster + ".local"}
	})
	gappedController, _ := gapped.plannedIP("controller-01")
	assert.Equal(t, "ok", reached["ping-wait "+gappedController], "its own cluster")
	assert.Equal(t, "unreachable", reached["ping "+world], "forward none: nothing beyond the bridge")
	assert.Equal(t, gappedController, reached["resolve controller-01."+gapped.cluster+".local"])
	var n libvirtxml.Network
	require.NoError(t, n.Unmarshal(virsh(t, "net-dumpxml", gapped.cluster+"-network")))
	assert.Nil(t, n.Forward, "forward none: a network without <forward>")
	code, out := gapped.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Forward: none (air-gapped")
	// The file no longer names a mode: the network keeps its own.
	writeFile(t, gapped.config, strings.Replace(readFile(t, gapped.config), "  forward: none\n", "", 1))
	code, out = gapped.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)

	// Targets in other clusters are up: each answered its own probes.
	gappedCompute, _ := gapped.plannedIP("compute-01")
	natted, reached, _ := probingCluster(t, "", "", func(e *env, controller string) []string { // nat, the default
		return []string{"ping-wait " + controller, "ping-wait " + world, "ping " + gappedCompute, "resolve controller-01." + e.cluster + ".local"}
	})
	natController, _ := natted.plannedIP("controller-01")
	assert.Equal(t, "ok", reached["ping-wait "+natController])
	assert.Equal(t, "ok", reached["ping-wait "+world], "forward nat: out through the host's address")
	assert.Equal(t, "unreachable", reached["ping "+gappedCompute], "an air-gapped cluster's guest")
	assert.Equal(t, natController, reached["resolve controller-01."+natted.cluster+".local"])
	n = libvirtxml.Network{}
	require.NoError(t, n.Unmarshal(virsh(t, "net-dumpxml", natted.cluster+"-network")))
	require.NotNil(t, n.Forward)
	assert.Equal(t, "nat", n.Forward.Mode)

	// dns_mode routed needs host changes, which are off: the start warns
	// with the steps to make them by hand, and the cluster stays isolated
	// from the other nat cluster.
	nattedCompute, _ := natted.plannedIP("compute-01")
	routed, reached, out := probingCluster(t, "nat", "routed", func(e *env, controller string) []string {
		return []string{"ping-wait " + world, "ping " + nattedCompute}
	})
	assert.Contains(t, out, "Cross-cluster routing requested for "+routed.cluster+" but host changes are disabled; the cluster runs isolated")
	assert.Contains(t, out, "sudo sysctl -w net.ipv4.ip_forward=1")
	assert.Equal(t, "ok", reached["ping-wait "+world])
	assert.Equal(t, "unreachable", reached["ping "+nattedCompute], "another nat cluster's guest")

	// With host_configuration allowing it, two routed clusters reach each
	// other, and still nothing else: not the nat cluster, not the routed
	// one that was not allowed. They keep their way out.
	alpha, beta := newEnv(t), newEnv(t)
	var computes []string
	for _, e := range []*env{alpha, beta} {
		e.startWorker()
		e.mustLeaveNothing()
		e.writeSpec(clusterFile{})
		ip, err := e.plannedIP("compute-01")
		require.NoError(t, err)
		computes = append(computes, ip)
	}
	routedCompute, _ := routed.plannedIP("compute-01")
	// A root user in alpha's guest sends with a source that is not its
	// cluster's: to the other routed cluster, and off the host.
	const spoofed = "198.18.99.7"
	shares := []string{
		alpha.writeProbingSpec("", "ping-wait "+computes[1], "ping "+nattedCompute, "ping "+routedCompute, "ping-wait "+world,
			"ping-as "+spoofed+" "+computes[1], "ping-as "+spoofed+" "+world),
		beta.writeProbingSpec("", "ping-wait "+computes[0]),
	}
	for _, e := range []*env{alpha, beta} {
		spec := strings.Replace(readFile(t, e.config), "network:\n", "network:\n  dns_mode: routed\n", 1)
		writeFile(t, e.config, spec+"host_configuration:\n  network:\n    enable_cross_cluster_routing: true\n")
	}
	// Confirmation is asked (the plan's default): no answer, no run.
	code, out = alpha.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "host_configuration lets hpcvm change host "+alpha.host+" outside libvirt; this start will:")
	assert.Contains(t, out, "host changes not confirmed; nothing was submitted")
	assert.Empty(t, alpha.leftovers())
	subnets := map[*env]string{}
	for i, e := range []*env{alpha, beta} {
		subnets[e] = computes[i][:strings.LastIndex(computes[i], ".")] + ".0/24"
	}
	for _, e := range []*env{alpha, beta} {
		code, out = e.hpcvm("start", "--yes")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, "changed host "+e.host+" outside libvirt")
		assert.Contains(t, out, "- add filter rule of cluster "+e.cluster+": traffic from "+subnets[e]+" on bridge "+cluster.BridgeName(e.cluster, "")+" may go to a routed cluster")
		assert.Contains(t, out, "- add filter rule of cluster "+e.cluster+": traffic from bridge "+cluster.BridgeName(e.cluster, "")+" with a source outside "+subnets[e]+" is dropped (anti-spoofing)")
		assert.NotContains(t, out, "Cross-cluster routing requested", "no manual steps for what hpcvm made")
	}
	reached = probeResults(t, shares[0])
	t.Logf("%s guest (routed, allowed): %v", alpha.cluster, reached)
	assert.Equal(t, "ok", reached["ping-wait "+computes[1]], "the other routed cluster's guest")
	assert.Equal(t, "unreachable", reached["ping "+nattedCompute], "a nat cluster's guest")
	assert.Equal(t, "unreachable", reached["ping "+routedCompute], "a routed cluster that was not allowed to join")
	assert.Equal(t, "ok", reached["ping-wait "+world], "still out through NAT: the world has no route back but to the host's address")
	assert.Equal(t, "unreachable", reached["ping-as "+spoofed+" "+computes[1]], "a spoofed source does not reach the other routed cluster")
	assert.Equal(t, "unreachable", reached["ping-as "+spoofed+" "+world], "nor off the host")
	assert.GreaterOrEqual(t, droppedAsSpoofed(t, alpha.cluster), 4, "alpha's anti-spoofing rule dropped the guest's spoofed pings (2 each)")
	reached = probeResults(t, shares[1])
	t.Logf("%s guest (routed, allowed): %v", beta.cluster, reached)
	assert.Equal(t, "ok", reached["ping-wait "+computes[0]], "and back")
	rules := iptables(t, "-t", "nat", "-S", "HPCVM_ROUTED")
	for _, e := range []*env{alpha, beta} {
		assert.Contains(t, rules, "hpcvm-routed:"+e.cluster, "traffic between members is not masqueraded")
	}

	code, out = alpha.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Routing: routed (reaches "+beta.cluster+";")
	// A start whose file no longer asks for the routing is refused: start
	// does not undo host changes, destroy does.
	routedSpec := readFile(t, alpha.config)
	writeFile(t, alpha.config, strings.Replace(routedSpec, "  dns_mode: routed\n", "", 1))
	code, out = alpha.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "cluster "+alpha.cluster+" is one of host "+alpha.host+"'s routed clusters")
	writeFile(t, alpha.config, routedSpec)

	// The audit log says who changed what, when, in which run.
	code, out = alpha.hpcvm("audit")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "add nat rule of cluster "+alpha.cluster+": traffic from "+subnets[alpha]+" to a routed cluster is not masqueraded")
	assert.Contains(t, out, "$ iptables -w -t filter -A HPCVM_ROUTED_TO -d "+subnets[alpha]+" -o "+cluster.BridgeName(alpha.cluster, "")+" -m comment --comment hpcvm-routed:"+alpha.cluster+" -j ACCEPT")
	assert.Contains(t, out, "$ iptables -w -t nat -A HPCVM_ROUTED_TO -d "+subnets[alpha]+" -o "+cluster.BridgeName(alpha.cluster, "")+" -m comment --comment hpcvm-routed:"+alpha.cluster+" -j ACCEPT")
	assert.NotContains(t, out, "pending", "each change once, with its outcome")
	assert.Contains(t, out, "[netns "+testNetns+"]")
	assert.Contains(t, out, "hpcvm-cluster-"+alpha.cluster)
	assert.NotContains(t, out, beta.cluster, "only this cluster's records")

	// Destroy undoes each cluster's changes; the last one takes the chains.
	code, out = alpha.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "undid host change: remove filter rule of cluster "+alpha.cluster+": traffic of routed clusters may go to "+subnets[alpha]+" on bridge "+cluster.BridgeName(alpha.cluster, ""))
	rules = iptables(t, "-S")
	assert.NotContains(t, rules, "hpcvm-routed:"+alpha.cluster)
	assert.Contains(t, rules, "hpcvm-routed:"+beta.cluster)
	code, out = beta.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "undid host change: remove chain filter HPCVM_ROUTED (no routed cluster left)")
	code, out = alpha.hpcvm("audit", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, `"action": "revert"`)
	assert.Contains(t, out, `"requested_by": "`)
	for _, e := range []*env{alpha, beta} {
		assert.Empty(t, e.leftovers())
	}

	// The running cluster's forwarding is not changed by an edited file.
	writeFile(t, natted.config, strings.Replace(readFile(t, natted.config), "network:\n", "network:\n  forward: none\n", 1))
	code, out = natted.hpcvm("start")
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, `network.forward is "none", but the cluster's network `+natted.cluster+`-network was created with forward "nat"`)

	for _, e := range []*env{routed, natted, gapped} {
		code, out = e.hpcvm("destroy", "--yes")
		require.Equal(t, cli.ExitOK, code, out)
		assert.Empty(t, e.leftovers())
	}
}

// droppedAsSpoofed is how many packets the cluster's anti-spoofing rule
// dropped: the DROP rule of HPCVM_ROUTED tagged with the cluster.
func droppedAsSpoofed(t *testing.T, clusterName string) int {
	t.Helper()
	for _, line := range strings.Split(iptables(t, "-t", "filter", "-L", "HPCVM_ROUTED", "-v", "-x", "-n"), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "DROP" && strings.Contains(line, "hpcvm-routed:"+clusterName+" ") {
			n, err := strconv.Atoi(f[0])
			require.NoError(t, err, line)
			return n
		}
	}
	t.Fatalf("no anti-spoofing rule of cluster %s in HPCVM_ROUTED", clusterName)
	return 0
}

// iptables runs iptables where the test libvirtd's bridges are.
func iptables(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", testNetns, "iptables", "-w"}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// dns_mode service_discovery with the host change allowed: the registry
// file lists every node with its planned address, is refused outside the
// worker's --discovery-root and when a file of its name is not hpcvm's,
// and destroy removes it; the audit log has both.
func TestServiceDiscoveryRecordIsWrittenAndRemoved(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	e.mustLeaveNothing()
	e.writeSpec(clusterFile{computes: []string{"compute-01", "compute-02"}})
	dir, err := os.MkdirTemp("/var/tmp", "hpcvm-consul-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	spec := strings.Replace(readFile(t, e.config), "network:\n", "network:\n  dns_mode: service_discovery\n", 1)
	withDir := func(d string) string {
		return spec + "host_configuration:\n  require_confirmation: false\n  network:\n    enable_service_discovery: true\n    service_discovery: {config_dir: " + d + "}\n"
	}
	record := filepath.Join(dir, "hpcvm-"+e.cluster+".json")

	// Outside the worker's --discovery-root: refused before anything exists.
	writeFile(t, e.config, withDir("/etc/hpcvm-not-allowed"))
	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "config_dir /etc/hpcvm-not-allowed is outside what the worker on host")
	assert.Empty(t, e.leftovers())

	// A hand-made file of the cluster's name: refused, untouched.
	writeFile(t, e.config, withDir(dir))
	writeFile(t, record, `{"services":[{"name":"mine"}]}`)
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "is not hpcvm's registry file of cluster "+e.cluster)
	assert.Empty(t, e.leftovers())
	require.NoError(t, os.Remove(record))

	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "service discovery record of cluster "+e.cluster+" ("+record+")")
	assert.NotContains(t, out, "Service discovery requested", "no manual steps for what hpcvm made")
	var doc struct {
		Services []struct {
			Name, Address string
			Tags          []string
			Meta          map[string]string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(readFile(t, record)), &doc))
	require.Len(t, doc.Services, 3)
	for _, s := range doc.Services {
		ip, err := e.plannedIP(s.Meta["hpcvm_vm"])
		require.NoError(t, err)
		assert.Equal(t, ip, s.Address, s.Meta["hpcvm_vm"])
		assert.Equal(t, e.cluster, s.Name, "the cluster is the service: <vm>.<cluster>.service.consul")
		assert.Contains(t, s.Tags, s.Meta["hpcvm_vm"])
	}
	// Again: the record is as it should be, nothing is written.
	code, out = e.hpcvm("start")
	require.Equal(t, cli.ExitOK, code, out)
	assert.NotContains(t, out, "changed host")

	// A destroyed VM leaves the record; the others stay in it.
	code, out = e.hpcvm("destroy", "--vm", "compute-02", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "undid host change: service discovery record of cluster "+e.cluster)
	assert.Contains(t, out, "note: compute-02 is still in the cluster file, so the next `hpcvm start` creates it again")
	require.NoError(t, json.Unmarshal([]byte(readFile(t, record)), &doc))
	var vms []string
	for _, s := range doc.Services {
		vms = append(vms, s.Meta["hpcvm_vm"])
	}
	assert.ElementsMatch(t, []string{"controller-01", "compute-01"}, vms)

	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "undid host change: service discovery record of cluster "+e.cluster)
	assert.NoFileExists(t, record)
	code, out = e.hpcvm("audit")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "$ write "+record)
	assert.Contains(t, out, "$ remove "+record)
	assert.Empty(t, e.leftovers())
}
