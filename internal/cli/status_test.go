package cli

import (
	"bytes"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/stretchr/testify/assert"
)

// The cluster's state as status and list --live say it, from the states
// libvirt gives its domains ("" is a VM whose domain is absent).
func TestClusterStateNamesEveryVMThatShouldRunAndDoesNot(t *testing.T) {
	const logHint = ": see the QEMU log of each, /var/log/libvirt/qemu/<domain>.log on the host)"
	for _, tc := range []struct {
		name   string
		states [3]string // controller-01, compute-01, compute-02
		extra  string    // the state of compute-03, owned but not in the file; "" for none
		want   string
	}{
		{"all running", [3]string{"running", "running", "blocked"}, "", "running"},
		{"all off", [3]string{"shut off", "shut off", "shut off"}, "", "stopped"},
		{"none defined", [3]string{"", "", ""}, "", "absent"},
		{"a node not created yet", [3]string{"running", "running", ""}, "", "partly running"},
		{"a paused guest", [3]string{"running", "paused", "running"}, "", "degraded (compute-01 paused" + logHint},
		{"paused and forced off", [3]string{"running", "paused", "shut off"}, "", "degraded (compute-01 paused, compute-02 shut off" + logHint},
		{"crashed", [3]string{"running", "running", "crashed"}, "", "degraded (compute-02 crashed" + logHint},
		{"off while the others run", [3]string{"shut off", "running", "running"}, "", "degraded (controller-01 shut off" + logHint},
		{"paused in a stopped cluster", [3]string{"shut off", "paused", "shut off"}, "", "degraded (compute-01 paused" + logHint},
		{"a VM no longer in the file is left off", [3]string{"running", "running", "running"}, "shut off", "partly running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d api.Description
			d.Plan = cluster.Plan{Cluster: "lab", Host: "hv1"}
			for i, vm := range []string{"controller-01", "compute-01", "compute-02"} {
				d.Plan.VMs = append(d.Plan.VMs, cluster.VMPlan{Name: vm, Domain: "lab-" + vm, Volume: vm + ".qcow2"})
				if tc.states[i] != "" {
					d.Inventory.Domains = append(d.Inventory.Domains, api.DomainState{Name: "lab-" + vm, VM: vm, State: tc.states[i], Owned: true})
				}
			}
			if tc.extra != "" {
				d.Inventory.Domains = append(d.Inventory.Domains, api.DomainState{Name: "lab-compute-03", VM: "compute-03", State: tc.extra, Owned: true})
			}
			assert.Equal(t, tc.want, buildStatus(d).State)
		})
	}
}

// status names what the domains really run under, from their definitions:
// a start keeps an existing domain's type (a changed enable_kvm is refused),
// and a VM the file no longer names keeps whatever it had.
func TestStatusShowsTheDomainsRealType(t *testing.T) {
	plan := cluster.Plan{Cluster: "lab", Host: "hv1", VMs: []cluster.VMPlan{
		{Name: "controller-01", Role: "controller", Domain: "lab-controller-01"},
		{Name: "compute-01", Role: "compute", Domain: "lab-compute-01"},
	}}
	plan.Machine.DomainType = "qemu" // what the file asks now
	dom := func(vm, typ string) api.DomainState {
		return api.DomainState{Name: "lab-" + vm, VM: vm, Role: "compute", State: "running", Type: typ, Owned: true}
	}
	d := api.Description{Plan: plan, Inventory: api.Inventory{Domains: []api.DomainState{
		dom("controller-01", "kvm"), dom("compute-01", "kvm"),
	}}}
	st := buildStatus(d)
	assert.Equal(t, "KVM", st.Virtualization, "the domains', not the plan's")
	assert.Equal(t, "kvm", st.VMs[0].DomainType)
	var out bytes.Buffer
	(&app{out: &out}).printStatus(st)
	assert.Contains(t, out.String(), "Status: running\nVirtualization: KVM\n")

	d.Inventory.Domains = append(d.Inventory.Domains, dom("compute-09", "qemu"))
	st = buildStatus(d)
	assert.Equal(t, "mixed: controller-01 KVM, compute-01 KVM, compute-09 TCG emulation", st.Virtualization)

	d.Inventory.Domains = nil
	assert.Empty(t, buildStatus(d).Virtualization, "no domain, nothing to say")
}
