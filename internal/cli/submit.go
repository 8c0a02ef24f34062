package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"

	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/workflows"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// submit starts operation op on the cluster, or attaches to the run of the
// same operation with the same request. Anything else holding the cluster is
// refused (exit 4) with its name and, for the same operation, with what
// differs. All operations share the cluster's workflow ID, so Temporal
// enforces one at a time across processes and machines.
func submit(ctx context.Context, c client.Client, op string, req api.Request) (client.WorkflowRun, bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		run, attached, err := trySubmit(ctx, c, op, req)
		if !errors.Is(err, errRaced) {
			return run, attached, err
		}
	}
	return nil, false, fail(ExitBusy, "cluster %s: other runs kept starting and ending while hpcvm tried to submit; check `hpcvm status`, then try again", req.Spec.Cluster.Name)
}

// errRaced: another run took the cluster's workflow ID between our look at
// it and our start request; looking again settles what to do.
var errRaced = errors.New("another run started meanwhile")

// heldBy is the run that holds a cluster's workflow ID.
type heldBy struct {
	op, workflowID, runID string
	since                 time.Time
}

func (h heldBy) String() string {
	return fmt.Sprintf("%s (workflow %s, run %s) has been running since %s", h.op, h.workflowID, h.runID, h.since.Local().Format(time.RFC3339))
}

func trySubmit(ctx context.Context, c client.Client, op string, req api.Request) (client.WorkflowRun, bool, error) {
	spec := req.Spec
	id := api.WorkflowID(spec.Cluster.Name)
	// A run holding the cluster is answered first, even when the host's
	// worker is down: attaching to it, or learning why yours is refused,
	// needs no worker.
	holder, err := runningOperation(ctx, c, id)
	if err != nil {
		return nil, false, err
	}
	if holder != nil {
		run, err := attachOrRefuse(ctx, c, *holder, op, req)
		return run, run != nil, err
	}
	// A new run: submit it only if a worker will pick it up; otherwise it
	// would wait in the queue and hold the cluster for nothing.
	if err := requireWorker(ctx, c, spec.Cluster.Host); err != nil {
		return nil, false, err
	}
	opts := client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                api.ControlQueue,
		Memo:                                     map[string]any{runHostMemo: spec.Cluster.Host},
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("%s %s on %s", op, spec.Cluster.Name, spec.Cluster.Host),
		StaticDetails:                            runDetails(op, req),
		WorkflowTaskTimeout:                      api.WorkflowTaskTimeout,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.ClusterAttribute.ValueSet(spec.Cluster.Name),
			workflows.OperationAttribute.ValueSet(workflows.OperationWord(op)),
			workflows.HostAttribute.ValueSet(spec.Cluster.Host)),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, op, req)
	if missingSearchAttributes(err) {
		// A namespace no hpcvm-worker could register them in: the run
		// goes on without, and the operator learns how to add them.
		warnNoSearchAttributes.Do(func() {
			fmt.Fprintf(os.Stderr, "warning: namespace lacks hpcvm's search attributes, so runs cannot be filtered by cluster in the Web UI; add them with: temporal operator search-attribute create --name HpcvmCluster --type Keyword --name HpcvmOperation --type Keyword --name HpcvmHost --type Keyword (%v)\n", err)
		})
		opts.TypedSearchAttributes = temporal.SearchAttributes{}
		run, err = c.ExecuteWorkflow(ctx, opts, op, req)
	}
	if err == nil {
		return run, false, nil
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil, false, errRaced
	}
	return nil, false, unreachable(err)
}

var warnNoSearchAttributes sync.Once

// missingSearchAttributes says the namespace refused a start for search
// attributes it does not know.
func missingSearchAttributes(err error) bool {
	var invalid *serviceerror.InvalidArgument
	return errors.As(err, &invalid) && strings.Contains(strings.ToLower(invalid.Error()), "search attribute")
}

// runDetails is the run's static details in the Web UI: what it acts on.
func runDetails(op string, req api.Request) string {
	spec := req.Spec
	if req.NameOnly {
		return fmt.Sprintf("**%s** of cluster **%s** on host %s, by name (every object the cluster owns)", workflows.OperationWord(op), spec.Cluster.Name, spec.Cluster.Host)
	}
	vms := spec.Controller.Count + len(spec.ComputeNodes)
	out := fmt.Sprintf("**%s** of cluster **%s** on host %s: %d VM(s) (%d controller, %d compute), network %s, pool %s, base image %s",
		workflows.OperationWord(op), spec.Cluster.Name, spec.Cluster.Host, vms, spec.Controller.Count, len(spec.ComputeNodes),
		spec.Network.NetworkRange, spec.Cluster.Storage.PoolPath, spec.Cluster.Storage.BaseImage)
	if len(req.VMs) > 0 {
		out += "; only VM(s) " + strings.Join(req.VMs, ", ")
	}
	return out
}

