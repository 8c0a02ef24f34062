package libvirt

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNetworkLifecycle(t *testing.T) {
	c := testClient(t)
	n := isolatedNetwork(t, testPrefix(t))
	t.Cleanup(func() { _ = c.DeleteNetwork(n.name, n.bridge) })

	created, err := c.EnsureNetwork(n.xml)
	require.NoError(t, err)
	require.True(t, created)
	created, err = c.EnsureNetwork(n.xml)
	require.NoError(t, err)
	require.False(t, created, "second ensure finds the network")

	info, err := c.LookupNetwork(n.name)
	require.NoError(t, err)
	require.True(t, info.Active)
	require.Equal(t, n.bridge, info.Bridge)
	require.Contains(t, info.XML, "10.213.")

	// The same address written as a netmask is not a difference.
	sameByNetmask := strings.Replace(n.xml, `prefix="24"`, `netmask="255.255.255.0"`, 1)
	require.NotEqual(t, n.xml, sameByNetmask)
	created, err = c.EnsureNetwork(sameByNetmask)
	require.NoError(t, err)
	require.False(t, created)

	otherBridge := strings.Replace(n.xml, n.bridge, n.bridge+"x", 1)
	_, err = c.EnsureNetwork(otherBridge)
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), fmt.Sprintf(`bridge is %q, want %q`, n.bridge, n.bridge+"x"))

	otherHost := strings.Replace(n.xml, "node1", "node9", 1)
	_, err = c.EnsureNetwork(otherHost)
	require.ErrorIs(t, err, ErrMismatch)
	require.Contains(t, err.Error(), "DHCP static hosts")

	err = c.DeleteNetwork(n.name, "virbr-not-ours")
	require.ErrorIs(t, err, ErrNotOwned)
	_, err = c.LookupNetwork(n.name)
	require.NoError(t, err, "a network that is not ours is left alone")

	require.NoError(t, c.DeleteNetwork(n.name, n.bridge))
	_, err = c.LookupNetwork(n.name)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, c.DeleteNetwork(n.name, n.bridge), "deleting twice is fine")
}

func TestNetworkInvalidXML(t *testing.T) {
	c := testClient(t)
	_, err := c.EnsureNetwork("<network><bridge name='x'/></network>")
	require.ErrorIs(t, err, ErrInvalidXML)
	_, err = c.EnsureNetwork("not xml")
	require.ErrorIs(t, err, ErrInvalidXML)
}
