package workflows

import "github.com/hpcvm/hpcvm/api"

// The contract (package api) under the names this package has always
// used: a composing workflow imports api, which needs neither cgo nor
// libvirt; code inside hpcvm may use either.
type (
	BootWait           = api.BootWait
	Check              = api.Check
	Description        = api.Description
	DestroyResult      = api.DestroyResult
	Document           = api.Document
	Failure            = api.Failure
	HostQuestionsState = api.HostQuestionsState
	Options            = api.Options
	PlanReport         = api.PlanReport
	PlannedObject      = api.PlannedObject
	Request            = api.Request
	StartResult        = api.StartResult
	Step               = api.Step
	StopResult         = api.StopResult
)

const (
	DefaultHeartbeatTimeout    = api.DefaultHeartbeatTimeout
	DefaultQuestionsPerRun     = api.DefaultQuestionsPerRun
	DefaultShutdownTimeout     = api.DefaultShutdownTimeout
	DefaultStepTimeout         = api.DefaultStepTimeout
	DefaultUploadTimeout       = api.DefaultUploadTimeout
	DescribeClusterName        = api.DescribeClusterName
	DestroyClusterName         = api.DestroyClusterName
	ErrTypeDestroyIncomplete   = api.ErrTypeDestroyIncomplete
	HostAuditName              = api.HostAuditName
	HostQuestionsName          = api.HostQuestionsName
	PendingHostChangesName     = api.PendingHostChangesName
	PlanClusterName            = api.PlanClusterName
	ProgressQuery              = api.ProgressQuery
	QuestionAudit              = api.QuestionAudit
	QuestionDescribe           = api.QuestionDescribe
	QuestionPendingHostChanges = api.QuestionPendingHostChanges
	QuestionPlan               = api.QuestionPlan
	StartClusterName           = api.StartClusterName
	StepCompensated            = api.StepCompensated
	StepCompensationFailed     = api.StepCompensationFailed
	StepDone                   = api.StepDone
	StepFailed                 = api.StepFailed
	StepPending                = api.StepPending
	StepRunning                = api.StepRunning
	StepUnchanged              = api.StepUnchanged
	StopClusterName            = api.StopClusterName
	WorkflowTaskTimeout        = api.WorkflowTaskTimeout
)

// TaskQueue is api.TaskQueue.
func TaskQueue(host string) string { return api.TaskQueue(host) }

// WorkflowID is api.WorkflowID.
func WorkflowID(clusterName string) string { return api.WorkflowID(clusterName) }

// HostQuestionsID is api.HostQuestionsID.
func HostQuestionsID(host string) string { return api.HostQuestionsID(host) }
