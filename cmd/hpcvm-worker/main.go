// Command hpcvm-worker runs on every hypervisor host: it executes the hpcvm
// workflows and this host's libvirt activities, polling the task queue
// "hpcvm.host.<host>".
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/activities"
	"github.com/hpcvm/hpcvm/internal/buildinfo"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/hpcvm/hpcvm/internal/temporalopts"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "hpcvm-worker:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	v := viper.New()
	temporalopts.BindEnv(v)
	cmd := &cobra.Command{
		Use:   "hpcvm-worker",
		Short: "Run this hypervisor host's hpcvm worker",
		Long: `hpcvm-worker executes hpcvm's workflows and this host's libvirt steps
(network, pool, base-image upload, volumes, domains). Run one on every host
that runs clusters. The clusters' workflows run on the control queue
"hpcvm.control", which every host's worker serves; a cluster names its host
in cluster.host, and each of its steps goes to the task queue
"hpcvm.host.<host>", which only that host's worker polls, bounded by the
run's host timeout (hpcvm start --host-timeout). With --control-only the
worker serves the control queue alone and needs no libvirt: run one on a
machine that is not a hypervisor, and the runs of a host that dies still
end, roll back what they can and say what is left there.

Whoever can start workflows on that queue acts as root on this host, so the
worker reads base images only under --image-root (default
/var/lib/hpcvm/images), creates pools only under --pool-root (defaults
/var/lib/libvirt/images and /var/lib/hpcvm/pools, made if missing) and
shares directories into VMs only from under --share-root (defaults /srv and
/var/lib/hpcvm/shares). A path must be written as it resolves: one that is
not clean, or has a symbolic link on the way, is refused with the path to
write instead; anything else is refused before a cluster is created. A
share root may not overlap any other root (a guest writes into its shares).

Changes to the host outside libvirt (IP forwarding and firewall rules for
dns_mode routed, the registry record of dns_mode service_discovery, written
only under --discovery-root) are made only for clusters whose
host_configuration allows them, each recorded in --audit-log and undone by destroy. When libvirtd
runs in a network namespace of its own, --netns names it, so those changes
land where its bridges are.

Every flag can also be set as an environment variable: HPCVM_ and the flag
name in capitals with '_' for '-', e.g. HPCVM_TEMPORAL_ADDRESS.

On SIGINT/SIGTERM the worker stops taking work and gives running steps
--stop-timeout to finish; a step cut off is retried by Temporal, on this host,
when a worker polls its queue again (a base-image upload resumes from its last
recorded offset).`,
		Example: `  hpcvm-worker                                   # local dev server, qemu:///system
  hpcvm-worker --temporal-address temporal.lab:7233 --tls-ca ca.pem --host hv1`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), v)
		},
	}
	f := cmd.Flags()
	host, _ := os.Hostname()
	temporalopts.AddFlags(f)
	f.String("libvirt-uri", "qemu:///system", "libvirt connection URI of this host")
	f.String("host", strings.ToLower(host), "this host's name, as clusters give it in cluster.host")
	f.Duration("stop-timeout", 30*time.Second, "on shutdown, how long running steps may take to finish")
	f.Duration("sticky-timeout", hostworker.DefaultStickyTimeout, "how long a run's next workflow task waits for this worker before any worker of the host may take it (replaying the history); the default holds for a Temporal server up to about 250 ms round trip away; farther, about 4x the round trip")
	f.String("log-level", "info", "debug, info, warn or error")
	f.StringSlice("image-root", activities.DefaultImageRoots, "directory base images may be read from (repeat for several); anything else is refused before a cluster is created")
	f.StringSlice("pool-root", activities.DefaultPoolRoots, "directory cluster pools may be created under, made if missing (repeat for several)")
	f.StringSlice("share-root", activities.DefaultShareRoots, "directory under which virtio_fs_mounts may share host directories into VMs; it may not overlap any other root (repeat for several)")
	f.StringSlice("discovery-root", activities.DefaultDiscoveryRoots, "directory service discovery records (dns_mode service_discovery) may be written to (repeat for several)")
	f.StringSlice("resolver-root", activities.DefaultResolverRoots, "directory the host resolver's entries (dns_mode shared_dns or routed with enable_host_dns_integration) may be written to: the host dnsmasq's conf-dir (repeat for several)")
	f.String("resolver-reload", "systemctl restart dnsmasq", "command that makes the host's dnsmasq read its drop-ins again, run in --netns after hpcvm writes or removes an entry (dnsmasq reads them only when it starts); empty: hpcvm makes no entry")
	f.String("audit-log", hostchange.DefaultAuditPath, "file recording every change hpcvm makes to this host outside libvirt (read it with `hpcvm audit`)")
	f.Bool("no-control", false, "do not serve the control queue: a worker that serves it runs every cluster's workflows, which may send steps to any host, so a host that must not be able to act on the others leaves it to --control-only workers")
	f.Bool("control-only", false, "serve only the control queue (the clusters' workflows), with no libvirt and no host: a machine that keeps runs going when a host dies")
	f.String("netns", "", "network namespace libvirtd's bridges live in, if not the worker's own (a test libvirtd in its namespace): host changes are made there")
	_ = v.BindPFlags(f)
	return cmd
}

