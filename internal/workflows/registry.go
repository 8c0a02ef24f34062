package workflows

import (
	"sort"

	"github.com/hpcvm/hpcvm/api"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ClusterRegistry binds each cluster name to the host(s) it lives on, from
// the start that first creates it to the destroy that removes it: one
// workflow per namespace (api.RegistryWorkflowID). Binds and unbinds are
// updates, run one at a time; `hpcvm list` reads it with a query, so a
// cluster is listed for as long as it exists, whatever the namespace's
// retention of its runs.
func ClusterRegistry(ctx workflow.Context, st api.RegistryState) error {
	if st.Clusters == nil {
		st.Clusters = map[string]api.Binding{}
	}
	updates := 0
	if err := workflow.SetQueryHandler(ctx, api.RegistryQueryAll, func() ([]api.Binding, error) {
		out := make([]api.Binding, 0, len(st.Clusters))
		for _, b := range st.Clusters {
			out = append(out, b)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
		return out, nil
	}); err != nil {
		return err
	}
	conflict := func(req api.BindRequest) error {
		if msg := api.BindConflict(st.Clusters, req); msg != "" {
			return temporal.NewNonRetryableApplicationError(msg, api.ErrTypeClusterBound, nil)
		}
		return nil
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, api.RegistryUpdateBind,
		func(ctx workflow.Context, req api.BindRequest) (api.BindResult, error) {
			updates++
			if err := conflict(req); err != nil {
				return api.BindResult{}, err
			}
			b, ok := st.Clusters[req.Cluster]
			if ok && b.HasHost(req.Host) {
				return api.BindResult{}, nil
			}
			if !ok {
				b = api.Binding{Cluster: req.Cluster, Since: workflow.Now(ctx), RunID: req.RunID, Adopted: req.Adopt}
			}
			b.Hosts = append(append([]string{}, b.Hosts...), req.Host)
			sort.Strings(b.Hosts)
			st.Clusters[req.Cluster] = b
			return api.BindResult{Added: true}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req api.BindRequest) error { return conflict(req) }},
	); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, api.RegistryUpdateUnbind,
		func(ctx workflow.Context, req api.UnbindRequest) (api.UnbindResult, error) {
			updates++
			b, ok := st.Clusters[req.Cluster]
			if !ok || !b.HasHost(req.Host) || (req.RunID != "" && b.RunID != req.RunID) {
				return api.UnbindResult{}, nil
			}
			var hosts []string
			for _, h := range b.Hosts {
				if h != req.Host {
					hosts = append(hosts, h)
				}
			}
			if len(hosts) == 0 {
				delete(st.Clusters, req.Cluster)
			} else {
				b.Hosts = hosts
				st.Clusters[req.Cluster] = b
			}
			return api.UnbindResult{Removed: true}, nil
		},
	); err != nil {
		return err
	}
	return continueWhenLong(ctx, &updates, api.RegistryWorkflowName, &st)
}
