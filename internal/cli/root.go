// Package cli implements the hpcvm command line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/temporalopts"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
)

// app is what every command shares.
type app struct {
	// report collects the run of an operation given -o json.
	report *RunReport
	v      *viper.Viper
	in     io.Reader
	out    io.Writer
	errOut io.Writer
	flags  *pflag.FlagSet // the persistent flags, to tell a flag given from its default
}

// Main runs the CLI and returns its exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	a := &app{v: viper.New(), in: in, out: out, errOut: errOut}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintln(errOut, "hpcvm:", ee.msg)
		return ee.code
	}
	// cobra's own errors: unknown command or flag.
	fmt.Fprintln(errOut, "hpcvm:", err)
	return ExitBadInput
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "hpcvm",
		Short: "Run HPC clusters of KVM virtual machines on your libvirt hosts",
		Long: `hpcvm creates, starts, stops and destroys clusters of KVM virtual machines
described in a cluster.yaml: a controller, compute nodes, a private network
with static DHCP leases, a storage pool and a base image.

Every operation is a durable Temporal workflow (a saga) executed by the
hpcvm-worker on the cluster's host: if a step fails or the run is cancelled,
what the run created is removed again, in reverse; if a worker or machine
dies, the run resumes where it stopped. Only one operation runs on a cluster
at a time. Follow runs here or in the Temporal Web UI.

Connection settings come from flags or HPCVM_* environment variables
(HPCVM_TEMPORAL_ADDRESS, HPCVM_NAMESPACE, HPCVM_TLS_CA, ...).

Exit codes: 0 success; 1 the run failed (what it created was rolled back);
2 bad configuration or usage (nothing was created); 3 Temporal or the host's
worker cannot be reached; 4 another operation on the cluster is running (or the same one with another request);
5 a cancel is still pending after --wait;
130 interrupted (the run goes on in Temporal).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	a.flags = pf
	pf.StringP("config", "c", "cluster.yaml", "the cluster file")
	pf.String("host", "", "override cluster.host: the hypervisor host whose worker runs the cluster")
	pf.String("name", "", "act on the cluster of this name without reading a cluster file (stop, destroy, status, cancel, trace, inventory); with --host, default this machine's hostname")
	pf.Duration("host-timeout", api.DefaultHostTimeout, "start, stop, destroy: how long each step waits for the host's worker to take it before the run gives the host up (it then fails, tries nothing more there, and says what is left on the host); the runs themselves are on the control queue, which any host's worker (or hpcvm-worker --control-only) serves")
	pf.String("trace-dir", "traces", "where start, stop, destroy and trace write the XML trace folder of a run (HPCVM_TRACE_DIR); empty: start, stop and destroy write none")
	temporalopts.AddFlags(pf)
	_ = a.v.BindPFlags(pf)
	temporalopts.BindEnv(a.v)

	root.AddCommand(a.withReport("start", a.startCommand()), a.withReport("stop", a.stopCommand()), a.withReport("destroy", a.destroyCommand()), a.statusCommand(), a.cancelCommand(), a.validateCommand(), a.planCommand(), a.traceCommand(), a.inventoryCommand(), a.versionCommand(), a.listCommand(), a.convertCommand(), a.auditCommand(), a.ledgerCommand())
	return root
}

// traceDir is --trace-dir, else HPCVM_TRACE_DIR, else ./traces. An empty
// HPCVM_TRACE_DIR switches traces off as an empty --trace-dir does (viper
// takes an empty environment variable for an unset one).
func (a *app) traceDir() string {
	if f := a.flags.Lookup("trace-dir"); f != nil && !f.Changed {
		if dir, set := os.LookupEnv("HPCVM_TRACE_DIR"); set && dir == "" {
			return ""
		}
	}
	return a.v.GetString("trace-dir")
}

// loadSpec reads and validates the cluster file; errors exit with code 2.
func (a *app) loadSpec() (cluster.Spec, error) {
	spec, err := a.readSpec()
	if err != nil {
		return spec, fail(ExitBadInput, "%v\nnothing was submitted", err)
	}
	return spec, nil
}

// readSpec reads and validates the cluster file, --host applied.
func (a *app) readSpec() (cluster.Spec, error) {
	spec, err := cluster.Load(a.v.GetString("config"))
	if err != nil {
		return spec, err
	}
	if host := a.v.GetString("host"); host != "" {
		spec.Cluster.Host = strings.ToLower(host)
		if err := cluster.Validate(spec); err != nil {
			return spec, err
		}
	}
	return spec, nil
}

// loadTarget is the request of stop, destroy, status and cancel: with
// --name, the cluster's name and host alone (no file is read: these act on
// what the cluster owns in libvirt); otherwise the validated file.
func (a *app) loadTarget() (api.Request, error) {
	name := a.v.GetString("name")
	if name == "" {
		spec, err := a.loadSpec()
		return api.Request{Spec: spec}, err
	}
	if a.v.IsSet("config") && a.v.GetString("config") != "cluster.yaml" {
		return api.Request{}, fail(ExitBadInput, "give either --name or -c, not both")
	}
	host := strings.ToLower(a.v.GetString("host"))
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return api.Request{}, fail(ExitBadInput, "--host is required with --name (the hostname could not be read: %v)", err)
		}
		host = strings.ToLower(h)
	}
	if err := cluster.ValidateTarget(name, host); err != nil {
		return api.Request{}, fail(ExitBadInput, "%v\nnothing was submitted", err)
	}
	return api.Request{Spec: targetSpec(name, host), NameOnly: true}, nil
}

// dialWithin is dial bounded by the time an operator waits for a connection.
func (a *app) dialWithin(ctx context.Context) (client.Client, error) {
	dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return a.dial(dialCtx)
}

// dial connects to Temporal; failure exits with code 3.
func (a *app) dial(ctx context.Context) (client.Client, error) {
	opts, err := temporalopts.FromViper(a.v).ClientOptions(zap.NewNop())
	if err != nil {
		return nil, fail(ExitBadInput, "%v", err)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fail(ExitUnreachable, "cannot reach Temporal at %s (namespace %s): %v\nstart Temporal and a host worker locally with `make up` (or bin/hpcvm-devserver and bin/hpcvm-worker), or point --temporal-address / HPCVM_TEMPORAL_ADDRESS at your Temporal", opts.HostPort, opts.Namespace, err)
	}
	return c, nil
}