// runningOperation is the run holding the cluster's workflow ID, or nil.
func runningOperation(ctx context.Context, c client.Client, id string) (*heldBy, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return nil, nil
	case err != nil:
		return nil, unreachable(err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, nil
	}
	return &heldBy{op: info.GetType().GetName(), workflowID: id, runID: info.GetExecution().GetRunId(), since: info.GetStartTime().AsTime()}, nil
}

// attachOrRefuse follows the running run when it is the operator's own
// request (the same operation with the same input), and refuses otherwise:
// silently reporting another request's result as yours would be a lie.
func attachOrRefuse(ctx context.Context, c client.Client, h heldBy, op string, req api.Request) (client.WorkflowRun, error) {
	name := req.Spec.Cluster.Name
	if h.op != op {
		return nil, fail(ExitBusy, "cluster %s is busy: %s; wait for it, or stop it with `hpcvm cancel`", name, h)
	}
	theirs, err := startedWith(ctx, c, h)
	var diffs []string
	if err == nil {
		diffs, err = requestDifferences(actedOn(op, theirs), actedOn(op, req))
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return nil, err
	case err != nil:
		return nil, fail(ExitBusy, "cluster %s is busy: %s, and its request cannot be compared with yours (%v); wait for it, or stop it with `hpcvm cancel`", name, h, err)
	}
	if len(diffs) == 0 {
		return c.GetWorkflow(ctx, h.workflowID, h.runID), nil
	}
	return nil, fail(ExitBusy, "cluster %s is busy: %s with a request that differs from yours:\n%s\nwait for it to end and run yours again, or stop it first with `hpcvm cancel`",
		name, h, strings.Join(diffs, "\n"))
}

// actedOn is the part of a request its operation acts on. Stop and destroy
// read only the cluster's name and host, their options and the VMs named:
// a stop from the file and one from --name are the same stop.
func actedOn(op string, r api.Request) api.Request {
	if op != api.StopClusterName && op != api.DestroyClusterName {
		return r
	}
	return api.Request{
		Spec:    cluster.Spec{Cluster: cluster.ClusterSpec{Name: r.Spec.Cluster.Name, Host: r.Spec.Cluster.Host}},
		Options: r.Options,
		VMs:     r.VMs,
	}
}

// startedWith reads the request a run was started with: the input of the
// first event of its history, decoded as the SDK encoded it. Failing RPCs
// are exit errors; an input it cannot read is a plain error.
func startedWith(ctx context.Context, c client.Client, h heldBy) (api.Request, error) {
	var req api.Request
	events := c.GetWorkflowHistory(ctx, h.workflowID, h.runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !events.HasNext() {
		return req, fail(ExitUnreachable, "Temporal returned no history for run %s of %s", h.runID, h.workflowID)
	}
	first, err := events.Next()
	if err != nil {
		return req, unreachable(err)
	}
	attrs := first.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return req, fmt.Errorf("its history begins with %s, not with its start", first.GetEventType())
	}
	if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &req); err != nil {
		return req, fmt.Errorf("its input is not a request this hpcvm can read: %w", err)
	}
	return req, nil
}

// differencesShown caps the list of differences in a refusal: the first
// ones say what is going on; a whole other cluster.yaml would drown it.
const differencesShown = 10

// requestDifferences lists where two requests differ, one line per field
// as `path: running X, yours Y`, with the paths of the JSON encoding: the
// keys of cluster.yaml. Both requests go through the same JSON round trip
// the SDK gives a workflow's input, so "no differences" means exactly "the
// same request after JSON normalisation", the rule for attaching.
func requestDifferences(running, yours api.Request) ([]string, error) {
	// Who asked is not what is asked: the same request from another
	// operator follows the running one.
	running.RequestedBy, yours.RequestedBy = "", ""
	a, err := normalisedRequest(running)
	if err != nil {
		return nil, err
	}
	b, err := normalisedRequest(yours)
	if err != nil {
		return nil, err
	}
	var found []difference
	collectDifferences(nil, a, b, &found)
	var lines []string
	for i, d := range found {
		if i == differencesShown {
			lines = append(lines, fmt.Sprintf("  and %d more", len(found)-differencesShown))
			break
		}
		lines = append(lines, "  "+d.String())
	}
	return lines, nil
}

