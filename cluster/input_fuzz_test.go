package cluster

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// parseSeeds are the seed corpus of FuzzParse: realistic files, and files
// written to break a reader. `go test` runs every seed, so each is also a
// regression test; crashers the fuzzer found are at the end.
var parseSeeds = []string{
	minimalYAML,
	labYAML,
	"",
	"---\n",
	"~\n",
	"# only a comment\n",
	// Realistic: every section, defaults left out here and there.
	`
global: {}
cluster:
  name: "hpc-cluster"
  host: hv1
  storage: {pool_path: /var/lib/libvirt/images, pool_type: dir, base_image: /var/lib/libvirt/images/hpc-base.qcow2}
  hardware:
    acceleration:
      enable_kvm: true
      enable_nested: false
      cpu_model: host-passthrough
      cpu_features: ["+vmx", "+svm", "+sse4.1"]
      numa_topology: null
      cpu_topology: {sockets: 1, cores: 4, threads: 1}
      performance: {enable_hugepages: false, hugepage_size: "2M"}
    pcie_passthrough: {enabled: false}
network:
  network_range: 192.168.100.0/24
  bridge_name: br-hpc-cluster
  gateway_ip: 192.168.100.1
  dhcp_start: 192.168.100.10
  dhcp_end: 192.168.100.254
  dns_mode: isolated
  dns_servers: ["8.8.8.8", "1.1.1.1"]
  static_leases: {controller-01: 192.168.100.10, compute-01: 192.168.100.11}
host_configuration: {require_confirmation: true, network: {enable_host_dns_integration: false}}
controller: {count: 1, memory_mb: 4096, cpu_cores: 2, disk_size_gb: 50}
compute_nodes:
  - name: compute-01
    memory_mb: 8192
    cpu_cores: 4
    disk_size_gb: 100
    pcie_passthrough: {enabled: true, devices: [{pci_address: "0000:65:00.0", iommu_group: 1}]}
  - name: compute-02
`,
	labYAML + "controller: {count: 3}\ncompute_nodes: [{name: a}, {name: b}, {name: c}]\n",
	labYAML + "network: {network_range: 10.0.0.0/29}\ncompute_nodes: [{name: a}, {name: b}]\n",
	labYAML + "network: {network_range: 10.0.0.0/29}\ncompute_nodes: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}, {name: f}]\n",
	labYAML + "network: {network_range: 10.0.0.0/8, dhcp_start: 10.0.0.2, dhcp_end: 10.0.0.3}\ncompute_nodes: [{name: a}]\n",
	labYAML + "network: {dhcp_start: 192.168.100.10, dhcp_end: 192.168.100.11, static_leases: {controller-01: 192.168.100.11}}\ncompute_nodes: [{name: a}]\n",
	// Hostile: zeros, negatives, extremes.
	labYAML + "controller: {count: -1}\n",
	labYAML + "controller: {count: 0, memory_mb: 0, cpu_cores: 0, disk_size_gb: 0}\n",
	labYAML + "controller: {count: 9223372036854775807}\n",
	labYAML + "controller: {count: -9223372036854775808}\n",
	labYAML + "controller: {count: 18446744073709551615}\n",
	labYAML + "controller: {count: 1e300, memory_mb: -.inf, cpu_cores: .nan}\n",
	labYAML + "compute_nodes: [{name: a, memory_mb: -1, cpu_cores: -1, disk_size_gb: -1}]\n",
	"cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}, hardware: {acceleration: {cpu_topology: {sockets: -1, cores: 0, threads: 99999}}}}\n",
	// Hostile: wrong shapes everywhere.
	"- cluster\n- network\n",
	"just text\n",
	"cluster: [\n",
	"cluster: 5\nnetwork: []\ncontroller: x\ncompute_nodes: {a: b}\nglobal: 7\n",
	labYAML + "compute_nodes: [null, 7, [], {name: [x]}, {name: {a: b}}]\n",
	labYAML + "network: {static_leases: {~: 1, 7: [], controller-01: {}, \"a.b\": x}}\n",
	labYAML + "network: {dns_servers: [~, 1, [], {}], static_leases: null}\n",
	labYAML + "global: {a: {b: {c: [1, {d: .nan}]}}, 1: 2, true: false, ~: ~}\n",
	labYAML + "global: {Key: 1, kEY: 2}\n",
	"cluster: {name: lab, Name: lab, NAME: lab}\n",
	labYAML + "controller: {count: !!binary aGVsbG8=, memory_mb: !!timestamp 2001-12-14}\n",
	// Hostile: YAML machinery.
	"a: &a [*a]\n",
	labYAML + "global: {defaults: &b {count: 2}}\ncontroller:\n  <<: *b\n  memory_mb: 1024\n",
	"x: &x [1, 2]\ny: &y [*x, *x, *x, *x]\nz: [*y, *y, *y, *y]\n",
	"cluster: {name: lab}\ncluster: {name: lab2}\n",
	"\tcluster:\n",
	"cluster: {name: \"\\x00\\u202e\", host: \"\\n\", storage: {base_image: \"/\\x00\"}}\n",
	strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n",
	"global: " + strings.Repeat("{a: ", 100) + "1" + strings.Repeat("}", 100) + "\n",
	labYAML + "controller:\n  " + strings.Repeat("x", 1000) + ": 1\n",
	"\xff\xfe\x00c\x00l\x00",
}

