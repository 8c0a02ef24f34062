package libvirt

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	lv "libvirt.org/go/libvirt"
)

// wrap classifies err as if the connection's state were unknown.
func wrap(op, object string, err error) error { return classify(op, object, err, nil) }

func TestErrorFormatAndKinds(t *testing.T) {
	err := fmt.Errorf("activity: %w", mismatch("define network", "c1-network", "bridge", "virbr9", "br-c1"))
	require.EqualError(t, err, `activity: define network "c1-network": present but different: bridge is "virbr9", want "br-c1"`)
	require.ErrorIs(t, err, ErrMismatch)
	require.NotErrorIs(t, err, ErrNotFound)
	require.False(t, IsRetryable(err))

	cause := lv.Error{Code: lv.ERR_NO_DOMAIN, Message: "Domain not found: no domain with matching name 'x'"}
	nf := wrap("look up domain", "x", cause)
	require.ErrorIs(t, nf, ErrNotFound)
	var le lv.Error
	require.True(t, errors.As(nf, &le), "the libvirt cause stays reachable")
	require.Contains(t, nf.Error(), "no domain with matching name")

	require.ErrorIs(t, wrap("define domain", "x", lv.Error{Code: lv.ERR_XML_DETAIL}), ErrInvalidXML)
	require.ErrorIs(t, wrap("start domain", "x", lv.Error{Code: lv.ERR_OPERATION_INVALID}), ErrInvalidState)
	conn := wrap("list domains", "", lv.Error{Code: lv.ERR_RPC, Message: "End of file while reading data"})
	require.ErrorIs(t, conn, ErrConnection)
	require.True(t, IsRetryable(conn))
	// A system error on a healthy (here: unknown) connection is not a
	// connection loss: it is, say, a directory that cannot be made.
	require.False(t, IsRetryable(wrap("build pool", "p", lv.Error{Code: lv.ERR_SYSTEM_ERROR})))
}

func TestUnitMultiplier(t *testing.T) {
	for unit, want := range map[string]uint64{"": 1, "bytes": 1, "KiB": 1024, "k": 1024, "KB": 1000, "M": 1 << 20, "MiB": 1 << 20, "GB": 1e9, "G": 1 << 30, "TiB": 1 << 40} {
		got, err := unitMultiplier(unit)
		require.NoError(t, err, unit)
		require.Equal(t, want, got, unit)
	}
	_, err := unitMultiplier("furlongs")
	require.Error(t, err)
}

func TestCanonicalXML(t *testing.T) {
	a := `<h:cluster xmlns:h="urn:x" name='c1'><h:node id="1"/></h:cluster>`
	b := "<other:cluster name=\"c1\" xmlns:other=\"urn:x\">\n  <other:node id=\"1\"></other:node>\n</other:cluster>"
	require.Equal(t, canonicalXML(a), canonicalXML(b))
	require.Equal(t, canonicalXML(a), canonicalXML(`<cluster name="c1"><node id="1"/></cluster>`), "libvirt returns metadata without namespace")
	require.NotEqual(t, canonicalXML(a), canonicalXML(`<h:cluster xmlns:h="urn:x" name="c2"><h:node id="1"/></h:cluster>`))
}

func TestBusyAndWrappedConnectionLossAreRetryable(t *testing.T) {
	busy := classify("start domain", "d", lv.Error{Code: lv.ERR_OPERATION_TIMEOUT, Message: "cannot acquire state change lock"}, nil)
	require.ErrorIs(t, busy, ErrBusy)
	require.True(t, IsRetryable(busy))

	// An error this package wrapped itself, with the connection lost under it.
	own := &Error{Op: "start domain", Object: "d", Cause: lv.Error{Code: lv.ERR_RPC, Message: "connection closed"}}
	got := classify("start domain", "d", own, nil)
	require.ErrorIs(t, got, ErrConnection)
	require.True(t, IsRetryable(got))

	plain := classify("start domain", "d", &Error{Op: "start domain", Object: "d", Cause: lv.Error{Code: lv.ERR_INTERNAL_ERROR, Message: "qemu failed"}}, nil)
	require.False(t, IsRetryable(plain), "an ordinary failure stays final")
}
