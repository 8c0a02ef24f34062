package libvirt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDialUnreachable(t *testing.T) {
	_, err := Dial("qemu:///system?socket=/nonexistent/libvirt-sock")
	require.ErrorIs(t, err, ErrConnection)
	require.True(t, IsRetryable(err))
	require.Contains(t, err.Error(), "start libvirtd")
}

func TestReconnectAfterConnectionClosed(t *testing.T) {
	c := testClient(t)
	_, err := c.HostFacts()
	require.NoError(t, err)

	// Close the connection behind the client's back, as a libvirtd restart
	// would leave it: the next call must dial again by itself.
	c.mu.Lock()
	old := c.cur
	n, err := old.conn.Close()
	c.mu.Unlock()
	require.NoError(t, err)
	require.Equal(t, 0, n, "the test holds the only reference")

	_, err = c.LookupNetwork(testPrefix(t) + "absent")
	require.ErrorIs(t, err, ErrNotFound)
	c.mu.Lock()
	require.NotSame(t, old, c.cur)
	c.mu.Unlock()

	facts, err := c.HostFacts()
	require.NoError(t, err)
	require.NotEmpty(t, facts.LibvirtVersion)

	// Close, then use again: dials anew.
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err = c.LookupPool(testPrefix(t) + "absent")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestConcurrentUse(t *testing.T) {
	c := testClient(t)
	errs := make(chan error, 16)
	for i := 0; i < cap(errs); i++ {
		go func() {
			_, err := c.ListDomains("")
			errs <- err
		}()
	}
	for i := 0; i < cap(errs); i++ {
		require.NoError(t, <-errs)
	}
}
