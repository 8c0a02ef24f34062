package workflows

import (
	"encoding/json"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
)

// Interceptors are the worker interceptors the hpcvm workflows expect:
// every activity they schedule gets a one-line summary naming its object
// ("define domain hpc-compute-02", "undo: delete volume hpc-pool/base.qcow2"),
// which the Temporal Web UI shows on each step of a run's history. A
// summary is metadata of the scheduled event: replay does not compare it,
// so runs recorded without summaries replay unchanged.
func Interceptors() []interceptor.WorkerInterceptor {
	return []interceptor.WorkerInterceptor{&stepSummaries{}}
}

type stepSummaries struct {
	interceptor.WorkerInterceptorBase
}

func (*stepSummaries) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &summariesInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type summariesInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *summariesInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&summariesOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type summariesOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (o *summariesOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...interface{}) workflow.Future {
	opts := workflow.GetActivityOptions(ctx)
	if opts.Summary == "" {
		opts.Summary = stepSummary(ctx, activityType, args)
		ctx = workflow.WithActivityOptions(ctx, opts)
	}
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// stepSummary describes an activity call from its argument, read the way
// the worker will read it (through JSON, as the SDK's converter encodes
// it): the same description the XML trace makes from the history.
func stepSummary(ctx workflow.Context, activityType string, args []interface{}) string {
	decode := func(into any) error {
		if len(args) == 0 {
			return nil
		}
		raw, err := json.Marshal(args[0])
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, into)
	}
	s := api.DescribeCall(activityType, decode).Summary()
	if undoing(ctx) {
		s = "undo: " + s
	}
	return s
}

// undoKey marks the context compensations run on.
type undoKey struct{}

func undoing(ctx workflow.Context) bool {
	v, _ := ctx.Value(undoKey{}).(bool)
	return v
}

func undoContext(ctx workflow.Context) workflow.Context {
	return workflow.WithValue(ctx, undoKey{}, true)
}