func run(ctx context.Context, v *viper.Viper) error {
	level, err := zapcore.ParseLevel(v.GetString("log-level"))
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	logger, err := cfg.Build()
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	if v.GetBool("control-only") {
		return runControl(ctx, v, logger)
	}

	lv, err := libvirt.Dial(v.GetString("libvirt-uri"))
	if err != nil {
		return fmt.Errorf("%w (is libvirtd running? on a test machine: scripts/libvirtd-up.sh)", err)
	}
	defer lv.Close()

	opts, err := temporalopts.FromViper(v).ClientOptions(logger)
	if err != nil {
		return err
	}
	host := v.GetString("host")
	// An identity a successor can check (is that process still running?):
	// see hostworker.TakeOver.
	opts.Identity = hostworker.Identity(host)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("cannot reach Temporal at %s: %w (start it locally with bin/hpcvm-devserver, or point --temporal-address at yours)", opts.HostPort, err)
	}
	defer c.Close()

	// Runs can be found by cluster, operation and host once the namespace
	// knows hpcvm's search attributes. A worker with operator rights (the
	// dev server) adds missing ones; one without them (a team's Temporal)
	// needs an administrator to have added them, and refuses to start
	// until then: the CLI's runs would carry attributes the namespace
	// does not know. Other failures only cost the filtering.
	saCtx, cancelSA := context.WithTimeout(ctx, 10*time.Second)
	added, err := hostworker.EnsureSearchAttributes(saCtx, c, opts.Namespace)
	cancelSA()
	var missing *hostworker.MissingSearchAttributesError
	if errors.As(err, &missing) {
		return err
	} else if err != nil {
		logger.Warn("runs cannot be filtered by cluster in the Web UI", zap.Error(err))
	} else if len(added) > 0 {
		logger.Info("added search attributes to the namespace", zap.Strings("attributes", added), zap.String("namespace", opts.Namespace))
	}

	imageRoots, poolRoots, shareRoots := v.GetStringSlice("image-root"), v.GetStringSlice("pool-root"), v.GetStringSlice("share-root")
	discoveryRoots, resolverRoots := v.GetStringSlice("discovery-root"), v.GetStringSlice("resolver-root")
	for _, r := range slices.Concat(imageRoots, poolRoots, shareRoots, discoveryRoots, resolverRoots) {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("--image-root/--pool-root/--share-root/--discovery-root/--resolver-root %q: give an absolute directory", r)
		}
	}
	if shared, imagePool := activities.RootsOverlap(imageRoots, poolRoots, shareRoots, discoveryRoots, resolverRoots); len(shared) > 0 {
		return fmt.Errorf("%s overlap: a guest writes into the directories it shares, so a share root must hold no image, pool, discovery record or resolver entry; give them disjoint directories",
			strings.Join(shared, "; "))
	} else if len(imagePool) > 0 {
		logger.Warn("image and pool roots overlap: a cluster's base image may be read from a pool (another cluster's disk); give them disjoint directories", zap.Strings("overlapping", imagePool))
	}
	// Pools are made under the pool roots: a missing one is made, as
	// libvirt would make the pool's parent.
	for _, r := range poolRoots {
		if err := os.MkdirAll(r, 0o755); err != nil {
			return fmt.Errorf("--pool-root %s cannot be made: %w", r, err)
		}
	}
	// Split like a shell would split plain words; no shell runs it.
	resolverReload := strings.Fields(v.GetString("resolver-reload"))
	auditLog := v.GetString("audit-log")
	if !filepath.IsAbs(auditLog) {
		return fmt.Errorf("--audit-log %q: give an absolute file path", auditLog)
	}
	netns := v.GetString("netns")
	if netns != "" {
		if _, err := os.Stat(filepath.Join("/run/netns", netns)); err != nil {
			return fmt.Errorf("--netns %q: no such network namespace (ip netns list shows them): %w", netns, err)
		}
	}
	w := hostworker.New(c, lv, hostworker.Options{Host: host, StopTimeout: v.GetDuration("stop-timeout"), StickyTimeout: v.GetDuration("sticky-timeout"), ImageRoots: imageRoots, PoolRoots: poolRoots, ShareRoots: shareRoots,
		DiscoveryRoots: discoveryRoots, ResolverRoots: resolverRoots, ResolverReload: resolverReload, Netns: netns, AuditLog: auditLog, NoControl: v.GetBool("no-control")})
	logger.Info("hpcvm worker starting", zap.String("host", host), zap.String("task_queue", api.TaskQueue(host)), zap.String("control_queue", api.ControlQueue),
		zap.String("temporal", opts.HostPort), zap.String("namespace", opts.Namespace), zap.String("libvirt", lv.URI()),
		zap.Strings("image_roots", imageRoots), zap.Strings("pool_roots", poolRoots), zap.Strings("share_roots", shareRoots),
		zap.String("audit_log", auditLog), zap.String("netns", netns))

	// The steps a crashed predecessor left are retried now, not when their
	// heartbeat timeout passes. Before polling: see TakeOver.
	takeCtx, cancelTake := context.WithTimeout(ctx, 10*time.Second)
	began := time.Now()
	if n, err := hostworker.TakeOver(takeCtx, c, opts.Namespace, host, logger); err != nil {
		logger.Warn("cannot take over a dead predecessor's steps: they are retried when their heartbeat timeout passes", zap.Error(err), zap.Duration("took", time.Since(began)))
	} else {
		logger.Info("looked for a dead predecessor's steps", zap.Int("taken_over", n), zap.Duration("took", time.Since(began)))
	}
	cancelTake()
	retireCtx, cancelRetire := context.WithTimeout(ctx, 10*time.Second)
	if retired, err := hostworker.RetireQuestions(retireCtx, c, host); err != nil {
		logger.Warn("cannot end the host's questions run: it answers on with its own code until it continues as new", zap.String("workflow_id", api.HostQuestionsID(host)), zap.Error(err))
	} else if retired {
		logger.Info("ended the host's questions run: the next question starts one on this worker's code", zap.String("workflow_id", api.HostQuestionsID(host)))
	}
	cancelRetire()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan interface{})
	go func() {
		s := <-sig
		logger.Info("stopping: letting running steps finish", zap.String("signal", s.String()), zap.Duration("stop_timeout", v.GetDuration("stop-timeout")))
		close(stop)
	}()
	// Once polling (the registry's updates need a control worker), the
	// clusters found on the host are bound to it in the cluster registry:
	// how a lost registry is rebuilt.
	go func() {
		adoptCtx, cancelAdopt := context.WithTimeout(ctx, time.Minute)
		defer cancelAdopt()
		bound, err := hostworker.AdoptClusters(adoptCtx, c, lv, host)
		if err != nil {
			logger.Warn("cannot bind the host's clusters in the cluster registry: list may miss them until they are started again", zap.Error(err))
			return
		}
		if len(bound) > 0 {
			logger.Info("bound clusters found on the host in the cluster registry", zap.Strings("clusters", bound))
		}
	}()
	return w.Run(stop)
}

// runControl serves the control queue alone: no libvirt, no host.
func runControl(ctx context.Context, v *viper.Viper, logger *zap.Logger) error {
	opts, err := temporalopts.FromViper(v).ClientOptions(logger)
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	opts.Identity = fmt.Sprintf("hpcvm-worker control pid %d@%s [%s]", os.Getpid(), hostname, buildinfo.Version())
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("cannot reach Temporal at %s: %w (start it locally with bin/hpcvm-devserver, or point --temporal-address at yours)", opts.HostPort, err)
	}
	defer c.Close()
	w := hostworker.NewControl(c, hostworker.ControlOptions{StopTimeout: v.GetDuration("stop-timeout"), StickyTimeout: v.GetDuration("sticky-timeout")})
	logger.Info("hpcvm control worker starting", zap.String("control_queue", api.ControlQueue), zap.String("temporal", opts.HostPort), zap.String("namespace", opts.Namespace))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan interface{})
	go func() {
		s := <-sig
		logger.Info("stopping", zap.String("signal", s.String()))
		close(stop)
	}()
	return w.Run(stop)
}
