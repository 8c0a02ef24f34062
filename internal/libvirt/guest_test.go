package libvirt

import (
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
)

// A lease proves a guest is up only if it was taken after the domain's
// QEMU started: one from an earlier boot lingers until it runs out.
func TestLeaseSinceTellsAFreshLeaseFromALingeringOne(t *testing.T) {
	booted := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(taken time.Time) DHCPLease {
		return DHCPLease{MAC: "52:54:00:00:00:01", Expiry: taken.Add(api.DHCPLeaseTime)}
	}
	for _, tc := range []struct {
		name   string
		lease  DHCPLease
		booted time.Time
		want   bool
	}{
		{"taken after the boot", at(booted.Add(5 * time.Second)), booted, true},
		{"taken a second before the pid file's time (clock slack)", at(booted.Add(-time.Second)), booted, true},
		{"from the boot before", at(booted.Add(-10 * time.Minute)), booted, false},
		{"no boot time", at(booted.Add(5 * time.Second)), time.Time{}, false},
		{"no expiry", DHCPLease{MAC: "52:54:00:00:00:01"}, booted, false},
	} {
		assert.Equal(t, tc.want, leaseSince(tc.lease, tc.booted), tc.name)
	}
}
