package cli

import (
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
)

func TestFreshAddressesLeaveOutLeasesFromBeforeTheStart(t *testing.T) {
	since := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	all := []api.LiveAddress{
		{MAC: "52:54:00:00:00:01", IP: "10.0.0.10", Source: "dhcp", Expiry: since.Add(api.DHCPLeaseTime - time.Minute)},   // taken a minute before
		{MAC: "52:54:00:00:00:02", IP: "10.0.0.11", Source: "dhcp", Expiry: since.Add(api.DHCPLeaseTime - 5*time.Second)}, // the host's clock 5 s behind
		{MAC: "52:54:00:00:00:03", IP: "10.0.0.12", Source: "agent"},
	}
	assert.Empty(t, freshAddresses(all, "52:54:00:00:00:01", since, time.Time{}))
	assert.Equal(t, []string{"10.0.0.11"}, freshAddresses(all, "52:54:00:00:00:02", since, time.Time{}))
	assert.Equal(t, []string{"10.0.0.12"}, freshAddresses(all, "52:54:00:00:00:03", since, time.Time{}))
	assert.Equal(t, []string{"10.0.0.10"}, liveIPs(all, "52:54:00:00:00:01"), "status shows what the table holds")
}

// A stop and a start seconds apart: the guest's lease from its previous
// boot was taken within the slack of the start's time, but before its
// domain's QEMU started. Where the host tells the boot, that decides.
func TestFreshAddressesJudgeByTheDomainsBootWhenKnown(t *testing.T) {
	since := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	booted := since.Add(time.Second)
	before := api.LiveAddress{MAC: "52:54:00:00:00:01", IP: "10.0.0.10", Source: "dhcp", Expiry: since.Add(api.DHCPLeaseTime - 5*time.Second)}
	after := api.LiveAddress{MAC: "52:54:00:00:00:01", IP: "10.0.0.10", Source: "dhcp", Expiry: booted.Add(api.DHCPLeaseTime + 8*time.Second)}
	assert.Equal(t, []string{"10.0.0.10"}, freshAddresses([]api.LiveAddress{before}, before.MAC, since, time.Time{}), "without the boot time, the start's time with its slack")
	assert.Empty(t, freshAddresses([]api.LiveAddress{before}, before.MAC, since, booted), "taken by the boot before")
	assert.Equal(t, []string{"10.0.0.10"}, freshAddresses([]api.LiveAddress{after}, after.MAC, since, booted))
}
