package api

// Error types that tell the operator (and Temporal's retry policy) what kind
// of failure this is. Everything but a lost libvirt connection is final:
// retrying a mismatch or a bad XML document cannot make it succeed.
const (
	ErrTypeMismatch     = "Mismatch"
	ErrTypeNotOwned     = "NotOwned"
	ErrTypeNotEmpty     = "NotEmpty"
	ErrTypeInvalidXML   = "InvalidXML"
	ErrTypeInvalidState = "InvalidState"
	ErrTypeBadInput     = "BadInput"
	ErrTypeLibvirt      = "Libvirt"
	ErrTypeConnection   = "Connection"
	ErrTypeBusy         = "Busy"
	// ErrTypeHostSilent: the host's worker did not take a step within
	// the run's HostTimeout.
	ErrTypeHostSilent = "HostSilent"
)

// ErrTypeDestroyIncomplete is the error type of a destroy that left
// something of the cluster; its details are the DestroyResult.
const ErrTypeDestroyIncomplete = "DestroyIncomplete"
