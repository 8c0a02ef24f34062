package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// HostCapabilities is what the host's libvirt offers, as far as planning
// domains needs it. The worker reads it; the plan only consumes it.
type HostCapabilities struct {
	Hostname          string   `json:"hostname"`
	Arch              string   `json:"arch"`
	LibvirtVersion    string   `json:"libvirt_version"`
	HypervisorVersion string   `json:"hypervisor_version"`
	KVMUsable         bool     `json:"kvm_usable"`
	Emulator          string   `json:"emulator"`
	MachineTypes      []string `json:"machine_types"`
}

// Negotiate fills p.Machine from the spec's wishes and the host's reality.
// Where the host cannot do what the spec asks but a safe alternative exists,
// the alternative is chosen and a note says so; where none exists, it fails.
func (p *Plan) Negotiate(s Spec, host HostCapabilities) error {
	if host.Arch != "" && host.Arch != "x86_64" {
		return fmt.Errorf("host %s is %s; hpcvm plans x86_64 guests only", host.Hostname, host.Arch)
	}
	m := MachinePlan{Emulator: host.Emulator}
	machine, ok := newestQ35(host.MachineTypes)
	if !ok {
		return fmt.Errorf("host %s offers no Q35 machine type (it offers %s); hpcvm needs Q35 for PCIe devices: install a QEMU with Q35 support", host.Hostname, strings.Join(host.MachineTypes, ", "))
	}
	m.MachineType = machine
	acc := s.Cluster.Hardware.Acceleration
	wantKVM := acc.EnableKVM == nil || *acc.EnableKVM
	switch {
	case wantKVM && host.KVMUsable:
		m.DomainType = "kvm"
	case wantKVM:
		m.DomainType = "qemu"
		note := "KVM is not usable on this host (no usable /dev/kvm): the VMs run under QEMU's TCG emulation, which is much slower"
		if acc.EnableKVM != nil {
			note = "cluster.hardware.acceleration.enable_kvm is true, but " + note
		}
		m.Notes = append(m.Notes, note)
	default:
		m.DomainType = "qemu"
	}
	switch acc.CPUModel {
	case "":
		// The hypervisor's default CPU model: the one choice measured to
		// start on every host here (host-passthrough can fail at start).
	case "host", "host-passthrough", "host-model":
		mode := acc.CPUModel
		if mode == "host" {
			mode = "host-passthrough"
		}
		if m.DomainType != "kvm" {
			m.Notes = append(m.Notes, fmt.Sprintf("cpu_model %q needs KVM; under TCG the hypervisor's default CPU model is used", acc.CPUModel))
			break
		}
		m.CPUMode = mode
		m.CPUFeatures = acc.CPUFeatures
	case "qemu64":
		m.CPUMode = "custom"
		m.CPUModel = "qemu64"
		m.CPUFeatures = acc.CPUFeatures
	}
	p.Machine = m
	return nil
}

// newestQ35 picks the highest versioned pc-q35-X.Y machine type.
func newestQ35(types []string) (string, bool) {
	var versioned []string
	for _, t := range types {
		if strings.HasPrefix(t, "pc-q35-") {
			if _, ok := q35Version(t); ok {
				versioned = append(versioned, t)
			}
		}
	}
	if len(versioned) == 0 {
		for _, t := range types {
			if t == "q35" {
				return t, true
			}
		}
		return "", false
	}
	sort.Slice(versioned, func(i, j int) bool {
		a, _ := q35Version(versioned[i])
		b, _ := q35Version(versioned[j])
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		return a[1] < b[1]
	})
	return versioned[len(versioned)-1], true
}

func q35Version(t string) ([2]int, bool) {
	parts := strings.SplitN(strings.TrimPrefix(t, "pc-q35-"), ".", 2)
	if len(parts) != 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return [2]int{}, false
	}
	return [2]int{major, minor}, true
}
