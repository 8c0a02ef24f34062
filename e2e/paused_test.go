package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lv "libvirt.org/go/libvirt"
)

// A guest QEMU stops the moment it starts (nested KVM's "emulation
// failure"; here the test suspends it on libvirt's started event) fails
// the start with the domain's state and libvirt's reason, and the start
// rolls back as for any failed step.
func TestAGuestPausedAtItsStartFailsTheStartWithItsState(t *testing.T) {
	e := newEnv(t)
	e.writeSpec(clusterFile{}) // controller-01 + compute-01, the bootable test image
	e.startWorker()
	e.mustLeaveNothing()
	domain := e.cluster + "-compute-01"
	paused := pauseWhenStarted(t, domain)

	code, out := e.hpcvm("start")
	require.Equal(t, cli.ExitFailed, code, out)
	select {
	case took := <-paused:
		t.Logf("%s suspended %s after libvirt's started event", domain, took)
	default:
		t.Fatalf("the start failed, but not because the test paused %s:\n%s", domain, out)
	}
	assert.Contains(t, out, "domain "+domain+" is paused (reason: paused by a user) right after its start, not running")
	assert.Contains(t, out, "its QEMU log ends: ", "the worker reads the domain's QEMU log")
	assert.NotContains(t, out, "KVM is nested", "a TCG guest's stop is not nested KVM's doing")
	assert.Contains(t, out, "rolled back")
	assert.Contains(t, out, "network "+e.cluster+"-network", "the rollback names what it removed")
	assert.Empty(t, e.leftovers())

	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Status: absent")
	// list says the cluster is not there, not "running" nor "unknown".
	var entry cli.ClusterEntry
	require.Eventually(t, func() bool {
		entry = e.listed(false)
		return entry.Operation == "start"
	}, 15*time.Second, 200*time.Millisecond, "list shows the start")
	assert.Equal(t, "failed", entry.Result)
	assert.Equal(t, "absent: the last start failed and the cluster did not exist before it (unless its rollback failed: see hpcvm status)", entry.State)
	assert.Equal(t, "absent", e.listed(true).State)
}

// A cluster that started fine and then lost guests: one paused (as QEMU
// pauses a guest on an emulation or I/O error), one forced off behind
// hpcvm's back. status and list --live call it degraded and name both
// with their states; --wait-ip gives up at once on the paused guest.
func TestAPausedAndAnOffGuestMakeTheClusterDegraded(t *testing.T) {
	e := newEnv(t)
	// Blank disks: guests that never take an address, so --wait-ip can
	// only end by noticing the paused guest (or by its timeout).
	e.writeSpec(clusterFile{computes: []string{"compute-01", "compute-02"}, baseImage: e.blankImage()})
	e.startWorker()
	e.mustLeaveNothing()
	paused, off := e.cluster+"-compute-01", e.cluster+"-compute-02"

	// The guest is paused the moment --wait-ip starts waiting, before
	// its first look at the guests.
	var suspendOut []byte
	var suspendErr error
	code, out := e.hpcvmWhen("waiting up to", func() {
		suspendOut, suspendErr = exec.Command("virsh", "-c", libvirtURI(), "suspend", paused).CombinedOutput()
	}, "start", "--wait-ip", "--wait-ip-timeout", "5m")
	require.NoError(t, suspendErr, "virsh suspend: %s", suspendOut)
	assert.Equal(t, cli.ExitFailed, code, out)
	assert.Contains(t, out, "created 9 object(s), started 3 VM(s)", "the start itself succeeded")
	assert.Contains(t, out, "the cluster started, but compute-01 is paused, so it will take no address")
	assert.NotContains(t, out, "hold no address", "it did not wait out its timeout")
	assert.NotContains(t, out, "KVM is nested", "the guests run under TCG: nested KVM is not the cause")

	virsh(t, "destroy", off)
	code, out = e.hpcvm("status")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "Status: degraded (compute-01 paused, compute-02 shut off: see the QEMU log of each")
	code, out = e.hpcvm("status", "-o", "json")
	require.Equal(t, cli.ExitOK, code, out)
	var st cli.Status
	require.NoError(t, json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &st))
	states := map[string]string{}
	for _, vm := range st.VMs {
		states[vm.Name] = vm.State
	}
	assert.Equal(t, map[string]string{"controller-01": "running", "compute-01": "paused", "compute-02": "shut off"}, states)
	assert.True(t, strings.HasPrefix(st.State, "degraded (compute-01 paused, compute-02 shut off"), st.State)

	// list --live reads libvirt as status does; plain list says its state
	// is the last operation's, and where to look now.
	require.Eventually(t, func() bool { return e.listed(false).Operation == "start" }, 15*time.Second, 200*time.Millisecond, "list shows the start")
	assert.Equal(t, st.State, e.listed(true).State)
	code, out = e.hpcvm("list")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "`hpcvm list --live` reads libvirt now")
	code, out = e.hpcvm("list", "--live")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Contains(t, out, "degraded (compute-01 paused, compute-02 shut off")

	// A paused guest is destroyed like any other.
	code, out = e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
	assert.Empty(t, e.leftovers())
}