// normalisedRequest is the request as a workflow receives it (through the
// SDK's default data converter), then as a JSON tree with exact numbers.
func normalisedRequest(r api.Request) (any, error) {
	dc := converter.GetDefaultDataConverter()
	payload, err := dc.ToPayload(r)
	if err != nil {
		return nil, err
	}
	var received api.Request
	if err := dc.FromPayload(payload, &received); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(received)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	err = dec.Decode(&tree)
	return tree, err
}

// absent stands for a key or list entry one side does not have.
type absent struct{}

// difference is one field whose values differ; path holds object keys
// (string) and list indexes (int).
type difference struct {
	path           []any
	running, yours any
}

func collectDifferences(path []any, running, yours any, out *[]difference) {
	switch r := running.(type) {
	case map[string]any:
		if y, ok := yours.(map[string]any); ok {
			keys := make([]string, 0, len(r)+len(y))
			for k := range r {
				keys = append(keys, k)
			}
			for k := range y {
				if _, both := r[k]; !both {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				collectDifferences(append(slices.Clip(path), k), valueOrAbsent(r, k), valueOrAbsent(y, k), out)
			}
			return
		}
	case []any:
		if y, ok := yours.([]any); ok {
			for i := 0; i < max(len(r), len(y)); i++ {
				var rv, yv any = absent{}, absent{}
				if i < len(r) {
					rv = r[i]
				}
				if i < len(y) {
					yv = y[i]
				}
				collectDifferences(append(slices.Clip(path), i), rv, yv, out)
			}
			return
		}
	}
	if !reflect.DeepEqual(running, yours) {
		*out = append(*out, difference{path: path, running: running, yours: yours})
	}
}

func valueOrAbsent(m map[string]any, k string) any {
	if v, ok := m[k]; ok {
		return v
	}
	return absent{}
}

func (d difference) String() string {
	var p strings.Builder
	for _, step := range d.path {
		switch s := step.(type) {
		case int:
			fmt.Fprintf(&p, "[%d]", s)
		case string:
			if p.Len() > 0 {
				p.WriteByte('.')
			}
			p.WriteString(s)
		}
	}
	goType := goTypeAt(reflect.TypeOf(api.Request{}), d.path)
	listEntry := false
	if n := len(d.path); n > 0 {
		_, listEntry = d.path[n-1].(int)
	}
	return fmt.Sprintf("%s: running %s, yours %s", p.String(), showValue(d.running, goType, listEntry), showValue(d.yours, goType, listEntry))
}

// goTypeAt is the Go type of the field a JSON path leads to in t, or nil;
// it lets a difference show a time.Duration as "2m0s", not nanoseconds.
func goTypeAt(t reflect.Type, path []any) reflect.Type {
	for _, step := range path {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil {
			return nil
		}
		switch t.Kind() {
		case reflect.Struct:
			key, _ := step.(string)
			next := reflect.Type(nil)
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "" {
					name = f.Name
				}
				if name == key {
					next = f.Type
					break
				}
			}
			t = next
		case reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
	}
	return t
}

var durationType = reflect.TypeOf(time.Duration(0))

// showValue renders one side of a difference; listEntry says the path ends
// in a list index, where a missing value is an entry the list lacks.
func showValue(v any, goType reflect.Type, listEntry bool) string {
	switch x := v.(type) {
	case absent:
		if listEntry {
			return "(none)"
		}
		return "(not set)"
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case json.Number:
		if goType == durationType {
			if ns, err := x.Int64(); err == nil {
				return time.Duration(ns).String()
			}
		}
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	// An object or a list only one side has: compact JSON, shortened.
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const longest = 100
	if s := string(raw); len(s) > longest {
		return s[:longest] + "…"
	}
	return string(raw)
}

func unreachable(err error) error {
	return fail(ExitUnreachable, "Temporal refused the request: %v", err)
}

// workerSeenWithin is how recently a worker must have polled the host's
// task queue to count as serving it. The server records a poller when each
// long poll begins and ends, and an idle poll lasts up to the server's 60 s
// long-poll expiration: an idle worker's newest record was seen up to 58 s
// old (temporaltest, 200 s of sampling). 90 s covers that with room for
// clock skew between this machine and the server. A worker killed without
// saying goodbye stays in the list for the server's 5 min poller TTL; it
// stops counting here after 90 s.
const workerSeenWithin = 90 * time.Second

// workerStartupGrace: a worker started a moment ago may not have polled
// yet (its first poll reached the server about 15 ms after Start, in the
// e2e tests), so "no worker" is asked again for this long before it is
// believed. With a worker running, the check is one RPC.
const workerStartupGrace = 3 * time.Second

// workerServes reports whether a worker has polled queue recently.
func workerServes(ctx context.Context, c client.Client, queue string) (bool, error) {
	resp, err := c.DescribeTaskQueue(ctx, queue, enums.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return false, err
	}
	for _, p := range resp.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) < workerSeenWithin {
			return true, nil
		}
	}
	return false, nil
}

