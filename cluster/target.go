package cluster

import "fmt"

// ValidateTarget checks what stop, destroy and status need of a request:
// the cluster's name and its host. They act on what the cluster owns in
// libvirt, not on the rest of cluster.yaml, so they work after the file was
// edited or lost.
func ValidateTarget(name, host string) error {
	var errs ValidationError
	switch {
	case name == "":
		errs = append(errs, FieldError{Path: "cluster.name", Problem: "is required", Want: "name the cluster (--name or cluster.name in the file)"})
	case len(name) > maxClusterNameLen || !nameRE.MatchString(name):
		errs = append(errs, FieldError{Path: "cluster.name", Value: name, Problem: "is not a valid name",
			Want: fmt.Sprintf("use 1-%d lowercase letters, digits and '-', starting with a letter and not ending with '-'", maxClusterNameLen)})
	}
	switch {
	case host == "":
		errs = append(errs, FieldError{Path: "cluster.host", Problem: "is required", Want: "name the hypervisor host whose hpcvm-worker runs this cluster (--host)"})
	case len(host) > 63 || !hostRE.MatchString(host):
		errs = append(errs, FieldError{Path: "cluster.host", Value: host, Problem: "is not a valid host name", Want: "use lowercase letters, digits, '.' and '-'"})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ValidateVMName checks a VM name given on the command line (destroy --vm).
func ValidateVMName(vm string) error {
	if len(vm) > maxVMNameLen || !nameRE.MatchString(vm) {
		return FieldError{Path: "vm", Value: vm, Problem: "is not a valid VM name",
			Want: fmt.Sprintf("use 1-%d lowercase letters, digits and '-', as in cluster.yaml", maxVMNameLen)}
	}
	return nil
}
