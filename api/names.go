package api

// TaskQueue is the queue of one hypervisor host's worker: every activity
// of a cluster on that host runs there (and the host's own workflows: its
// questions and its device ledger).
func TaskQueue(host string) string { return "hpcvm.host." + host }

// ControlQueue is the queue of the clusters' workflows (start, stop,
// destroy, plan, describe): every host's worker serves it, and so may a
// worker on a machine without libvirt (hpcvm-worker --control-only). A
// run whose host stops answering still ends there, within its
// Options.HostTimeout, rolls back what it can and reports what is left.
const ControlQueue = "hpcvm.control"

// RunHostMemo is the memo field a cluster run carries its host in (the
// control queue names none): `hpcvm list` and `hpcvm cancel` read it. A
// composing workflow sets it on its child: Memo: {RunHostMemo: host}.
const RunHostMemo = "host"

// WorkflowID is shared by every operation on a cluster: Temporal then lets
// only one run at a time, across all processes and machines.
func WorkflowID(clusterName string) string { return "hpcvm-cluster-" + clusterName }

// Names under which the workflows are registered and started.
const (
	StartClusterName    = "StartCluster"
	StopClusterName     = "StopCluster"
	DestroyClusterName  = "DestroyCluster"
	DescribeClusterName = "DescribeCluster"
	// HostAuditName reads a host's audit log (`hpcvm audit`).
	HostAuditName = "HostAudit"

	// ProgressQuery returns the run's []Step.
	ProgressQuery = "progress"
)

// HostQuestionsName is the long-lived workflow of a host that answers the
// read-only questions of `hpcvm status`, `start --wait-ip`, `list --live`,
// `validate`, `plan`, `audit` and start's look at pending host changes.
//
// Each question is an update of this one run, not a workflow run of its
// own: a `status` polled every two seconds used to leave a run per poll in
// the namespace, burying the start, stop and destroy runs an operator
// looks for in the Web UI. The answers are the same functions the old
// one-question workflows ran (they stay registered for clients of an
// older hpcvm), so a question reads the host exactly as before.
const HostQuestionsName = "HostQuestions"

// HostQuestionsID is the workflow ID of a host's questions workflow.
// It does not share the clusters' prefix (WorkflowID), so `hpcvm list`
// never takes it for a cluster.
func HostQuestionsID(host string) string { return "hpcvm-questions-" + host }

// The questions (update names) HostQuestions answers.
const (
	// QuestionDescribe: Request → Description (DescribeCluster).
	QuestionDescribe = "describe"
	// QuestionPlan: Request → PlanReport (PlanCluster).
	QuestionPlan = "plan"
	// QuestionAudit: activities.AuditRequest → activities.AuditLog (HostAudit).
	QuestionAudit = "audit"
	// QuestionPendingHostChanges: activities.PendingRequest →
	// activities.PendingChanges (PendingHostChanges).
	QuestionPendingHostChanges = "pending-host-changes"
)

// HostQuestionsState is carried from one run to the next.
type HostQuestionsState struct {
	Host string `json:"host"`
	// Answered counts the questions of every run so far (for the Web UI's
	// summary and for the operator's curiosity; nothing depends on it).
	Answered int `json:"answered"`
	// PerRun bounds one run's history: after this many questions (or when
	// the server suggests it, as a plan with its XML is large) the run
	// continues as new. The updates of a run are replayed when a worker
	// restarts, so a short history also keeps that cheap. 0 means
	// DefaultQuestionsPerRun. Part of the input, so that a replay ends
	// its run where the recorded one did.
	PerRun int `json:"per_run,omitempty"`
}

// DefaultQuestionsPerRun is HostQuestionsState.PerRun's default.
const DefaultQuestionsPerRun = 200

// PlanClusterName is the read-only workflow behind `hpcvm validate` and
// `hpcvm plan`.
const PlanClusterName = "PlanCluster"

// PendingHostChangesName answers which of a cluster's host changes are
// not in place on its host (what `hpcvm start` asks to confirm).
const PendingHostChangesName = "PendingHostChanges"
