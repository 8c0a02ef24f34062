// Package trace makes the XML trace of a run from its Temporal history: the
// folder the plan of the Python tool calls "versioned XML tracing",
// run_<cluster>_<operation>_<timestamp>/ with one NNN_<type>_<operation>_
// <target>_<status>.xml file per XML document of a libvirt step (retries
// and compensations included) and trace_metadata.json. The status is
// SUCCESS or FAILED, as the plan's tracer has it, or NOT_APPLIED: the step
// found the object already as the document describes it and kept it, so
// libvirt was never given the document. Since the
// history holds every step's input, the trace can be made after the fact,
// on any machine that reaches Temporal.
package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/workflows"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// Record is one libvirt call of the run, in trace_metadata.json. The first
// nine fields are the plan's; the rest are hpcvm's.
type Record struct {
	Sequence   int       `json:"sequence"`
	Timestamp  time.Time `json:"timestamp"`
	XMLType    string    `json:"xml_type"`  // network, pool, volume, domain
	Operation  string    `json:"operation"` // create, define, upload, start, undefine, ...
	TargetName string    `json:"target_name"`
	Success    bool      `json:"success"`
	Error      *string   `json:"error"`
	XMLFile    *string   `json:"xml_file"` // null: the call handed libvirt a name, no document
	XMLLength  int       `json:"xml_length"`

	// Changed says whether the call changed libvirt, where the step reports
	// it: an ensure step that found its object as planned hands libvirt
	// nothing new (false), a start of a running domain starts nothing.
	Changed *bool `json:"changed,omitempty"`
	// Status is the status its file name ends in: SUCCESS, FAILED, or
	// NOT_APPLIED when the call succeeded without changing libvirt (Note
	// says how).
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`

	Attempt      int    `json:"attempt"`      // Temporal's attempt number of the step
	Compensation bool   `json:"compensation"` // run to undo what the run created
	Step         string `json:"step"`         // the step's summary, as the Web UI shows it
	Activity     string `json:"activity"`     // the activity type
	ActivityID   string `json:"activity_id"`  // the step's ID in the run's history
}

// Metadata is trace_metadata.json.
type Metadata struct {
	ClusterName        string   `json:"cluster_name"`
	Operation          string   `json:"operation"`
	StartTime          string   `json:"start_time"`
	EndTime            *string  `json:"end_time"`             // null while the run goes on
	TotalXMLOperations int      `json:"total_xml_operations"` // len(XMLOperations), as the plan's tracer counts
	TraceFolder        string   `json:"trace_folder"`
	XMLOperations      []Record `json:"xml_operations"` // the calls that handed libvirt a document, numbered as their files
	FileListing        []string `json:"file_listing"`

	// OtherCalls are the calls that changed libvirt with a name and no
	// document (start, delete, undefine), numbered on their own.
	OtherCalls []Record `json:"other_calls"`
	// Every libvirt call of the run: XML operations and other calls.
	TotalLibvirtCalls int    `json:"total_libvirt_calls"`
	WorkflowID        string `json:"workflow_id"`
	RunID             string `json:"run_id"`
	Workflow          string `json:"workflow"`
	Host              string `json:"host"`   // the request's cluster.host (runs of an older hpcvm: their task queue's)
	Result            string `json:"result"` // completed, failed, canceled, terminated, timed out, running
}

// Summary counts the XML operations of a trace.
type Summary struct {
	Folder             string
	XML, Succeeded     int
	Failed, OtherCalls int
	// NotApplied are the successful ones whose document libvirt was never
	// given: the object existed as planned and was kept.
	NotApplied int
}

func (s Summary) String() string {
	counts := fmt.Sprintf("%d successful, %d failed", s.Succeeded, s.Failed)
	if s.NotApplied > 0 {
		counts += fmt.Sprintf("; %d not applied: their objects existed as planned and were kept", s.NotApplied)
	}
	return fmt.Sprintf("XML trace folder: %s\n%d XML operations (%s); %d other libvirt call(s) without a document",
		s.Folder, s.XML, counts, s.OtherCalls)
}

// Statuses of a record, as its file name ends.
const (
	StatusSuccess    = "SUCCESS"
	StatusFailed     = "FAILED"
	StatusNotApplied = "NOT_APPLIED"
)

// status says what became of a call: a successful one that reports it
// changed nothing was not applied (a document compared with the existing
// object and not handed to libvirt, a start of a running domain).
func status(r Record) (status, note string) {
	switch {
	case !r.Success:
		return StatusFailed, ""
	case r.Changed != nil && !*r.Changed && r.XMLLength > 0:
		return StatusNotApplied, fmt.Sprintf("the %s existed and matched this document in what hpcvm compares, so it was kept and libvirt was not given the document", r.XMLType)
	case r.Changed != nil && !*r.Changed:
		return StatusNotApplied, fmt.Sprintf("the %s was already as asked: libvirt was not called to change it", r.XMLType)
	}
	return StatusSuccess, ""
}

// Build reads the history of run runID of workflow workflowID and turns it
// into a trace; runID "" is the newest run.
func Build(ctx context.Context, c client.Client, workflowID, runID string) (Metadata, map[string]string, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*history.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return Metadata{}, nil, err
		}
		events = append(events, ev)
	}
	return FromHistory(workflowID, events)
}

// scheduled is what the trace keeps of a step's scheduled event.
type scheduled struct {
	call    api.Call
	summary string
	id      string
	at      time.Time
	attempt int
	last    string // the failure before the last attempt
}

// runHost is the host a run acted on: its request's cluster.host (runs
// are on the control queue), else the host whose queue it ran on.
func runHost(start *history.WorkflowExecutionStartedEventAttributes) string {
	var req api.Request
	if converter.GetDefaultDataConverter().FromPayloads(start.GetInput(), &req) == nil && req.Spec.Cluster.Host != "" {
		return req.Spec.Cluster.Host
	}
	return strings.TrimPrefix(start.GetTaskQueue().GetName(), api.TaskQueue(""))
}

// FromHistory makes the trace of one run from its events: its metadata and
// the XML files by name.
func FromHistory(workflowID string, events []*history.HistoryEvent) (Metadata, map[string]string, error) {
	if len(events) == 0 {
		return Metadata{}, nil, errors.New("the run has no history")
	}
	startAttrs := events[0].GetWorkflowExecutionStartedEventAttributes()
	if startAttrs == nil {
		return Metadata{}, nil, fmt.Errorf("the history begins with %s, not with the run's start", events[0].GetEventType())
	}
	wfType := startAttrs.GetWorkflowType().GetName()
	op := strings.ToLower(workflows.OperationWord(wfType))
	began := events[0].GetEventTime().AsTime().Local()
	cluster := strings.TrimPrefix(workflowID, api.WorkflowID(""))
	m := Metadata{
		ClusterName: cluster, Operation: op, StartTime: began.Format(time.RFC3339Nano),
		WorkflowID: workflowID, Workflow: wfType, RunID: startAttrs.GetOriginalExecutionRunId(),
		Host:          runHost(startAttrs),
		Result:        "running",
		XMLOperations: []Record{}, FileListing: []string{}, OtherCalls: []Record{},
	}
	// The plan's timestamp: seconds, then milliseconds after an underscore.
	m.TraceFolder = fmt.Sprintf("run_%s_%s_%s_%03d", safeName(cluster), op, began.Format("20060102_150405"), began.Nanosecond()/int(time.Millisecond))

	dc := converter.GetDefaultDataConverter()
	steps := map[int64]*scheduled{}
	var all []Record
	var docs []string // the XML document of each record, "" for none
	add := func(s *scheduled, at time.Time, attempt int, ok bool, errText string, changed *bool) {
		if !s.call.Changes {
			return
		}
		r := Record{Timestamp: at, XMLType: s.call.Kind, Operation: s.call.Operation, TargetName: traceTarget(s.call),
			Success: ok, Attempt: attempt, Step: s.summary, Activity: s.call.Activity, ActivityID: s.id,
			Compensation: strings.HasPrefix(s.summary, "undo: ") || (s.summary == "" && op == "start" && undoesStart(s.call))}
		if !ok {
			r.Error = &errText
		}
		r.Changed = changed
		r.XMLLength = len(s.call.XML)
		r.Status, r.Note = status(r)
		all = append(all, r)
		docs = append(docs, s.call.XML)
	}
	for _, ev := range events {
		when := ev.GetEventTime().AsTime()
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			decode := func(into any) error {
				return dc.FromPayloads(a.GetInput(), into)
			}
			s := &scheduled{call: api.DescribeCall(a.GetActivityType().GetName(), decode), id: a.GetActivityId(), at: when, attempt: 1}
			if p := ev.GetUserMetadata().GetSummary(); p != nil {
				_ = dc.FromPayload(p, &s.summary)
			}
			steps[ev.GetEventId()] = s
			continue
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			if s := steps[a.GetScheduledEventId()]; s != nil {
				s.attempt = int(a.GetAttempt())
				s.last = a.GetLastFailure().GetMessage()
			}
			continue
		}
		var sid int64
		ok, errText := false, ""
		switch {
		case ev.GetActivityTaskCompletedEventAttributes() != nil:
			sid, ok = ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId(), true
		case ev.GetActivityTaskFailedEventAttributes() != nil:
			a := ev.GetActivityTaskFailedEventAttributes()
			sid, errText = a.GetScheduledEventId(), failureText(a.GetFailure().GetMessage(), a.GetFailure().GetCause().GetMessage())
		case ev.GetActivityTaskTimedOutEventAttributes() != nil:
			a := ev.GetActivityTaskTimedOutEventAttributes()
			sid, errText = a.GetScheduledEventId(), "timed out: "+a.GetFailure().GetMessage()
		case ev.GetActivityTaskCanceledEventAttributes() != nil:
			sid, errText = ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId(), "cancelled with the run"
		default:
			if r := runResult(ev); r != "" {
				m.Result = r
				end := when.Local().Format(time.RFC3339Nano)
				m.EndTime = &end
			}
			continue
		}
		s := steps[sid]
		if s == nil {
			continue
		}
		if s.attempt > 1 {
			// Temporal keeps only the failure before the last attempt.
			msg := s.last
			if s.attempt > 2 {
				msg = fmt.Sprintf("attempts 1 to %d failed; the last failure: %s", s.attempt-1, s.last)
			}
			add(s, s.at, s.attempt-1, false, msg, nil)
		}
		var changed *bool
		if ok {
			changed = changedBy(s.call.Activity, ev.GetActivityTaskCompletedEventAttributes().GetResult(), dc)
		}
		add(s, when, s.attempt, ok, errText, changed)
	}

	// The calls that handed libvirt a document are numbered in the order
	// they ended, as their files are (001, 002, ... with no gaps, as the
	// plan's tracer numbers them); the other calls are numbered apart.
	named := map[string]string{}
	for i := range all {
		r := all[i]
		if docs[i] == "" {
			r.Sequence = len(m.OtherCalls) + 1
			m.OtherCalls = append(m.OtherCalls, r)
			continue
		}
		r.Sequence = len(m.XMLOperations) + 1
		name := fmt.Sprintf("%03d_%s_%s_%s_%s.xml", r.Sequence, r.XMLType, r.Operation, safeName(r.TargetName), r.Status)
		r.XMLFile = &name
		named[name] = docs[i]
		m.FileListing = append(m.FileListing, name)
		m.XMLOperations = append(m.XMLOperations, r)
	}
	m.TotalXMLOperations = len(m.XMLOperations)
	m.TotalLibvirtCalls = len(all)
	return m, named, nil
}

// changedBy reads, from a step's result, whether it changed libvirt, for
// the steps that say so; nil for the others.
func changedBy(activity string, result *commonpb.Payloads, dc converter.DataConverter) *bool {
	var changed bool
	switch activity {
	case api.ActEnsureNetwork, api.ActEnsurePool, api.ActEnsureVolume, api.ActEnsureDomain, api.ActEnsureDHCPHost:
		var r api.EnsureResult
		if dc.FromPayloads(result, &r) != nil {
			return nil
		}
		changed = r.Created
	case api.ActStartDomain, api.ActForceOffDomain:
		if dc.FromPayloads(result, &changed) != nil {
			return nil
		}
	default:
		return nil
	}
	return &changed
}

// undoesStart tells the compensations of a start recorded before steps had
// summaries: a start removes or forces off only what it undoes.
func undoesStart(c api.Call) bool {
	switch c.Operation {
	case "delete", "undefine", "destroy", "delete-host":
		return true
	}
	return false
}

func failureText(msg, cause string) string {
	if cause != "" && !strings.Contains(msg, cause) {
		return msg + ": " + cause
	}
	return msg
}

// runResult is the result a closing event of the run says, or "".
func runResult(ev *history.HistoryEvent) string {
	switch ev.GetEventType() {
	case enums.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		return "completed"
	case enums.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		return "failed"
	case enums.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		return "canceled"
	case enums.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		return "terminated"
	case enums.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		return "timed out"
	case enums.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return "continued as new"
	}
	return ""
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// safeName makes a name fit for a file name: anything but letters, digits,
// dot, dash and underscore becomes "_" (a volume's "pool/name" too).
func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

// Write puts the trace into dir/<trace folder>, replacing an earlier trace
// of the same run, and returns its summary.
func Write(dir string, m Metadata, files map[string]string) (Summary, error) {
	folder := filepath.Join(dir, m.TraceFolder)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return Summary{}, err
	}
	// An earlier trace of the same run (of a run then still going) may
	// hold files this one does not.
	old, _ := filepath.Glob(filepath.Join(folder, "[0-9][0-9][0-9]_*.xml"))
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep {
			_ = os.Remove(f)
		}
	}
	for name, doc := range files {
		if err := os.WriteFile(filepath.Join(folder, name), []byte(doc), 0o644); err != nil {
			return Summary{}, err
		}
	}
	m.TraceFolder = folder
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Summary{}, err
	}
	if err := os.WriteFile(filepath.Join(folder, "trace_metadata.json"), append(raw, '\n'), 0o644); err != nil {
		return Summary{}, err
	}
	s := Summary{Folder: folder, XML: m.TotalXMLOperations, OtherCalls: len(m.OtherCalls)}
	for _, r := range m.XMLOperations {
		if r.Success {
			s.Succeeded++
			if r.Status == StatusNotApplied {
				s.NotApplied++
			}
		} else {
			s.Failed++
		}
	}
	return s, nil
}

// traceTarget is the name a call's record and file carry: the object's
// name, and for a volume the name of the VM (or base) it is the disk of,
// without its pool and format, as the plan's tracer names it
// (003_volume_create_controller-01_SUCCESS.xml).
func traceTarget(c api.Call) string {
	if c.Kind != "volume" {
		return c.Target
	}
	_, vol, found := strings.Cut(c.Target, "/")
	if !found {
		vol = c.Target
	}
	for _, ext := range []string{".qcow2", ".img", ".raw"} {
		if v, ok := strings.CutSuffix(vol, ext); ok {
			return v
		}
	}
	return vol
}