// awaitWorker is workerServes, asked again during workerStartupGrace while
// the answer is no.
func awaitWorker(ctx context.Context, c client.Client, queue string) (bool, error) {
	deadline := time.Now().Add(workerStartupGrace)
	for {
		serves, err := workerServes(ctx, c, queue)
		if err != nil || serves || !time.Now().Before(deadline) {
			return serves, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// requireWorker refuses a new run (exit 3) when no worker serves the host.
// A namespace that does not let this operator describe task queues cannot
// tell; the run is submitted then, and follow warns if nothing answers.
func requireWorker(ctx context.Context, c client.Client, host string) error {
	queue := api.TaskQueue(host)
	serves, err := awaitWorker(ctx, c, queue)
	var denied *serviceerror.PermissionDenied
	switch {
	case errors.As(err, &denied):
		return nil
	case err != nil:
		return unreachable(err)
	case !serves:
		return fail(ExitUnreachable, "no hpcvm-worker serves host %s: none has polled its task queue %s in the last %s, so the run would only wait in the queue; nothing was submitted\nstart the worker on that host, connected to the same Temporal and namespace: hpcvm-worker --host %s (or correct cluster.host / --host)",
			host, queue, workerSeenWithin, host)
	}
	// The run itself goes to the control queue: a host's worker of an
	// hpcvm older than this CLI serves only its own.
	serves, err = awaitWorker(ctx, c, api.ControlQueue)
	switch {
	case errors.As(err, &denied):
		return nil
	case err != nil:
		return unreachable(err)
	case !serves:
		return fail(ExitUnreachable, "no hpcvm-worker serves the control queue %s, where this hpcvm submits its runs: host %s's worker is of an older hpcvm (`hpcvm version` names its build); nothing was submitted\nupgrade the workers, or run this CLI's version of hpcvm-worker --control-only beside them",
			api.ControlQueue, host)
	}
	return nil
}

// noWorkerWarning is how long a run may go unanswered before the operator
// is told that perhaps no worker serves the host.
const noWorkerWarning = 5 * time.Second

// warnIfNoWorker tells the operator when no worker polls the run's queue:
// the run is safely queued, but nothing happens until one starts.
func (a *app) warnIfNoWorker(ctx context.Context, c client.Client, run client.WorkflowRun, live *liveView) {
	desc, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return
	}
	host := hostOfRun(desc.GetWorkflowExecutionInfo())
	q := api.TaskQueue(host)
	if serves, err := workerServes(ctx, c, q); err == nil && !serves {
		msg := fmt.Sprintf("warning: no hpcvm-worker has polled task queue %s in the last %s: the run waits until one runs (hpcvm-worker --host %s), at most its host timeout per step", q, workerSeenWithin, host)
		if live != nil {
			live.printAbove(msg) // the live block would draw over a line of its own
			return
		}
		fmt.Fprintln(a.errOut, msg)
	}
}

// hostOfQueue is the host whose worker polls queue (see workflows.TaskQueue),
// "" for a queue of no host (the control queue).
func hostOfQueue(queue string) string {
	host, ok := strings.CutPrefix(queue, api.TaskQueue(""))
	if !ok {
		return ""
	}
	return host
}

// runHostMemo is the memo field that names a run's host: runs are on the
// control queue, which names none.
const runHostMemo = api.RunHostMemo

// hostOfRun is the host a run acts on: its memo, else its HpcvmHost search
// attribute, else (runs an older hpcvm started on the host's queue) its
// queue's; "" when none says.
func hostOfRun(info *workflowpb.WorkflowExecutionInfo) string {
	dc := converter.GetDefaultDataConverter()
	for _, p := range []*commonpb.Payload{info.GetMemo().GetFields()[runHostMemo], info.GetSearchAttributes().GetIndexedFields()[workflows.HostAttribute.GetName()]} {
		var host string
		if p != nil && dc.FromPayload(p, &host) == nil && host != "" {
			return host
		}
	}
	return hostOfQueue(info.GetTaskQueue())
}

// follow waits for the run, printing its progress as it changes, and turns
// its outcome into an exit code. Interrupting the wait leaves the run going.
// On a terminal, steps are printed as they end, below them a live line
// (the upload's bar, or what is running); otherwise each change is a line.
func (a *app) follow(ctx context.Context, c client.Client, run client.WorkflowRun, result any) error {
	fmt.Fprintf(a.out, "run %s of workflow %s\n", run.GetRunID(), run.GetID())
	var live *liveView
	if isTerminal(a.out) {
		live = newLiveView(a.out)
		defer live.finish()
	}
	done := make(chan error, 1)
	go func() { done <- run.Get(context.Background(), result) }()
	shown := map[string]string{}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	begun, warned := time.Now(), false
	answered := false
	for {
		select {
		case err := <-done:
			a.showProgress(c, run, shown, live)
			return outcome(err)
		case <-tick.C:
			answered = a.showProgress(c, run, shown, live) || answered
			if !answered && !warned && time.Since(begun) > noWorkerWarning {
				warned = true
				a.warnIfNoWorker(ctx, c, run, live)
			}
		case <-ctx.Done():
			return fail(ExitInterrupted, "stopped following; the run goes on in Temporal (workflow %s). Follow it in the Web UI or with `hpcvm status`; stop it with `hpcvm cancel`", run.GetID())
		}
	}
}

// showProgress prints the steps that changed; it reports whether the run
// answered, i.e. a worker has picked it up.
func (a *app) showProgress(c client.Client, run client.WorkflowRun, shown map[string]string, live *liveView) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), api.ProgressQuery)
	if err != nil {
		return false // not picked up yet, or finished: the next tick or the result tells
	}
	var steps []api.Step
	if v.Get(&steps) != nil {
		return true
	}
	for _, s := range steps {
		key := s.Status + "|" + s.Detail
		if shown[s.Name] == key || s.Status == api.StepPending || (live != nil && s.Status == api.StepRunning) {
			continue // not begun; or on a terminal, the live block shows what runs
		}
		shown[s.Name] = key
		line := fmt.Sprintf("  %-12s %s", s.Status, s.Name)
		if s.Detail != "" {
			line += ": " + s.Detail
		}
		if live != nil {
			live.printAbove(line)
		} else {
			fmt.Fprintln(a.out, line)
		}
	}
	if live != nil {
		live.update(steps, pendingUpload(ctx, c, run))
	}
	return true
}

