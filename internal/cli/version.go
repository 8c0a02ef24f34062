package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/buildinfo"
	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of hpcvm and of the workers serving a host",
		Long: `version prints this hpcvm's version (its commit, when built from a git
checkout). With a host (cluster.host of -c FILE, or --host) it also asks
Temporal which hpcvm-worker processes poll that host's task queue and
prints each one's version, so a CLI and a worker of different builds are
seen before they meet. Without a host it asks about every host a cluster
of the namespace is on. Without Temporal, it prints the CLI's version alone.`,
		Example: `  hpcvm version
  hpcvm version --host hv1
  hpcvm version -c cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.out, "client:", buildinfo.Version())
			host := strings.ToLower(a.v.GetString("host"))
			if host == "" && a.v.IsSet("config") {
				spec, err := a.loadSpec()
				if err != nil {
					return err
				}
				host = spec.Cluster.Host
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			if host != "" {
				c, err := a.dial(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				return a.printWorkers(ctx, c, host)
			}
			// No host named: every host a cluster of the namespace is on.
			c, err := a.dial(ctx)
			if err != nil {
				fmt.Fprintf(a.out, "workers: not asked: %s\n", strings.SplitN(err.Error(), "\n", 2)[0])
				return nil
			}
			defer c.Close()
			entries, err := listClusters(ctx, c, "")
			if err != nil {
				return err
			}
			hosts := map[string]bool{}
			for _, e := range entries {
				if e.Host != "" {
					hosts[e.Host] = true
				}
			}
			if len(hosts) == 0 {
				fmt.Fprintln(a.out, "workers: no cluster of this namespace names a host yet; hpcvm version --host H asks one host's workers")
				return nil
			}
			names := make([]string, 0, len(hosts))
			for h := range hosts {
				names = append(names, h)
			}
			sort.Strings(names)
			for _, h := range names {
				if err := a.printWorkers(ctx, c, h); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// workerVersionLine is a worker's version and where it runs, from its
// Temporal identity ("hpcvm-worker HOST pid N ... @MACHINE [VERSION]").
func workerVersionLine(identity string) string {
	open, close := strings.LastIndex(identity, " ["), strings.LastIndex(identity, "]")
	if !strings.HasPrefix(identity, "hpcvm-worker ") || open < 0 || close < open {
		return "version unknown (an older hpcvm-worker, or another program): " + identity
	}
	where := identity[:open]
	if at := strings.LastIndex(where, "@"); at >= 0 {
		where = "on " + where[at+1:]
	}
	pid := ""
	if f := strings.Fields(identity); len(f) > 3 && f[2] == "pid" {
		pid = ", pid " + strings.SplitN(f[3], "@", 2)[0]
	}
	return fmt.Sprintf("%s (%s%s)", identity[open+2:close], where, pid)
}

// printWorkers prints the version of every hpcvm-worker that polled the
// host's task queue lately, or that none did.
func (a *app) printWorkers(ctx context.Context, c client.Client, host string) error {
	resp, err := c.DescribeTaskQueue(ctx, api.TaskQueue(host), enums.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return unreachable(err)
	}
	seen := map[string]bool{}
	var workers []string
	for _, p := range resp.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) > workerSeenWithin || seen[p.GetIdentity()] {
			continue
		}
		seen[p.GetIdentity()] = true
		workers = append(workers, workerVersionLine(p.GetIdentity()))
	}
	sort.Strings(workers)
	if len(workers) == 0 {
		fmt.Fprintf(a.out, "worker: none serves host %s (none polled task queue %s in the last %s); start one with hpcvm-worker --host %s\n", host, api.TaskQueue(host), workerSeenWithin, host)
		return nil
	}
	for _, w := range workers {
		fmt.Fprintf(a.out, "worker (host %s): %s\n", host, w)
	}
	return nil
}