// FuzzParse checks that no file makes Parse panic, that every refusal says
// where, what and what is accepted, and that every file Parse accepts is a
// Spec that validates, plans, and survives the trip to the workflow as JSON.
// Run it longer with: go test -run XXX -fuzz FuzzParse -fuzztime 60s ./cluster/
func FuzzParse(f *testing.F) {
	for _, seed := range parseSeeds {
		f.Add([]byte(seed))
	}
	if example, err := os.ReadFile("../examples/cluster.yaml"); err == nil {
		f.Add(example)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if err := Validate(spec); err != nil {
			t.Fatalf("Parse accepted a spec that Validate refuses: %v", err)
		}
		plan, err := NewPlan(spec)
		if err != nil {
			t.Fatalf("Parse accepted a spec that cannot be planned: %v", err)
		}
		sent, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("Parse accepted a spec that cannot travel to the workflow as JSON: %v", err)
		}
		var received Spec
		if err := json.Unmarshal(sent, &received); err != nil {
			t.Fatalf("the workflow cannot read the spec: %v", err)
		}
		if err := Validate(received); err != nil {
			t.Fatalf("the workflow refuses the spec Parse accepted: %v", err)
		}
		replanned, err := NewPlan(received)
		if err != nil {
			t.Fatalf("the workflow cannot plan the spec Parse accepted: %v", err)
		}
		if a, b := mustJSON(t, plan), mustJSON(t, replanned); a != b {
			t.Fatalf("the workflow plans another cluster than the CLI:\n%s\n%s", a, b)
		}
	})
}

// FuzzValidateSpecJSON checks the other way in: a Spec the workflow receives
// as JSON from any client. Validate must not panic (nor allocate per unit of
// a huge count), and whatever it accepts must plan.
func FuzzValidateSpecJSON(f *testing.F) {
	for _, seed := range parseSeeds[:8] {
		if s, err := Parse([]byte(seed)); err == nil {
			f.Add(mustJSON(f, s))
		}
	}
	f.Add(`{"cluster":{"name":"lab","host":"hv1","storage":{"pool_path":"/p","pool_type":"dir","base_image":"/b.qcow2"}},"network":{"network_range":"192.168.100.0/24","gateway_ip":"192.168.100.1","dhcp_start":"192.168.100.10","dhcp_end":"192.168.100.254","dns_mode":"isolated"},"controller":{"count":-1,"memory_mb":0,"cpu_cores":0,"disk_size_gb":0}}`)
	f.Add(`{"controller":{"count":1099511627776},"network":{"network_range":"10.0.0.0/32","static_leases":{"controller-01":"10.0.0.1"}}}`)
	f.Fuzz(func(t *testing.T, data string) {
		var s Spec
		if json.Unmarshal([]byte(data), &s) != nil {
			return
		}
		err := Validate(s)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if _, err := NewPlan(s); err != nil {
			t.Fatalf("Validate accepted a spec that cannot be planned: %v", err)
		}
	})
}

// checkRefusal fails the test unless err is one of the documented error
// types and every problem in it names its setting, what is wrong and what
// is accepted instead.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var in *InputError
	var problems ValidationError
	switch {
	case errors.As(err, &in):
		if in.Msg == "" {
			t.Fatalf("an InputError without a message")
		}
	case errors.As(err, &problems):
		if len(problems) == 0 {
			t.Fatalf("an empty ValidationError")
		}
		for _, p := range problems {
			if p.Path == "" || p.Problem == "" || p.Want == "" {
				t.Fatalf("a problem that does not say where, what or what is accepted: %#v", p)
			}
			if strings.ContainsAny(p.Error(), "\n\r") {
				t.Fatalf("a problem that spans lines: %q", p.Error())
			}
		}
	default:
		t.Fatalf("an error of type %T: %v", err, err)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
