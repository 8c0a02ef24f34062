package activities

import (
	"time"

	"github.com/hpcvm/hpcvm/api"
)

// The contract (package api) under the names this package has always
// used: the activities' requests and results, which a workflow needs
// without the libvirt binding this package brings.
type (
	AddressInUse     = api.AddressInUse
	AuditLog         = api.AuditLog
	AuditRequest     = api.AuditRequest
	ClaimHolder      = api.ClaimHolder
	ClaimRequest     = api.ClaimRequest
	ClaimResult      = api.ClaimResult
	DHCPHostRequest  = api.DHCPHostRequest
	DeviceClaim      = api.DeviceClaim
	DiscoveryRequest = api.DiscoveryRequest
	DomainRef        = api.DomainRef
	DomainState      = api.DomainState
	EnsureResult     = api.EnsureResult
	HostChangeResult = api.HostChangeResult
	ImageInfo        = api.ImageInfo
	InspectRequest   = api.InspectRequest
	Inventory        = api.Inventory
	LedgerState      = api.LedgerState
	LiveAddress      = api.LiveAddress
	NetworkRef       = api.NetworkRef
	NetworkState     = api.NetworkState
	PendingChanges   = api.PendingChanges
	PendingRequest   = api.PendingRequest
	PoolRef          = api.PoolRef
	PoolState        = api.PoolState
	ReleaseRequest   = api.ReleaseRequest
	ReleaseResult    = api.ReleaseResult
	ResolverRequest  = api.ResolverRequest
	RoutingRequest   = api.RoutingRequest
	RoutingState     = api.RoutingState
	ShutdownRequest  = api.ShutdownRequest
	ShutdownResult   = api.ShutdownResult
	UploadRequest    = api.UploadRequest
	UploadResult     = api.UploadResult
	VolumeRef        = api.VolumeRef
	VolumeRequest    = api.VolumeRequest
	VolumeState      = api.VolumeState
)

const (
	ErrTypeBadInput     = api.ErrTypeBadInput
	ErrTypeBusy         = api.ErrTypeBusy
	ErrTypeConnection   = api.ErrTypeConnection
	ErrTypeInvalidState = api.ErrTypeInvalidState
	ErrTypeInvalidXML   = api.ErrTypeInvalidXML
	ErrTypeLibvirt      = api.ErrTypeLibvirt
	ErrTypeMismatch     = api.ErrTypeMismatch
	ErrTypeNotEmpty     = api.ErrTypeNotEmpty
	ErrTypeNotOwned     = api.ErrTypeNotOwned
)

// NewDeviceClaim is api.NewDeviceClaim.
func NewDeviceClaim(address, cluster, vm, runID string, since time.Time) DeviceClaim {
	return api.NewDeviceClaim(address, cluster, vm, runID, since)
}
