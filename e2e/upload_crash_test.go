package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
)

// A worker killed with -9 in the middle of a base image upload larger than
// the resume rewind: the new worker's upload resumes (it does not start
// over) and the volume holds the image byte for byte.
func TestUploadKilledMidwayResumesWithoutStartingOver(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.poolRoot, "big.img")
	writeRandomFile(t, src, 2<<30)
	e.writeSpec(clusterFile{baseImage: src, diskGB: 3})
	bin := buildWorker(t)
	first := e.startWorkerProcess(bin)
	e.mustLeaveNothing()

	c := e.ts.GetDefaultClient()
	ctx := context.Background()
	run := e.submitStart(api.Options{})

	// Kill once the upload has heartbeated a resume point past zero.
	var resumeAt int64
	for end := time.Now().Add(2 * time.Minute); resumeAt == 0; time.Sleep(20 * time.Millisecond) {
		require.True(t, time.Now().Before(end), "the upload never heartbeated a resume point")
		desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		require.NoError(t, err)
		require.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus(), "the start ended before the kill")
		for _, pa := range desc.GetPendingActivities() {
			if pa.GetActivityType().GetName() != "UploadBaseImage" || pa.GetHeartbeatDetails() == nil {
				continue
			}
			var p struct {
				Offset int64 `json:"offset"`
			}
			if converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &p) == nil {
				resumeAt = p.Offset
			}
		}
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_, _ = first.Process.Wait()
	t.Logf("worker killed with -9 once the upload's resume point was %d MiB", resumeAt>>20)

	e.startWorkerProcess(bin)
	getCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	require.NoError(t, run.Get(getCtx, nil), "the run completes on the new worker")

	// The upload that completed resumed where the dead one had got to.
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	uploads := map[int64]bool{}
	var res *api.UploadResult
	var retried *failurepb.Failure
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "UploadBaseImage" {
			uploads[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && uploads[a.GetScheduledEventId()] {
			retried = a.GetLastFailure()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && uploads[a.GetScheduledEventId()] {
			res = &api.UploadResult{}
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(a.GetResult(), res))
		}
	}
	require.NotNil(t, res, "the upload completed")
	// The new worker saw that the upload's worker was dead and handed the
	// step on at once, instead of leaving it to the heartbeat timeout.
	require.NotNil(t, retried, "the upload completed in a retry")
	assert.Equal(t, hostworker.ErrTypeWorkerDied, retried.GetApplicationFailureInfo().GetType(), "the retry came from the successor's takeover: %v", retried)
	assert.Greater(t, res.ResumedFrom, int64(0), "the upload resumed instead of starting over")
	// A later heartbeat may have landed between the look and the kill.
	assert.GreaterOrEqual(t, res.ResumedFrom, resumeAt)
	t.Logf("resumed at %d MiB, sent %d MiB", res.ResumedFrom>>20, res.Bytes>>20)

	vol, err := e.lv.LookupVolume(e.cluster+"-pool", e.cluster+"-base.img")
	require.NoError(t, err)
	assert.True(t, sameFiles(t, src, vol.Path), "the volume holds the image byte for byte")

	code, out := e.hpcvm("destroy", "--yes")
	require.Equal(t, cli.ExitOK, code, out)
}

// writeRandomFile writes size bytes of a fast pseudo-random stream: random
// enough that a lost or misplaced chunk shows.
func writeRandomFile(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 4<<20)
	var seed [32]byte
	seed[0] = byte(time.Now().UnixNano())
	r := rand.NewChaCha8(seed)
	_, err = io.CopyN(w, r, size)
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
}

func sameFiles(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Open(a)
	require.NoError(t, err)
	defer fa.Close()
	fb, err := os.Open(b)
	require.NoError(t, err)
	defer fb.Close()
	ba, bb := make([]byte, 4<<20), make([]byte, 4<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}

// A cancel during a long upload reaches it at its next heartbeat, and the
// rollback removes what the run made. The time from the cancel to the end
// of the run is logged (a figure, not a timed assertion).
func TestCancelDuringUploadRollsBack(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.poolRoot, "big.img")
	writeRandomFile(t, src, 2<<30)
	e.writeSpec(clusterFile{baseImage: src, diskGB: 3})
	e.startWorker()
	e.mustLeaveNothing()
	c := e.ts.GetDefaultClient()
	ctx := context.Background()
	run := e.submitStart(api.Options{})
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		require.True(t, time.Now().Before(end), "the upload never started")
		desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		require.NoError(t, err)
		started := false
		for _, pa := range desc.GetPendingActivities() {
			started = started || (pa.GetActivityType().GetName() == "UploadBaseImage" && pa.GetHeartbeatDetails() != nil)
		}
		if started {
			break
		}
	}
	cancelled := time.Now()
	require.NoError(t, c.CancelWorkflow(ctx, run.GetID(), run.GetRunID()))
	err := run.Get(ctx, nil)
	require.Error(t, err)
	t.Logf("run ended %s after the cancel (upload stopped, rolled back)", time.Since(cancelled).Round(10*time.Millisecond))
	assert.Empty(t, e.leftovers(), "the rollback removed the base, the pool and the network")
	// The upload was cut off by the cancel, not left to finish.
	it := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	uploads, cut := map[int64]bool{}, false
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "UploadBaseImage" {
			uploads[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskCanceledEventAttributes(); a != nil && uploads[a.GetScheduledEventId()] {
			cut = true
		}
	}
	assert.True(t, cut, "the upload ended cancelled")
}
