package cluster

import (
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/internal/pcifixture"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gpuHostFacts is what the worker reports for the fixture GPU host.
func gpuHostFacts(iommu bool) PCIFacts {
	facts := PCIFacts{Source: "sysfs at /fixture", IOMMU: iommu, Devices: map[string]HostPCIDevice{}}
	members := map[int][]string{}
	for _, f := range pcifixture.GPUHost {
		members[f.Group] = append(members[f.Group], f.Address)
	}
	for _, f := range pcifixture.GPUHost {
		d := HostPCIDevice{Address: f.Address, Vendor: f.Vendor, Device: f.Device, Class: f.Class, Driver: f.Driver}
		if iommu {
			g := f.Group
			d.IOMMUGroup = &g
			d.GroupMembers = members[g]
		}
		facts.Devices[f.Address] = d
	}
	return facts
}

func assignPCI(t *testing.T, nodes string, facts PCIFacts) (Plan, []string) {
	t.Helper()
	s, err := Parse([]byte(hwYAML(``, nodes)))
	require.NoError(t, err)
	p, err := NewPlan(s)
	require.NoError(t, err)
	return p, p.AssignPCI(s, "gpu1", facts)
}

const gpuAndAudio = `compute_nodes:
  - name: gpu-01
    pcie_passthrough:
      enabled: true
      devices:
        - {pci_address: "0000:01:00.0", device_type: gpu, vendor_id: "10de", device_id: "2805", iommu_group: 7}
        - {pci_address: "0000:01:00.1", device_type: audio, vendor_id: "10de", device_id: "22bd"}
`

func TestAssignPCIPassesAWholeGroup(t *testing.T) {
	p, problems := assignPCI(t, gpuAndAudio, gpuHostFacts(true))
	require.Empty(t, problems)
	vm, _ := p.VM("gpu-01")
	assert.Equal(t, []HostDevicePlan{{Address: "0000:01:00.0", DeviceType: "gpu", Exclusive: true}, {Address: "0000:01:00.1", DeviceType: "audio", Exclusive: true}}, vm.HostDevices,
		"the root port of the group stays with the host")

	// The cluster-level form: devices name their VM.
	s, err := Parse([]byte(`cluster:
  name: lab
  host: gpu1
  storage: {base_image: /x.qcow2}
  hardware:
    pcie_passthrough:
      enabled: true
      devices:
        - {pci_address: "0000:03:00.0", device_type: gpu, assigned_to: gpu-01}
compute_nodes: [{name: gpu-01}]
`))
	require.NoError(t, err)
	p, err = NewPlan(s)
	require.NoError(t, err)
	require.Empty(t, p.AssignPCI(s, "gpu1", gpuHostFacts(true)))
	vm, _ = p.VM("gpu-01")
	assert.Equal(t, []HostDevicePlan{{Address: "0000:03:00.0", DeviceType: "gpu", Exclusive: true}}, vm.HostDevices)
}

func TestAssignPCIRefusals(t *testing.T) {
	held := gpuHostFacts(true)
	d := held.Devices["0000:01:00.0"]
	d.HeldBy = []string{"other-gpu-01"}
	held.Devices["0000:01:00.0"] = d

	claimed := gpuHostFacts(true)
	d = claimed.Devices["0000:01:00.0"]
	d.ClaimedBy = "cluster other (VM gpu-02) since 2026-12-04T10:00:00Z"
	claimed.Devices["0000:01:00.0"] = d
	unreadable := gpuHostFacts(true)
	unreadable.Unreadable = []string{"odd-vm"}

	cases := []struct {
		name, nodes string
		facts       PCIFacts
		want        string
	}{
		{"claimed by another cluster", strings.Replace(gpuAndAudio, "enabled: true", "enabled: true\n      exclusive_mode: false", 1), claimed,
			"compute_nodes[0].pcie_passthrough.devices[0]: 0000:01:00.0 on host gpu1 is claimed by cluster other (VM gpu-02) since 2026-12-04T10:00:00Z in the host's device ledger: destroy that cluster first (which frees its devices)"},
		{"unreadable domain", gpuAndAudio, unreadable,
			"the definitions of domain(s) odd-vm on host gpu1 cannot be read, so hpcvm cannot tell which PCI devices they hold: fix or remove them (virsh dumpxml), then run again"},
		{"missing device", strings.Replace(gpuAndAudio, "0000:01:00.0", "0000:65:00.0", 1), gpuHostFacts(true),
			`compute_nodes[0].pcie_passthrough.devices[0].pci_address 0000:65:00.0: host gpu1 has no PCI device at that address (sysfs at /fixture; ` + "`lspci -D`" + ` lists them)`},
		{"IOMMU off", gpuAndAudio, gpuHostFacts(false),
			"PCI passthrough needs the IOMMU, and host gpu1 has no IOMMU groups (sysfs at /fixture): enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on (or amd_iommu=on), or set pcie_passthrough.enabled to false"},
		{"wrong group", strings.Replace(gpuAndAudio, "iommu_group: 7", "iommu_group: 1", 1), gpuHostFacts(true),
			"compute_nodes[0].pcie_passthrough.devices[0].iommu_group 1: 0000:01:00.0 on host gpu1 is in IOMMU group 7: correct iommu_group or leave it out"},
		{"incomplete group", strings.Split(gpuAndAudio, "        - {pci_address: \"0000:01:00.1\"")[0], gpuHostFacts(true),
			"compute_nodes[0].pcie_passthrough.devices[0]: 0000:01:00.0 is in IOMMU group 7 on host gpu1 with 0000:01:00.1 (10de:22bd), which must be passed through with it: add them to the same VM's devices"},
		{"wrong IDs", strings.Replace(gpuAndAudio, `device_id: "2805"`, `device_id: "2684"`, 1), gpuHostFacts(true),
			"compute_nodes[0].pcie_passthrough.devices[0]: 0000:01:00.0 on host gpu1 is 10de:2805, not 10de:2684: check the address, or correct vendor_id/device_id"},
		{"held by another domain", gpuAndAudio, held,
			"compute_nodes[0].pcie_passthrough.devices[0]: 0000:01:00.0 (10de:2805) on host gpu1 is passed through to domain(s) other-gpu-01, which are not this cluster's: free it there first, or set exclusive_mode: false to share it one running domain at a time"},
		{"group split between VMs", `compute_nodes:
  - {name: a, pcie_passthrough: {enabled: true, devices: [{pci_address: "0000:01:00.0", device_type: gpu}]}}
  - {name: b, pcie_passthrough: {enabled: true, devices: [{pci_address: "0000:01:00.1", device_type: audio}]}}
`, gpuHostFacts(true), "compute_nodes[0].pcie_passthrough.devices[0]: 0000:01:00.0 (to a) shares IOMMU group 7 with 0000:01:00.1 (to b): a group goes to one VM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, problems := assignPCI(t, tc.nodes, tc.facts)
			assert.Contains(t, problems, tc.want)
			for _, vm := range p.VMs {
				assert.Empty(t, vm.HostDevices, "nothing is assigned when anything is wrong")
			}
		})
	}
}
