// Package prodserver runs a Temporal server shaped like a team's
// production one, in-process, for tests: PostgreSQL persistence (schema set
// up by Temporal's own SQL tool code), a frontend that demands mutual TLS,
// authorization by the client certificate's common name, and a namespace
// other than "default" registered by an administrator's client, the way an
// operator would. hpcvm's workers then run with a certificate that has no
// admin rights.
package prodserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Options configure one server.
type Options struct {
	Postgres Postgres
	// PKI signs the server's certificate and the clients'.
	PKI *PKI
	// Namespace is registered by the admin step at start.
	Namespace string
	// Access maps client certificates to roles; Access.Namespace is set
	// to Namespace.
	Access Access
	// AdminCert is the client certificate the admin step uses; its CN
	// must be one of Access.Admins.
	AdminCert ClientCert
	// Dynamic is the server's dynamic configuration.
	Dynamic dynamicconfig.StaticClient
	// LogLevel: debug, info, warn, error or none.
	LogLevel string
}

// Server is a running server; Stop stops it and drops its databases.
type Server struct {
	opts       Options
	server     temporal.Server
	frontend   string
	databases  []string
	logger     log.Logger
	stopLogger func()
}

const (
	clusterName        = "active"
	namespaceRetention = 24 * time.Hour
	readyTimeout       = 2 * time.Minute
)

// Start creates fresh databases, starts the services and runs the admin
// step (the namespace). It returns once the frontend answers through mTLS.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Namespace == "" || opts.Namespace == "default" {
		return nil, fmt.Errorf("namespace %q: a production-shaped server is tested on a namespace of its own", opts.Namespace)
	}
	if opts.PKI == nil {
		return nil, errors.New("no PKI: the frontend needs its certificate and a CA for the clients'")
	}
	opts.Access.Namespace = opts.Namespace
	logger, stopLogger := newLogger(opts.LogLevel)
	s := &Server{opts: opts, logger: logger, stopLogger: stopLogger}

	suffix := randomHex(4)
	mainDB, visDB := "hpcvm_ci_"+suffix, "hpcvm_ci_"+suffix+"_visibility"
	s.databases = []string{mainDB, visDB}
	ok := false
	defer func() {
		if !ok {
			_ = s.Stop()
		}
	}()
	if err := opts.Postgres.createDatabases(mainDB, visDB, logger); err != nil {
		return nil, err
	}

	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	s.frontend = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	cfg := s.config(ports, mainDB, visDB)
	mapper := cnClaimMapper{access: opts.Access}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: static.SingleLocalHost(s.frontend),
			primitives.HistoryService:  static.SingleLocalHost(loopback(ports[1])),
			primitives.MatchingService: static.SingleLocalHost(loopback(ports[2])),
			primitives.WorkerService:   static.SingleLocalHost(loopback(ports[3])),
		}),
		temporal.WithLogger(logger),
		// Temporal's own authorizer: roles by scope and API access.
		temporal.WithAuthorizer(authorization.NewDefaultAuthorizer()),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return mapper }),
		temporal.WithDynamicConfigClient(opts.Dynamic),
	)
	if err != nil {
		return nil, fmt.Errorf("creating the Temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("starting the Temporal server: %w", err)
	}
	s.server = srv
	if err := s.registerNamespace(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// FrontendAddr is the frontend's host:port (TLS, client certificate required).
func (s *Server) FrontendAddr() string { return s.frontend }

// Namespace is the namespace the admin step registered.
func (s *Server) Namespace() string { return s.opts.Namespace }

// Dial connects with the client certificate c.
func (s *Server) Dial(ctx context.Context, c ClientCert, logger interface {
	Debug(string, ...any)
	Info(string, ...any)
	Warn(string, ...any)
	Error(string, ...any)
}) (client.Client, error) {
	tlsCfg, err := s.ClientTLS(c)
	if err != nil {
		return nil, err
	}
	opts := client.Options{HostPort: s.frontend, Namespace: s.opts.Namespace, ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg}}
	if logger != nil {
		opts.Logger = logger
	}
	return client.DialContext(ctx, opts)
}

// ClientTLS is the TLS configuration of a client presenting c.
func (s *Server) ClientTLS(c ClientCert) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(s.opts.PKI.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: s.opts.PKI.ServerName, MinVersion: tls.VersionTLS12}, nil
}

// registerNamespace is the admin step: the admin's certificate registers
// the namespace, then waits until the frontend serves it.
func (s *Server) registerNamespace(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		lastErr = s.tryRegister(ctx)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("registering namespace %s through %s: %w (last error: %v)", s.opts.Namespace, s.frontend, ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Server) tryRegister(ctx context.Context) error {
	c, err := s.Dial(ctx, s.opts.AdminCert, quietLogger{})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        s.opts.Namespace,
		Description:                      "hpcvm production-shaped test namespace",
		WorkflowExecutionRetentionPeriod: durationpb.New(namespaceRetention),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return err
	}
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.opts.Namespace})
	return err
}

// Stop stops the services and drops the databases Start created.
func (s *Server) Stop() error {
	var errs []error
	if s.server != nil {
		errs = append(errs, s.server.Stop())
		s.server = nil
	}
	if s.stopLogger != nil {
		s.stopLogger()
	}
	if len(s.databases) > 0 {
		errs = append(errs, s.opts.Postgres.dropDatabases(log.NewNoopLogger(), s.databases...))
		s.databases = nil
	}
	return errors.Join(errs...)
}

func (s *Server) config(ports []int, mainDB, visDB string) *config.Config {
	pki := s.opts.PKI
	internal := func(port int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: port, BindOnLocalHost: true}}
	}
	clientTLS := config.ClientTLS{ServerName: pki.ServerName, RootCAFiles: []string{pki.CAFile}}
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"},
			TLS: config.RootTLS{
				// Clients must present a certificate the CA signed.
				Frontend: config.GroupTLS{
					Server: config.ServerTLS{
						CertFile: pki.ServerCert, KeyFile: pki.ServerKey,
						ClientCAFiles: []string{pki.CAFile}, RequireClientAuth: true,
					},
					Client: clientTLS,
				},
				// The server's system worker is a client of the frontend
				// like any other: it shows the server's certificate.
				SystemWorker: config.WorkerTLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, Client: clientTLS},
			},
		},
		Persistence: config.Persistence{
			DefaultStore:     "postgres-default",
			VisibilityStore:  "postgres-visibility",
			NumHistoryShards: 4,
			DataStores: map[string]config.DataStore{
				"postgres-default":    {SQL: s.opts.Postgres.sqlConfig(mainDB)},
				"postgres-visibility": {SQL: s.opts.Postgres.sqlConfig(visDB)},
			},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: s.frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": {RPC: config.RPC{GRPCPort: ports[0], BindOnIP: "127.0.0.1"}},
			"history":  internal(ports[1]),
			"matching": internal(ports[2]),
			"worker":   internal(ports[3]),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: s.frontend},
	}
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts asks the kernel for n free loopback ports. They are released
// before the server binds them, a small race that tests accept.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newLogger logs to stderr at level; the returned func silences it, since
// services stopping one by one log the others' absence.
func newLogger(level string) (log.Logger, func()) {
	if level == "" || level == "none" {
		return log.NewNoopLogger(), func() {}
	}
	atom := zap.NewAtomicLevelAt(log.ParseZapLevel(level))
	enc := log.DefaultZapEncoderConfig
	enc.CallerKey = zapcore.OmitKey
	zl := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), atom))
	return log.NewZapLogger(zl), func() { atom.SetLevel(zapcore.FatalLevel) }
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
