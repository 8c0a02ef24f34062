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
		{MAC: "52:54:00:00:00:01", IP: "10.0.0.10", Source: "dhcp", Expiry: since.Add(dhcpLeaseTime - time.Minute)},   // taken a minute before
		{MAC: "52:54:00:00:00:02", IP: "10.0.0.11", Source: "dhcp", Expiry: since.Add(dhcpLeaseTime - 5*time.Second)}, // the host's clock 5 s behind
		{MAC: "52:54:00:00:00:03", IP: "10.0.0.12", Source: "agent"},
	}
	assert.Empty(t, freshAddresses(all, "52:54:00:00:00:01", since))
	assert.Equal(t, []string{"10.0.0.11"}, freshAddresses(all, "52:54:00:00:00:02", since))
	assert.Equal(t, []string{"10.0.0.12"}, freshAddresses(all, "52:54:00:00:00:03", since))
	assert.Equal(t, []string{"10.0.0.10"}, liveIPs(all, "52:54:00:00:00:01"), "status shows what the table holds")
}
