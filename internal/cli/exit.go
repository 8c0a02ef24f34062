package cli

import "fmt"

// Exit codes: scripts can tell what happened without parsing output.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the run failed; what it had created was rolled back
	ExitBadInput    = 2 // the configuration or the command line is wrong; nothing was submitted or created
	ExitUnreachable = 3 // Temporal (or the host's worker) cannot be reached
	ExitBusy        = 4 // another operation on this cluster is running
	ExitPending     = 5 // cancel was requested, but the run had not ended when cancel stopped waiting (--wait); it goes on in Temporal
	ExitInterrupted = 130
)

// exitError carries an exit code with the message printed for it.
type exitError struct {
	code int
	msg  string
	// cancelledClean marks a cancelled run whose rollback undid everything.
	cancelledClean bool
	// details decodes the failed run's error details (a DestroyResult for
	// an incomplete destroy); nil when there are none.
	details func(into any) error
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}
