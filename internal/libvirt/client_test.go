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

	// Close every connection behind the client's back, as a libvirtd
	// restart would leave them: the next calls must dial again by themselves.
	c.mu.Lock()
	var old []*connRef
	for _, r := range c.slots {
		n, err := r.conn.Close()
		require.NoError(t, err)
		require.Equal(t, 0, n, "the test holds the only reference")
		old = append(old, r)
	}
	c.mu.Unlock()
	require.NotEmpty(t, old)

	for i := 0; i < 8; i++ {
		_, err = c.LookupNetwork(testPrefix(t) + "absent")
		require.ErrorIs(t, err, ErrNotFound)
	}
	c.mu.Lock()
	for _, r := range c.slots {
		require.NotContains(t, old, r, "a closed connection was replaced")
	}
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

// A call never waits behind another on a shared connection while fewer
// than maxConns are open: libvirtd makes a third call on one connection wait
// for one of the first two (seen with virDomainDestroy, 2 s each).
func TestEachRunningCallHasAConnectionOfItsOwn(t *testing.T) {
	c := testClient(t)
	held := map[*connRef]bool{}
	var refs []*connRef
	for i := 0; i < maxConns; i++ {
		r, err := c.acquire()
		require.NoError(t, err)
		require.False(t, held[r], "call %d shares a connection while fewer than %d are open", i, maxConns)
		held[r] = true
		refs = append(refs, r)
	}
	// At the bound, calls share the least busy connections.
	extra, err := c.acquire()
	require.NoError(t, err)
	require.True(t, held[extra])
	require.Len(t, c.slots, maxConns)
	c.release(extra)
	for _, r := range refs {
		c.release(r)
	}
	// Idle connections are reused, not dialled again.
	r, err := c.acquire()
	require.NoError(t, err)
	require.True(t, held[r])
	c.release(r)
	require.Len(t, c.slots, maxConns)
	require.NoError(t, c.Close())
	require.Empty(t, c.slots)
}
