package hostworker

import (
	"context"
	"sort"
	"strings"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/activities"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/templates"
	"go.temporal.io/sdk/client"
)

// AdoptClusters binds to this host, in the cluster registry, every
// cluster whose domains it finds in its libvirt made for this host
// (hpcvm's metadata names cluster and host): how the registry is rebuilt
// when it was lost, and how clusters made before it existed enter it. A
// cluster bound to another host as well gains this one: what exists
// exists, and list shows both. It returns the clusters it bound anew.
func AdoptClusters(ctx context.Context, c client.Client, lv *libvirt.Client, host string) ([]string, error) {
	domains, err := lv.ListDomains(templates.MetadataNamespace)
	if err != nil {
		return nil, err
	}
	clusters := map[string]bool{}
	for _, d := range domains {
		if d.Metadata == "" {
			continue
		}
		o, err := templates.ParseOwner(d.Metadata)
		if err != nil || !strings.EqualFold(o.Host, host) {
			continue
		}
		clusters[o.Cluster] = true
	}
	var names []string
	for name := range clusters {
		names = append(names, name)
	}
	sort.Strings(names)
	a := &activities.Activities{Libvirt: lv, Temporal: c}
	var bound []string
	for _, name := range names {
		r, err := a.BindCluster(ctx, api.BindRequest{Cluster: name, Host: host, Adopt: true})
		if err != nil {
			return bound, err
		}
		if r.Added {
			bound = append(bound, name)
		}
	}
	return bound, nil
}
