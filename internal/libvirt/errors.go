package libvirt

import (
	"errors"
	"fmt"

	lv "libvirt.org/go/libvirt"
)

// Kinds of failure. Callers test them with errors.Is; every error this
// package returns for a libvirt object is an *Error carrying one of them
// (or none, when libvirt failed in a way that fits no kind).
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrInvalidState  = errors.New("not in a state that allows this")
	// ErrMismatch: the object exists but differs from the desired definition.
	ErrMismatch = errors.New("present but different")
	// ErrNotOwned: an object with the requested name exists but is not the
	// one the caller created; it is never modified or deleted.
	ErrNotOwned = errors.New("exists but is not ours")
	// ErrNotEmpty: a pool still holds volumes the caller did not delete.
	ErrNotEmpty   = errors.New("not empty")
	ErrInvalidXML = errors.New("invalid XML")
	// ErrConnection: libvirtd is unreachable or the connection dropped.
	// With ErrBusy, the only kinds worth retrying.
	ErrConnection = errors.New("libvirtd unreachable")
	// ErrBusy: libvirtd timed out waiting for an object another call holds
	// (e.g. a domain's state change lock); trying again later can succeed.
	ErrBusy = errors.New("busy")
)

// Error describes a failed operation on one libvirt object.
type Error struct {
	Kind   error  // one of the Err* kinds above, or nil
	Op     string // what was attempted, e.g. "define network"
	Object string // the object's name
	Detail string // what differs or what libvirt said
	Cause  error  // the underlying error, usually a libvirt.Error
}

func (e *Error) Error() string {
	s := e.Op
	if e.Object != "" {
		s += fmt.Sprintf(" %q", e.Object)
	}
	if e.Kind != nil {
		s += ": " + e.Kind.Error()
	} else {
		s += ": failed"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	} else if e.Cause != nil {
		s += ": " + libvirtMessage(e.Cause)
	}
	return s
}

// Is makes errors.Is(err, ErrMismatch) and friends work.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Unwrap exposes the cause, so errors.As(err, &libvirt.Error{}) still works.
func (e *Error) Unwrap() error { return e.Cause }

// IsRetryable reports whether trying again later may succeed: only when
// libvirtd could not be reached.
func IsRetryable(err error) bool { return errors.Is(err, ErrConnection) || errors.Is(err, ErrBusy) }

func newErr(kind error, op, object, format string, args ...any) *Error {
	return &Error{Kind: kind, Op: op, Object: object, Detail: fmt.Sprintf(format, args...)}
}

func mismatch(op, object, field string, have, want any) *Error {
	return &Error{Kind: ErrMismatch, Op: op, Object: object,
		Detail: fmt.Sprintf("%s is %s, want %s", field, quote(have), quote(want))}
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// libvirtMessage is libvirt's own message without the Go binding's
// "virError(Code=..., Domain=...)" wrapping, which helps nobody.
func libvirtMessage(err error) string {
	var le lv.Error
	if errors.As(err, &le) {
		return le.Message
	}
	return err.Error()
}

func libvirtCode(err error) (lv.ErrorNumber, bool) {
	var le lv.Error
	if errors.As(err, &le) {
		return le.Code, true
	}
	return 0, false
}

// isConnLoss reports whether err means the connection to libvirtd is gone.
// SYSTEM_ERROR and INTERNAL_ERROR also describe ordinary failures (a
// directory that cannot be created, say), so they count only when the
// connection is actually dead.
func isConnLoss(err error, conn *lv.Connect) bool {
	if errors.Is(err, ErrConnection) {
		return true
	}
	code, ok := libvirtCode(err)
	if !ok {
		return false
	}
	switch code {
	case lv.ERR_RPC, lv.ERR_NO_CONNECT, lv.ERR_INVALID_CONN:
		return true
	case lv.ERR_SYSTEM_ERROR, lv.ERR_INTERNAL_ERROR:
		return conn != nil && connDead(conn)
	}
	return false
}

func isNotFound(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	code, ok := libvirtCode(err)
	if !ok {
		return false
	}
	switch code {
	case lv.ERR_NO_NETWORK, lv.ERR_NO_STORAGE_POOL, lv.ERR_NO_STORAGE_VOL,
		lv.ERR_NO_DOMAIN, lv.ERR_NO_DOMAIN_METADATA:
		return true
	}
	return false
}

// classify turns any error from a libvirt call into an *Error of the right
// kind, keeping errors this package already built as they are.
func classify(op, object string, err error, conn *lv.Connect) error {
	if err == nil {
		return nil
	}
	var own *Error
	if errors.As(err, &own) {
		// An error this package built around a libvirt failure (start a
		// domain, build a pool) keeps its wording, but a lost connection
		// under it must still read as one, or a libvirtd restart would
		// make the step fail for good instead of being retried.
		if own.Kind == nil && own.Cause != nil && isConnLoss(own.Cause, conn) {
			own.Kind = ErrConnection
		}
		return err
	}
	e := &Error{Op: op, Object: object, Cause: err}
	code, ok := libvirtCode(err)
	switch {
	case isConnLoss(err, conn):
		e.Kind = ErrConnection
		e.Detail = libvirtMessage(err) + "; check that libvirtd is running (scripts/libvirtd-up.sh in a checkout starts one); the operation can be retried"
	case !ok:
	case isNotFound(err):
		e.Kind = ErrNotFound
	case code == lv.ERR_OPERATION_INVALID:
		e.Kind = ErrInvalidState
	case code == lv.ERR_OPERATION_TIMEOUT:
		e.Kind = ErrBusy
	case code == lv.ERR_XML_ERROR || code == lv.ERR_XML_DETAIL:
		e.Kind = ErrInvalidXML
	case code == lv.ERR_NETWORK_EXIST || code == lv.ERR_DOM_EXIST ||
		code == lv.ERR_STORAGE_VOL_EXIST || code == lv.ERR_STORAGE_POOL_BUILT:
		e.Kind = ErrAlreadyExists
	}
	return e
}

// IsUnsupported reports whether libvirtd lacks what the call needs (a
// driver it was built or configured without, such as node devices).
func IsUnsupported(err error) bool {
	code, ok := libvirtCode(err)
	return ok && (code == lv.ERR_NO_SUPPORT || code == lv.ERR_NO_NODE_DEVICE || code == lv.ERR_OPERATION_UNSUPPORTED)
}