// listed is the cluster's entry in `hpcvm list -o json` (with --live if
// live); the zero entry if it is not listed yet.
func (e *env) listed(live bool) cli.ClusterEntry {
	e.t.Helper()
	args := []string{"list", "-o", "json"}
	if live {
		args = append(args, "--live")
	}
	code, out := e.hpcvm(args...)
	require.Equal(e.t, cli.ExitOK, code, out)
	var entries []cli.ClusterEntry
	require.NoError(e.t, json.Unmarshal([]byte(out[:strings.LastIndex(out, "]")+1]), &entries), out)
	for _, c := range entries {
		if c.Cluster == e.cluster {
			return c
		}
	}
	return cli.ClusterEntry{}
}

// hpcvmWhen is e.hpcvm that runs then, once, the moment the CLI's output
// first holds text: the CLI waits in that write until then returns.
func (e *env) hpcvmWhen(text string, then func(), args ...string) (int, string) {
	w := &watchedOutput{text: text, then: then}
	start := time.Now()
	code := cli.Main(e.cliArgs(args...), strings.NewReader(""), w, w)
	e.t.Logf("hpcvm %s → exit %d in %s\n%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), w.String())
	require.True(e.t, w.fired, "the CLI never printed %q", text)
	return code, w.String()
}

// watchedOutput collects the CLI's output and calls then when it first
// holds text.
type watchedOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	text  string
	then  func()
	fired bool
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.fired && strings.Contains(w.buf.String(), w.text) {
		w.fired = true
		w.then()
	}
	return n, err
}

func (w *watchedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var eventLoopOnce sync.Once

// pauseWhenStarted suspends the domain the moment libvirt reports it
// started (its lifecycle event, on a connection of the test's own), once;
// the channel then says how long after the event the suspend returned.
// No sleep and no polling: QEMU runs the guest for as long as libvirtd
// takes to send the event and do the suspend, well within the second
// the worker watches a started domain for.
func pauseWhenStarted(t *testing.T, domain string) <-chan time.Duration {
	t.Helper()
	eventLoopOnce.Do(func() {
		// libvirt delivers events through an event loop the program
		// runs; registered before the connection is opened. It runs for
		// the rest of the test binary: the connections opened after it
		// (the workers') use it for their keepalives.
		require.NoError(t, lv.EventRegisterDefaultImpl())
		go func() {
			for {
				if err := lv.EventRunDefaultImpl(); err != nil {
					panic(err)
				}
			}
		}()
	})
	conn, err := lv.NewConnect(libvirtURI())
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = conn.Close() })
	done := make(chan time.Duration, 1)
	var once sync.Once
	id, err := conn.DomainEventLifecycleRegister(nil, func(_ *lv.Connect, d *lv.Domain, ev *lv.DomainEventLifecycle) {
		name, err := d.GetName()
		if err != nil || name != domain || ev.Event != lv.DOMAIN_EVENT_STARTED {
			return
		}
		once.Do(func() {
			at := time.Now()
			if err := d.Suspend(); err != nil {
				t.Errorf("suspending %s on its started event: %v", domain, err)
				return
			}
			done <- time.Since(at)
		})
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.DomainEventDeregister(id) })
	return done
}
