// Package hostchange makes the changes hpcvm may make to a hypervisor host
// outside libvirt's own objects (sysctl, firewall rules beyond libvirt's),
// only when the cluster's host_configuration allows them, and records every
// one in the host's audit log: who asked, what changed, when, in which run.
//
// It imports nothing of Temporal or libvirt: activities call it.
package hostchange

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultAuditPath is where a worker keeps its host's audit log.
const DefaultAuditPath = "/var/lib/hpcvm/audit/host-changes.jsonl"

// Record is one line of the audit log: one command that changed the host
// (or tried to), or one change hpcvm looked at and left as it was.
type Record struct {
	Time time.Time `json:"time"`
	Host string    `json:"host"`
	// Netns is the network namespace the change was made in; empty for
	// the worker's own (the host's).
	Netns   string `json:"netns,omitempty"`
	Cluster string `json:"cluster"`
	// RequestedBy is who submitted the run: user@machine of the client.
	RequestedBy string `json:"requested_by,omitempty"`
	WorkflowID  string `json:"workflow_id,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	// Action is apply (a start making a change) or revert (a destroy or a
	// rollback undoing one).
	Action string `json:"action"`
	// Change says what, in words; Command is what was run.
	Change  string `json:"change"`
	Command string `json:"command,omitempty"`
	Before  string `json:"before,omitempty"`
	After   string `json:"after,omitempty"`
	// Outcome: pending (about to be made: written before the change),
	// done, unchanged (already as wanted), kept (not undone, with the
	// reason in Note), failed.
	Outcome string `json:"outcome"`
	Note    string `json:"note,omitempty"`
	// ID ties a pending record to the done or failed record of the same
	// change. A pending record without one is a change that may or may
	// not have been made (the worker stopped in between). Older logs have
	// no IDs and no pending records.
	ID string `json:"id,omitempty"`
	// BootID is the kernel's boot ID (/proc/sys/kernel/random/boot_id)
	// when the record was written: a runtime setting such as IP
	// forwarding that a record of another boot names is not what this
	// boot runs with. Older records have none.
	BootID string `json:"boot_id,omitempty"`
}

// Outcomes.
const (
	OutcomeDone      = "done"
	OutcomeUnchanged = "unchanged"
	OutcomeKept      = "kept"
	OutcomeFailed    = "failed"
	// OutcomePending is written before a change is made; a done or
	// failed record of the same ID follows once it was tried.
	OutcomePending = "pending"
)

// Actions.
const (
	ActionApply  = "apply"
	ActionRevert = "revert"
)

// Audit is a host's append-only audit log, one JSON record a line.
type Audit struct {
	Path string
	mu   sync.Mutex
}

// Append writes rec and syncs it to disk before returning, so a change
// that a run reports made is on disk by then.
func (a *Audit) Append(rec Record) error {
	if a.Path == "" {
		return errors.New("no audit log configured (hpcvm-worker --audit-log)")
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(a.Path), 0o700); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit log %s: %w", a.Path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit log %s: %w", a.Path, err)
	}
	return f.Close()
}

// Settle drops each pending record whose change has its done or failed
// record: what is left pending is a change whose outcome was never
// recorded (possibly made). Order is kept otherwise.
func Settle(recs []Record) []Record {
	resolved := map[string]bool{}
	for _, r := range recs {
		if r.ID != "" && r.Outcome != OutcomePending {
			resolved[r.ID] = true
		}
	}
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		if r.Outcome == OutcomePending && resolved[r.ID] {
			continue
		}
		out = append(out, r)
	}
	return out
}

// Unsure says the record is a change whose outcome was never recorded;
// meaningful on settled records.
func (r Record) Unsure() bool { return r.Outcome == OutcomePending }

// ReadSettled is Read of the settled log (Settle): keep sees pending
// records only when their outcome was never recorded.
func (a *Audit) ReadSettled(keep func(Record) bool) (recs []Record, skipped int, err error) {
	all, skipped, err := a.Read(nil)
	if err != nil {
		return nil, skipped, err
	}
	for _, r := range Settle(all) {
		if keep == nil || keep(r) {
			recs = append(recs, r)
		}
	}
	return recs, skipped, nil
}

// Read returns the records that keep returns true for, oldest first. A
// missing log is an empty one; a line that is not a record (a torn write
// of a machine that lost power) is skipped and counted.
func (a *Audit) Read(keep func(Record) bool) (recs []Record, skipped int, err error) {
	f, err := os.Open(a.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			skipped++
			continue
		}
		if keep == nil || keep(r) {
			recs = append(recs, r)
		}
	}
	if err := sc.Err(); err != nil {
		return recs, skipped, fmt.Errorf("audit log %s: %w", a.Path, err)
	}
	return recs, skipped, nil
}
