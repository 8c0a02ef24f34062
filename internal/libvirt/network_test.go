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
	t.Cleanup(func() { _ = c.DeleteNetwork(n.name, n.uuid) })

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

	// Static hosts are added in place, not compared.
	otherHost := strings.Replace(n.xml, "node1", "node9", 1)
	_, err = c.EnsureNetwork(otherHost)
	require.NoError(t, err)

	// A network with the same name but without the caller's UUID is not
	// the caller's: neither ensured, nor changed, nor deleted.
	stranger := randomUUID(t)
	_, err = c.EnsureNetwork(strings.Replace(n.xml, n.uuid, stranger, 1))
	require.ErrorIs(t, err, ErrNotOwned)
	require.Contains(t, err.Error(), "not created by hpcvm")
	err = c.DeleteNetwork(n.name, stranger)
	require.ErrorIs(t, err, ErrNotOwned)
	_, err = c.EnsureDHCPHost(n.name, stranger, DHCPHost{MAC: "52:54:00:aa:bb:02", Name: "node2", IP: fmt.Sprintf("10.213.%d.12", n.subnet)})
	require.ErrorIs(t, err, ErrNotOwned)
	_, err = c.LookupNetwork(n.name)
	require.NoError(t, err, "a network that is not ours is left alone")

	require.NoError(t, c.DeleteNetwork(n.name, n.uuid))
	_, err = c.LookupNetwork(n.name)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, c.DeleteNetwork(n.name, n.uuid), "deleting twice is fine")
}

// A node joins a running network: its lease is added live and for good,
// without a restart, and removed again on rollback.
func TestDHCPHostsInPlace(t *testing.T) {
	c := testClient(t)
	n := isolatedNetwork(t, testPrefix(t))
	t.Cleanup(func() { _ = c.DeleteNetwork(n.name, n.uuid) })
	_, err := c.EnsureNetwork(n.xml)
	require.NoError(t, err)
	node2 := DHCPHost{MAC: "52:54:00:aa:bb:02", Name: "node2", IP: fmt.Sprintf("10.213.%d.12", n.subnet)}

	changed, err := c.EnsureDHCPHost(n.name, n.uuid, node2)
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = c.EnsureDHCPHost(n.name, n.uuid, node2)
	require.NoError(t, err)
	require.False(t, changed, "an entry already there changes nothing")
	info, err := c.LookupNetwork(n.name)
	require.NoError(t, err)
	require.Contains(t, info.Hosts, node2)
	require.Contains(t, info.XML, "node2", "the running network has it too")

	// Another MAC may not take an existing name or address.
	_, err = c.EnsureDHCPHost(n.name, n.uuid, DHCPHost{MAC: "52:54:00:aa:bb:03", Name: "node2", IP: fmt.Sprintf("10.213.%d.13", n.subnet)})
	require.ErrorIs(t, err, ErrMismatch)
	// The same MAC moved to another address is modified in place.
	moved := node2
	moved.IP = fmt.Sprintf("10.213.%d.22", n.subnet)
	changed, err = c.EnsureDHCPHost(n.name, n.uuid, moved)
	require.NoError(t, err)
	require.True(t, changed)
	info, err = c.LookupNetwork(n.name)
	require.NoError(t, err)
	require.Contains(t, info.Hosts, moved)
	require.NotContains(t, info.Hosts, node2)

	require.NoError(t, c.DeleteDHCPHost(n.name, n.uuid, node2.MAC))
	require.NoError(t, c.DeleteDHCPHost(n.name, n.uuid, node2.MAC), "removing twice is fine")
	info, err = c.LookupNetwork(n.name)
	require.NoError(t, err)
	require.Len(t, info.Hosts, 1)
	require.NotContains(t, info.XML, "node2")
}

func TestNetworkInvalidXML(t *testing.T) {
	c := testClient(t)
	_, err := c.EnsureNetwork("<network><bridge name='x'/></network>")
	require.ErrorIs(t, err, ErrInvalidXML)
	_, err = c.EnsureNetwork("not xml")
	require.ErrorIs(t, err, ErrInvalidXML)
}
