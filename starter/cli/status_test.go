package cli

import (
	"bytes"
	"testing"

	"github.com/hpcvm/hpcvm/activities"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/workflows"
	"github.com/stretchr/testify/assert"
)

// status names what the domains really run under, from their definitions:
// a start keeps an existing domain's type (a changed enable_kvm is refused),
// and a VM the file no longer names keeps whatever it had.
func TestStatusShowsTheDomainsRealType(t *testing.T) {
	plan := cluster.Plan{Cluster: "lab", Host: "hv1", VMs: []cluster.VMPlan{
		{Name: "controller-01", Role: "controller", Domain: "lab-controller-01"},
		{Name: "compute-01", Role: "compute", Domain: "lab-compute-01"},
	}}
	plan.Machine.DomainType = "qemu" // what the file asks now
	dom := func(vm, typ string) activities.DomainState {
		return activities.DomainState{Name: "lab-" + vm, VM: vm, Role: "compute", State: "running", Type: typ, Owned: true}
	}
	d := workflows.Description{Plan: plan, Inventory: activities.Inventory{Domains: []activities.DomainState{
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
