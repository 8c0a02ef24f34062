// Command hpcvm-devserver runs a complete Temporal server (frontend, history,
// matching and worker services) plus the Temporal Web UI in one process, with
// its state in a SQLite file, so a single machine needs nothing else to run
// hpcvm.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "hpcvm-devserver:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	opts := defaultOptions()
	httpPort := -1 // -1: derive from --port

	cmd := &cobra.Command{
		Use:   "hpcvm-devserver",
		Short: "Single-process Temporal server with SQLite persistence for hpcvm development",
		Long: `hpcvm-devserver runs a Temporal server and its Web UI in one process.

State lives in a SQLite file (--db-file): stop the server and start it again
on the same file and your workflows are still there. On first start the file
(and its directory) is created and the schema applied; the namespaces given
with --namespace are registered if they do not exist yet (existing namespaces,
including their retention, are left unchanged).

Ports, relative to --port (default 7233):
  --port        frontend gRPC: point hpcvm at it with
                --temporal-address 127.0.0.1:7233 or HPCVM_TEMPORAL_ADDRESS
  --port+1..+3  internal history, matching and worker services (127.0.0.1 only)
  --http-port   frontend HTTP API (default --port+10, i.e. 7243; 0 disables)
  --ui-port     Web UI (default 8233; 0 disables)

When the server accepts requests it prints one line:
  temporal dev server ready: frontend 127.0.0.1:7233, namespace default, web UI http://127.0.0.1:8233, db .hpcvm/temporal.db
SIGINT (Ctrl-C) or SIGTERM stops it cleanly.`,
		Example: `  hpcvm-devserver
  hpcvm-devserver --db-file /var/tmp/hpcvm/temporal.db --namespace default --namespace hpcvm-test
  hpcvm-devserver --ip 0.0.0.0 --port 7233 --ui-port 0 --log-level info`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.HTTPPort = httpPort
			if httpPort < 0 {
				opts.HTTPPort = opts.Port + defaultHTTPPortOffset
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, opts, cmd.OutOrStdout())
		},
	}
	cmd.SetContext(context.Background())

	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&opts.DBFile, "db-file", opts.DBFile, "SQLite database file holding all server state; created with its directories if missing")
	f.StringVar(&opts.IP, "ip", opts.IP, "IP address the frontend and the Web UI listen on (0.0.0.0 for all interfaces)")
	f.IntVar(&opts.Port, "port", opts.Port, "frontend gRPC port; the internal services use port+1..port+3")
	f.IntVar(&httpPort, "http-port", httpPort, "frontend HTTP API port; -1 means port+10, 0 disables")
	f.IntVar(&opts.UIPort, "ui-port", opts.UIPort, "Web UI port; 0 disables the UI")
	f.StringArrayVar(&opts.Namespaces, "namespace", opts.Namespaces, "namespace to register on start; repeat the flag for several")
	f.DurationVar(&opts.Retention, "retention", opts.Retention, "workflow history retention of namespaces created on start (minimum 24h)")
	f.StringVar(&opts.LogLevel, "log-level", opts.LogLevel, "server log level: debug, info, warn, error or none (logs go to stderr)")
	return cmd
}
