package trace

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// recorded reads a history the workflows' replay tests keep: a real run of
// the real workflows, recorded against a real Temporal server.
func recorded(t *testing.T, name string) []*history.HistoryEvent {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "workflows", "testdata", "histories", name))
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	return h.GetEvents()
}

func TestTraceOfAFailedStartListsItsDocumentsAndItsUndoing(t *testing.T) {
	m, files, err := FromHistory("hpcvm-cluster-lab", recorded(t, "start-failure-rollback.base.json"))
	require.NoError(t, err)

	assert.Equal(t, "lab", m.ClusterName)
	assert.Equal(t, "start", m.Operation)
	assert.Equal(t, "failed", m.Result)
	assert.NotNil(t, m.EndTime)
	assert.Regexp(t, `^run_lab_start_\d{8}_\d{6}_\d{3}$`, m.TraceFolder)

	// The documents, in the order libvirt got them: network, pool, base
	// volume, the three VM volumes, the three domains.
	var kinds []string
	for _, r := range m.XMLOperations {
		if r.XMLFile == nil {
			continue
		}
		kinds = append(kinds, r.XMLType+" "+r.Operation)
		doc := files[*r.XMLFile]
		require.NotEmpty(t, doc, *r.XMLFile)
		assert.Equal(t, len(doc), r.XMLLength)
		assert.True(t, r.Success)
		if r.Operation != "upload" { // the upload step reports bytes, not "created"
			require.NotNil(t, r.Changed, *r.XMLFile)
			assert.True(t, *r.Changed, "the run created %s", r.TargetName)
		}
	}
	assert.Equal(t, []string{"network create", "pool create", "volume upload",
		"volume create", "volume create", "volume create",
		"domain define", "domain define", "domain define"}, kinds)
	assert.Equal(t, "001_network_create_lab-network_SUCCESS.xml", m.FileListing[0])
	assert.True(t, strings.HasPrefix(files[m.FileListing[0]], "<network"), files[m.FileListing[0]])
	assert.Len(t, files, m.TotalXMLOperations)

	// The calls without a document: the starts (one failed) and the
	// rollback, which this run recorded before steps had summaries.
	var failedStart, undone int
	for _, r := range m.OtherCalls {
		assert.Nil(t, r.XMLFile)
		if r.Operation == "start" && !r.Success {
			failedStart++
			require.NotNil(t, r.Error)
			assert.Contains(t, *r.Error, "injected failure at StartDomain lab-compute-02")
		}
		if r.Compensation {
			undone++
		}
	}
	assert.Equal(t, 1, failedStart)
	assert.Greater(t, undone, 5, "force off, undefine, delete volumes, pool, network")
	for i, r := range m.XMLOperations {
		assert.Equal(t, i+1, r.Sequence)
		require.NotNil(t, r.XMLFile, "xml_operations lists the calls with a document")
		assert.True(t, strings.HasPrefix(*r.XMLFile, fmt.Sprintf("%03d_", i+1)), "files are numbered without gaps: %s", *r.XMLFile)
	}
	for i, r := range m.OtherCalls {
		assert.Equal(t, i+1, r.Sequence)
	}
	assert.Equal(t, len(m.XMLOperations), m.TotalXMLOperations, "as the plan's tracer counts")
	assert.Equal(t, m.TotalLibvirtCalls, len(m.XMLOperations)+len(m.OtherCalls))
	// A VM's disk is named after the VM, as the plan's tracer names it.
	// (The VMs' steps run in parallel: their order is the history's.)
	named := false
	for i, f := range m.FileListing {
		if regexp.MustCompile(`^00[4-6]_volume_create_controller-01_SUCCESS\.xml$`).MatchString(f) {
			named = true
			assert.Equal(t, "controller-01", m.XMLOperations[i].TargetName)
		}
	}
	assert.True(t, named, "the controller's volume is named after the VM: %v", m.FileListing)
}

