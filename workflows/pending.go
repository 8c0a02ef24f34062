package workflows

import (
	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"go.temporal.io/sdk/workflow"
)

// PendingHostChangesFor is the question for a cluster file: the host
// changes its start would make, as the start asks for them.
func PendingHostChangesFor(spec cluster.Spec, requestedBy string) (api.PendingRequest, error) {
	p, err := cluster.NewPlan(spec)
	if err != nil {
		return api.PendingRequest{}, err
	}
	hc := cluster.HostChangesOf(spec)
	hc.ApplyTo(&p)
	return pendingRequest(Request{Spec: spec, RequestedBy: requestedBy}, p, hc), nil
}

// pendingRequest names every host change the run would make.
func pendingRequest(req Request, plan cluster.Plan, hc cluster.HostChangesPlan) api.PendingRequest {
	var p api.PendingRequest
	if hc.Routing {
		r := routingRequest(req, plan, hc)
		p.Routing = &r
	}
	if hc.Discovery {
		d := discoveryRequest(req, plan, hc)
		p.Discovery = &d
	}
	if hc.Resolver {
		r := resolverRequest(req, plan, hc)
		p.Resolver = &r
	}
	return p
}

// OnlyPending is hc narrowed to the changes that are not in place.
func OnlyPending(hc cluster.HostChangesPlan, p api.PendingChanges) cluster.HostChangesPlan {
	hc.Routing = hc.Routing && p.Routing
	hc.Discovery = hc.Discovery && p.Discovery
	hc.Resolver = hc.Resolver && p.Resolver
	return hc
}

// PendingHostChanges looks at the host whose queue it runs on and answers
// which of the host changes req names are missing. It changes nothing.
func PendingHostChanges(ctx workflow.Context, req api.PendingRequest) (api.PendingChanges, error) {
	var p api.PendingChanges
	err := workflow.ExecuteActivity(hostQuestion(ctx), api.ActPendingHostChanges, req).Get(ctx, &p)
	return p, err
}