// outcome maps a run's error to an exit error with the run's own message.
func outcome(err error) error {
	if err == nil {
		return nil
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		msg := "the run was cancelled"
		var f api.Failure
		if canceled.HasDetails() && canceled.Details(&f) == nil {
			if len(f.RolledBack) > 0 {
				msg += "; rolled back: " + joinList(f.RolledBack)
			}
			if len(f.NotUndone) > 0 {
				msg += "; COULD NOT UNDO: " + joinList(f.NotUndone) + " (fix the cause, then run `hpcvm destroy`)"
			}
		}
		return &exitError{code: ExitFailed, msg: msg, cancelledClean: len(f.NotUndone) == 0}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		code := ExitFailed
		if appErr.Type() == api.ErrTypeBadInput {
			code = ExitBadInput
		}
		ee := &exitError{code: code, msg: appErr.Message()}
		if appErr.HasDetails() {
			ee.details = func(into any) error { return appErr.Details(into) }
		}
		return ee
	}
	var terminated *temporal.TerminatedError
	if errors.As(err, &terminated) {
		return fail(ExitFailed, "the run was terminated (not rolled back): run `hpcvm destroy` or `hpcvm start` to settle the cluster")
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return fail(ExitFailed, "the run timed out: %v", err)
	}
	return fail(ExitUnreachable, "lost track of the run: %v", err)
}

func joinList(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
