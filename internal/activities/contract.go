package activities

import "github.com/hpcvm/hpcvm/api"

// The contract (package api) under the names this package has always
// used: the activities' names, requests and results, which a workflow
// needs without the libvirt binding this package brings.
type (
	AddressInUse     = api.AddressInUse
	AuditLog         = api.AuditLog
	AuditRequest     = api.AuditRequest
	Call             = api.Call
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
	PCIRequest       = api.PCIRequest
	PathsRequest     = api.PathsRequest
	PendingChanges   = api.PendingChanges
	PendingRequest   = api.PendingRequest
	PoolRef          = api.PoolRef
	PoolState        = api.PoolState
	ReleaseRequest   = api.ReleaseRequest
	ReleaseResult    = api.ReleaseResult
	ResolverRequest  = api.ResolverRequest
	RoutingRequest   = api.RoutingRequest
	RoutingState     = api.RoutingState
	SharedDir        = api.SharedDir
	ShutdownRequest  = api.ShutdownRequest
	ShutdownResult   = api.ShutdownResult
	SourceStat       = api.SourceStat
	SpaceInfo        = api.SpaceInfo
	UploadProgress   = api.UploadProgress
	UploadRequest    = api.UploadRequest
	UploadResult     = api.UploadResult
	VolumeRef        = api.VolumeRef
	VolumeRequest    = api.VolumeRequest
	VolumeState      = api.VolumeState
)

const (
	ActCheckHostPaths        = api.ActCheckHostPaths
	ActClaimDevices          = api.ActClaimDevices
	ActDeleteDHCPHost        = api.ActDeleteDHCPHost
	ActDeleteDomain          = api.ActDeleteDomain
	ActDeleteNetwork         = api.ActDeleteNetwork
	ActDeletePool            = api.ActDeletePool
	ActDeleteVolume          = api.ActDeleteVolume
	ActDiscoveryRecordExists = api.ActDiscoveryRecordExists
	ActDomainDifferences     = api.ActDomainDifferences
	ActEnsureDHCPHost        = api.ActEnsureDHCPHost
	ActEnsureDomain          = api.ActEnsureDomain
	ActEnsureNetwork         = api.ActEnsureNetwork
	ActEnsurePool            = api.ActEnsurePool
	ActEnsureVolume          = api.ActEnsureVolume
	ActForceOffDomain        = api.ActForceOffDomain
	ActInspectBaseImage      = api.ActInspectBaseImage
	ActInspectCluster        = api.ActInspectCluster
	ActJoinRouting           = api.ActJoinRouting
	ActLeaveRouting          = api.ActLeaveRouting
	ActPendingHostChanges    = api.ActPendingHostChanges
	ActPoolSpace             = api.ActPoolSpace
	ActProbeHost             = api.ActProbeHost
	ActPruneDiscoveryRecord  = api.ActPruneDiscoveryRecord
	ActReadAuditLog          = api.ActReadAuditLog
	ActReleaseDevices        = api.ActReleaseDevices
	ActRemoveDiscoveryRecord = api.ActRemoveDiscoveryRecord
	ActRemoveResolverEntry   = api.ActRemoveResolverEntry
	ActResolverEntryExists   = api.ActResolverEntryExists
	ActRoutedClusters        = api.ActRoutedClusters
	ActShutdownDomain        = api.ActShutdownDomain
	ActStartDomain           = api.ActStartDomain
	ActUploadBaseImage       = api.ActUploadBaseImage
	ActValidatePCI           = api.ActValidatePCI
	ActWaitDomainsOff        = api.ActWaitDomainsOff
	ActWriteDiscoveryRecord  = api.ActWriteDiscoveryRecord
	ActWriteResolverEntry    = api.ActWriteResolverEntry
	ErrTypeBadInput          = api.ErrTypeBadInput
	ErrTypeBusy              = api.ErrTypeBusy
	ErrTypeConnection        = api.ErrTypeConnection
	ErrTypeDeviceClaimed     = api.ErrTypeDeviceClaimed
	ErrTypeInvalidState      = api.ErrTypeInvalidState
	ErrTypeInvalidXML        = api.ErrTypeInvalidXML
	ErrTypeLibvirt           = api.ErrTypeLibvirt
	ErrTypeMismatch          = api.ErrTypeMismatch
	ErrTypeNotEmpty          = api.ErrTypeNotEmpty
	ErrTypeNotOwned          = api.ErrTypeNotOwned
	KeptPrefix               = api.KeptPrefix
	LedgerQueryClaims        = api.LedgerQueryClaims
	LedgerUpdateClaim        = api.LedgerUpdateClaim
	LedgerUpdateFree         = api.LedgerUpdateFree
	LedgerWorkflowName       = api.LedgerWorkflowName
)