// A step that failed twice before it succeeded, and one that failed: the
// trace shows the failed attempts with what Temporal kept of their failure.
func TestTraceShowsRetriesAndFailedDocuments(t *testing.T) {
	events := recorded(t, "start-failure-rollback.base.json")
	var ensureDomains []int64
	for _, ev := range events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "EnsureDomain" {
			ensureDomains = append(ensureDomains, ev.GetEventId())
		}
	}
	require.Len(t, ensureDomains, 3)
	for _, ev := range events {
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetScheduledEventId() == ensureDomains[0] {
			a.Attempt = 3
			a.LastFailure = &failurepb.Failure{Message: "libvirtd went away"}
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && a.GetScheduledEventId() == ensureDomains[1] {
			ev.EventType = enums.EVENT_TYPE_ACTIVITY_TASK_FAILED
			ev.Attributes = &history.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &history.ActivityTaskFailedEventAttributes{
				ScheduledEventId: a.GetScheduledEventId(), StartedEventId: a.GetStartedEventId(),
				Failure: &failurepb.Failure{Message: "define domain lab-compute-01", Cause: &failurepb.Failure{Message: "XML error: bad memory"}},
			}}
		}
	}
	m, files, err := FromHistory("hpcvm-cluster-lab", events)
	require.NoError(t, err)
	var names []string
	for _, r := range m.XMLOperations {
		if r.XMLType == "domain" && r.Operation == "define" {
			names = append(names, *r.XMLFile)
			if !r.Success {
				require.NotNil(t, r.Error)
			}
		}
	}
	sort.Strings(names)
	require.Len(t, names, 4, "3 defines and the failed attempts before one of them")
	var failed []string
	for _, r := range m.XMLOperations {
		if r.XMLFile != nil && !r.Success {
			failed = append(failed, *r.Error)
			assert.True(t, strings.HasSuffix(*r.XMLFile, "_FAILED.xml"), *r.XMLFile)
			assert.NotEmpty(t, files[*r.XMLFile])
		}
	}
	assert.ElementsMatch(t, []string{"attempts 1 to 2 failed; the last failure: libvirtd went away", "define domain lab-compute-01: XML error: bad memory"}, failed)

	dir := t.TempDir()
	sum, err := Write(dir, m, files)
	require.NoError(t, err)
	assert.Equal(t, m.TotalXMLOperations, sum.XML)
	assert.Equal(t, 2, sum.Failed)
	assert.Equal(t, sum.XML-2, sum.Succeeded)
	onDisk, err := filepath.Glob(filepath.Join(sum.Folder, "*.xml"))
	require.NoError(t, err)
	assert.Len(t, onDisk, sum.XML)
	raw, err := os.ReadFile(filepath.Join(sum.Folder, "trace_metadata.json"))
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(raw, &back))
	for _, key := range []string{"cluster_name", "operation", "start_time", "end_time", "total_xml_operations", "trace_folder", "xml_operations", "file_listing"} {
		assert.Contains(t, back, key)
	}
	assert.Equal(t, sum.Folder, back["trace_folder"])

	// Made again (a run traced while it went on, then at its end): the
	// folder is the same and holds only this trace's files.
	require.NoError(t, os.WriteFile(filepath.Join(sum.Folder, "099_domain_define_gone_SUCCESS.xml"), []byte("<domain/>"), 0o644))
	again, err := Write(dir, m, files)
	require.NoError(t, err)
	assert.Equal(t, sum.Folder, again.Folder)
	onDisk, _ = filepath.Glob(filepath.Join(sum.Folder, "*.xml"))
	assert.Len(t, onDisk, sum.XML)
}

func TestSafeNames(t *testing.T) {
	assert.Equal(t, "pool_base.qcow2", safeName("pool/base.qcow2"))
	assert.Equal(t, "_", safeName(".."))
	assert.Equal(t, "a_rm_-rf_b", safeName("a; rm -rf /b"))
	assert.Equal(t, ".._etc_passwd", safeName("../etc/passwd"), "no path separator is left")
}

// A start that finds an object as planned keeps it: libvirt is never
// given its document, and the trace says so in the file's name, in the
// record and in the summary, rather than calling it a SUCCESS that was
// applied. A start of a domain already running is not applied either.
func TestTraceMarksDocumentsThatWereNotApplied(t *testing.T) {
	events := recorded(t, "start-failure-rollback.base.json")
	dc := converter.GetDefaultDataConverter()
	kept, err := dc.ToPayloads(map[string]bool{"created": false})
	require.NoError(t, err)
	notStarted, err := dc.ToPayloads(false)
	require.NoError(t, err)
	activityOf := map[int64]string{}
	var keptDomain, keptStart bool
	for _, ev := range events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			activityOf[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		a := ev.GetActivityTaskCompletedEventAttributes()
		if a == nil {
			continue
		}
		switch activityOf[a.GetScheduledEventId()] {
		case "EnsureDomain":
			if !keptDomain {
				a.Result, keptDomain = kept, true
			}
		case "StartDomain":
			if !keptStart {
				a.Result, keptStart = notStarted, true
			}
		}
	}
	require.True(t, keptDomain && keptStart, "the history has a defined and a started domain")

	m, files, err := FromHistory("hpcvm-cluster-lab", events)
	require.NoError(t, err)
	var notApplied []Record
	for _, r := range m.XMLOperations {
		switch {
		case !r.Success:
			assert.Equal(t, StatusFailed, r.Status)
		case r.Changed != nil && !*r.Changed:
			notApplied = append(notApplied, r)
		default:
			assert.Equal(t, StatusSuccess, r.Status, *r.XMLFile)
			assert.True(t, strings.HasSuffix(*r.XMLFile, "_SUCCESS.xml"), *r.XMLFile)
		}
	}
	require.Len(t, notApplied, 1)
	r := notApplied[0]
	assert.Equal(t, "domain", r.XMLType)
	assert.Equal(t, StatusNotApplied, r.Status)
	assert.Equal(t, fmt.Sprintf("%03d_domain_define_%s_NOT_APPLIED.xml", r.Sequence, r.TargetName), *r.XMLFile)
	assert.Contains(t, files[*r.XMLFile], "<domain", "the document is kept, for comparing it with the domain that was kept")
	assert.Contains(t, r.Note, "libvirt was not given the document")
	var starts []string
	for _, o := range m.OtherCalls {
		if o.Operation == "start" && o.Success {
			starts = append(starts, o.Status)
		}
	}
	assert.Contains(t, starts, StatusNotApplied, "a start of a running domain")

	sum, err := Write(t.TempDir(), m, files)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.NotApplied)
	assert.Contains(t, sum.String(), fmt.Sprintf("(%d successful, %d failed; 1 not applied: their objects existed as planned and were kept)", sum.Succeeded, sum.Failed))
	onDisk, err := filepath.Glob(filepath.Join(sum.Folder, "*_NOT_APPLIED.xml"))
	require.NoError(t, err)
	assert.Len(t, onDisk, 1)
	raw, err := os.ReadFile(filepath.Join(sum.Folder, "trace_metadata.json"))
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"status": "NOT_APPLIED"`)
}
