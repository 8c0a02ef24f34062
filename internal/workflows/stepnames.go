package workflows

// Step names, one function each: a run lists its steps as pending before
// they begin (tracker.expect) and runs them later under the same name, so
// both sides take the name from here.

func networkStep(network string) string   { return "network " + network }
func poolStep(pool string) string         { return "pool " + pool }
func baseImageStep(volume string) string  { return "base image " + volume }
func leaseStep(vm string) string          { return "DHCP lease " + vm }
func volumeStep(volume string) string     { return "volume " + volume }
func domainStep(domain string) string     { return "domain " + domain }
func startStep(domain string) string      { return "start " + domain }
func shutdownStep(domain string) string   { return "shutdown " + domain }
func forceOffStep(domain string) string   { return "force off " + domain }
func deleteDomainStep(dom string) string  { return "delete domain " + dom }
func deleteVolumeStep(vol string) string  { return "delete volume " + vol }
func removeLeaseStep(vm string) string    { return "remove DHCP lease " + vm }
func deletePoolStep(pool string) string   { return "delete pool " + pool }
func deleteNetworkStep(net string) string { return "delete network " + net }
func routingStep(bridge string) string    { return "host routing " + bridge }
func discoveryStep(c string) string       { return "service discovery record " + c }
func resolverStep(domain string) string   { return "host resolver " + domain }

// leaveRoutingStep is destroy's removal of the cluster's routing rules.
const leaveRoutingStep = "leave host routing"

// removeDiscoveryStep is destroy's removal of the cluster's service
// discovery record.
const removeDiscoveryStep = "remove service discovery record"

// pruneDiscoveryStep is destroy --vm's removal of the VMs from the
// cluster's service discovery record.
const pruneDiscoveryStep = "prune service discovery record"

// removeResolverStep is destroy's removal of the cluster's entry in the
// host's resolver.
const removeResolverStep = "remove host resolver entry"

// waitPowerOffStep is stop's wait for the guests to power off.
const waitPowerOffStep = "wait for power-off"

// stepBind is start's binding of the cluster to its host in the cluster
// registry; stepUnbind is destroy's removal of it.
const (
	stepBind   = "cluster binding"
	stepUnbind = "remove cluster binding"
)

// stepLedgerClaims is start's claim of CPUs, hugepages, memory and
// devices in the host's ledger.
const stepLedgerClaims = "host ledger claims"
