package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hpcvm/hpcvm/devserver/serverconfig"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/common/primitives/timestamp"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Port layout relative to --port (the frontend gRPC port). The internal
// services only listen on 127.0.0.1 and are found through static membership,
// so no gossip (ringpop) ports are needed.
const (
	historyPortOffset     = 1
	matchingPortOffset    = 2
	workerPortOffset      = 3
	defaultHTTPPortOffset = 10

	clusterName = "active"

	// startTimeout bounds how long start waits for the frontend to answer.
	startTimeout = 2 * time.Minute
	// stopTimeout bounds the graceful shutdown of the Temporal services.
	stopTimeout = 30 * time.Second
)

// options configures one dev server instance.
type options struct {
	// DBFile is the SQLite database file; created (with schema) if missing.
	DBFile string
	// IP is the address the frontend (gRPC + HTTP) and the web UI listen on.
	IP string
	// Port is the frontend gRPC port. Internal services use Port+1..Port+3.
	Port int
	// HTTPPort is the frontend HTTP API port; 0 disables it.
	HTTPPort int
	// UIPort is the web UI port; 0 disables the UI.
	UIPort int
	// Namespaces are registered on start (existing ones are left alone).
	Namespaces []string
	// Retention applies to namespaces created by this server.
	Retention time.Duration
	// LogLevel is debug, info, warn, error or none.
	LogLevel string
}

func defaultOptions() options {
	return options{
		DBFile:     filepath.Join(".hpcvm", "temporal.db"),
		IP:         "127.0.0.1",
		Port:       7233,
		HTTPPort:   7233 + defaultHTTPPortOffset,
		UIPort:     8233,
		Namespaces: []string{"default"},
		Retention:  72 * time.Hour,
		LogLevel:   "warn",
	}
}

func (o *options) validate() error {
	if o.DBFile == "" {
		return errors.New("--db-file must not be empty")
	}
	if net.ParseIP(o.IP) == nil {
		return fmt.Errorf("--ip %q is not an IP address", o.IP)
	}
	if o.Port < 1 || o.Port+workerPortOffset > 65535 {
		return fmt.Errorf("--port %d out of range (1..%d)", o.Port, 65535-workerPortOffset)
	}
	for name, p := range map[string]int{"--http-port": o.HTTPPort, "--ui-port": o.UIPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%s %d out of range (0 disables, else 1..65535)", name, p)
		}
		if p != 0 && p >= o.Port && p <= o.Port+workerPortOffset {
			return fmt.Errorf("%s %d collides with the ports reserved for the server (%d..%d)",
				name, p, o.Port, o.Port+workerPortOffset)
		}
	}
	if o.HTTPPort != 0 && o.HTTPPort == o.UIPort {
		return fmt.Errorf("--http-port and --ui-port are both %d", o.HTTPPort)
	}
	if len(o.Namespaces) == 0 {
		return errors.New("at least one --namespace is required")
	}
	for _, ns := range o.Namespaces {
		if strings.TrimSpace(ns) == "" {
			return errors.New("--namespace must not be empty")
		}
	}
	if o.Retention < 24*time.Hour {
		// The server rejects namespaces with a retention shorter than one day.
		return fmt.Errorf("--retention %s is shorter than the server's minimum of 24h", o.Retention)
	}
	switch o.LogLevel {
	case "debug", "info", "warn", "error", "none":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn, error or none", o.LogLevel)
	}
	return nil
}

// dialHost is the host clients in this process use to reach the frontend:
// the listen IP, or loopback when listening on all interfaces.
func (o *options) dialHost() string {
	if ip := net.ParseIP(o.IP); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return o.IP
}

func (o *options) frontendAddr() string {
	return net.JoinHostPort(o.dialHost(), strconv.Itoa(o.Port))
}

func (o *options) uiURL() string {
	if o.UIPort == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(o.dialHost(), strconv.Itoa(o.UIPort))
}

// devServer is a running Temporal server (plus optional web UI).
type devServer struct {
	opts   options
	server temporal.Server
	ui     *uiServer
	// logLevel is nil when logging is off.
	logLevel *zap.AtomicLevel
	// lock is held while the server uses the DB file.
	lock *os.File
}

// start sets up the database if needed, starts the Temporal services and the
// web UI, and returns once the frontend answers for every namespace.
func start(ctx context.Context, opts options) (*devServer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// The Temporal services exit the process (log.Fatal) when a port is
	// taken, so find out first and fail with an error instead.
	if err := checkPortsFree(opts); err != nil {
		return nil, err
	}
	if dir := filepath.Dir(opts.DBFile); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating database directory: %w", err)
		}
	}
	lock, err := lockDB(opts.DBFile)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = lock.Close()
		}
	}()

	logger, logLevel := newLogger(opts.LogLevel)
	sqlCfg := sqliteConfig(opts.DBFile)
	if err := prepareDatabase(sqlCfg, opts); err != nil {
		return nil, err
	}

	cfg := serverConfig(opts, sqlCfg)
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("claim mapper: %w", err)
	}

	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(staticHosts(opts)),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(serverconfig.Dynamic()),
	)
	if err != nil {
		return nil, fmt.Errorf("creating temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("starting temporal server: %w", err)
	}
	ok = true // from here on ds.stop releases the lock
	ds := &devServer{opts: opts, server: srv, logLevel: logLevel, lock: lock}

	waitCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := waitForFrontend(waitCtx, opts); err != nil {
		_ = ds.stop()
		return nil, err
	}

	if opts.UIPort != 0 {
		ui, err := startUI(opts)
		if err != nil {
			_ = ds.stop()
			return nil, fmt.Errorf("web UI: %w", err)
		}
		ds.ui = ui
	}
	return ds, nil
}

// readyLine is the single line printed once the server accepts requests.
func (s *devServer) readyLine() string {
	ui := "disabled"
	if s.opts.UIPort != 0 {
		ui = s.opts.uiURL()
	}
	return fmt.Sprintf("temporal dev server ready: frontend %s, namespace %s, web UI %s, db %s",
		s.opts.frontendAddr(), strings.Join(s.opts.Namespaces, ","), ui, s.opts.DBFile)
}

// stop shuts down the web UI and the Temporal services.
func (s *devServer) stop() error {
	if s.ui != nil {
		s.ui.stop()
		s.ui = nil
	}
	if s.server == nil {
		return nil
	}
	// While the services stop one by one, the survivors log failed polls and
	// "task queue closed" errors with stack traces. That is expected, so at
	// the default levels (warn, error) keep shutdown quiet; debug and info
	// still show everything.
	if s.logLevel != nil && s.logLevel.Level() >= zapcore.WarnLevel {
		s.logLevel.SetLevel(zapcore.FatalLevel)
	}
	srv := s.server
	s.server = nil
	done := make(chan error, 1)
	go func() { done <- srv.Stop() }()
	select {
	case err := <-done:
		if cerr := checkpointWAL(s.opts.DBFile); err == nil {
			err = cerr
		}
		_ = s.lock.Close() // releases the flock
		return err
	case <-time.After(stopTimeout):
		return fmt.Errorf("temporal server did not stop within %s", stopTimeout)
	}
}

// checkpointWAL copies the write-ahead log into the main database file so
// that, once stopped, the DB file alone holds the complete state.
func checkpointWAL(dbFile string) error {
	db, err := sql.Open("sqlite", "file:"+dbFile+"?mode=rw")
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	var busy, logFrames, checkpointed int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("checkpointing %s: %w", dbFile, err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpointing %s: database busy (%d of %d WAL frames copied)", dbFile, checkpointed, logFrames)
	}
	return nil
}

// run starts the server, prints the ready line to out and blocks until ctx
// is cancelled (SIGINT/SIGTERM in main), then shuts down.
func run(ctx context.Context, opts options, out io.Writer) error {
	s, err := start(ctx, opts)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(out, s.readyLine())
	<-ctx.Done()
	return s.stop()
}

// newLogger returns the server logger (console format, stderr) and the level
// controlling it, so stop can silence the expected shutdown chatter.
func newLogger(level string) (log.Logger, *zap.AtomicLevel) {
	if level == "none" {
		return log.NewNoopLogger(), nil
	}
	atom := zap.NewAtomicLevelAt(log.ParseZapLevel(level))
	enc := log.DefaultZapEncoderConfig
	enc.CallerKey = zapcore.OmitKey
	zl := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), atom))
	return log.NewZapLogger(zl), &atom
}

// checkPortsFree reports the first port the server needs that is taken.
func checkPortsFree(opts options) error {
	type port struct {
		ip   string
		num  int
		what string
	}
	ports := []port{
		{opts.IP, opts.Port, "frontend gRPC (--port)"},
		{"127.0.0.1", opts.Port + historyPortOffset, "history service (--port+1)"},
		{"127.0.0.1", opts.Port + matchingPortOffset, "matching service (--port+2)"},
		{"127.0.0.1", opts.Port + workerPortOffset, "worker service (--port+3)"},
	}
	if opts.HTTPPort != 0 {
		ports = append(ports, port{opts.IP, opts.HTTPPort, "frontend HTTP API (--http-port)"})
	}
	if opts.UIPort != 0 {
		ports = append(ports, port{opts.IP, opts.UIPort, "web UI (--ui-port)"})
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(p.num)))
		if err != nil {
			return fmt.Errorf("port %d for the %s is not available (another dev server running?): %w", p.num, p.what, err)
		}
		_ = l.Close()
	}
	return nil
}

// lockDB takes an exclusive advisory lock next to the DB file so that two
// dev servers never share one database.
func lockDB(dbFile string) (*os.File, error) {
	f, err := os.OpenFile(dbFile+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s is in use by another hpcvm-devserver (lock %s.lock): %w", dbFile, dbFile, err)
	}
	return f, nil
}

func sqliteConfig(dbFile string) *config.SQL {
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: dbFile,
		ConnectAttributes: map[string]string{
			"mode":         "rwc", // read-write, create if missing
			"journal_mode": "wal",
			"synchronous":  "normal",
			"busy_timeout": "10000",
		},
	}
}

// prepareDatabase applies the schema when
// the database has none yet, and registers the namespaces that are missing.
func prepareDatabase(sqlCfg *config.SQL, opts options) error {
	hasSchema, err := schemaPresent(opts.DBFile)
	if err != nil {
		return err
	}
	if !hasSchema {
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			return fmt.Errorf("setting up schema in %s: %w", opts.DBFile, err)
		}
	}

	var nsCfgs []*sqliteschema.NamespaceConfig
	for _, name := range opts.Namespaces {
		nsCfg, err := sqliteschema.NewNamespaceConfig(clusterName, name, false, nil)
		if err != nil {
			return fmt.Errorf("namespace %q: %w", name, err)
		}
		nsCfg.Detail.Config.Retention = timestamp.DurationPtr(opts.Retention)
		nsCfgs = append(nsCfgs, nsCfg)
	}
	// Namespaces that already exist are left unchanged.
	if err := sqliteschema.CreateNamespaces(sqlCfg, nsCfgs...); err != nil {
		return fmt.Errorf("registering namespaces: %w", err)
	}
	return nil
}

// schemaPresent reports whether dbFile already holds the Temporal schema.
// A missing or empty file has none; a file with other tables but no Temporal
// schema is an error rather than something to write into.
func schemaPresent(dbFile string) (bool, error) {
	fi, err := os.Stat(dbFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		return false, fmt.Errorf("--db-file %s is a directory", dbFile)
	}
	if fi.Size() == 0 {
		return false, nil
	}
	// The "sqlite" database/sql driver is registered by the Temporal SQLite plugin.
	db, err := sql.Open("sqlite", "file:"+dbFile+"?mode=ro")
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", dbFile, err)
	}
	defer func() { _ = db.Close() }()
	var temporalTables, allTables int
	err = db.QueryRow(`SELECT
		count(CASE WHEN name IN ('namespaces', 'executions') THEN 1 END),
		count(*)
		FROM sqlite_master WHERE type = 'table'`).Scan(&temporalTables, &allTables)
	if err != nil {
		return false, fmt.Errorf("reading %s (not a SQLite database?): %w", dbFile, err)
	}
	switch {
	case temporalTables == 2:
		return true, nil
	case allTables == 0:
		return false, nil
	default:
		return false, fmt.Errorf("%s is a SQLite database without a complete Temporal schema; "+
			"remove it or choose another --db-file", dbFile)
	}
}

func serverConfig(opts options, sqlCfg *config.SQL) *config.Config {
	host := opts.dialHost()
	internal := func(offset int) config.Service {
		return config.Service{RPC: config.RPC{
			GRPCPort:        opts.Port + offset,
			BindOnLocalHost: true,
		}}
	}
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{
				MaxJoinDuration:  30 * time.Second,
				BroadcastAddress: "127.0.0.1",
			},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores: map[string]config.DataStore{
				sqliteplugin.PluginName: {SQL: sqlCfg},
			},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {
					Enabled:                true,
					InitialFailoverVersion: 1,
					RPCAddress:             opts.frontendAddr(),
				},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": {RPC: config.RPC{
				GRPCPort: opts.Port,
				HTTPPort: opts.HTTPPort,
				BindOnIP: opts.IP,
			}},
			"history":  internal(historyPortOffset),
			"matching": internal(matchingPortOffset),
			"worker":   internal(workerPortOffset),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{
			Archival: config.ArchivalNamespaceDefaults{
				History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
				Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
			},
		},
		// The server's own system worker talks to the frontend through this.
		PublicClient: config.PublicClient{HostPort: net.JoinHostPort(host, strconv.Itoa(opts.Port))},
	}
}

// staticHosts pins every service to its single in-process address.
func staticHosts(opts options) map[primitives.ServiceName]static.Hosts {
	loop := func(offset int) static.Hosts {
		return static.SingleLocalHost(net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port+offset)))
	}
	return map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(opts.frontendAddr()),
		primitives.HistoryService:  loop(historyPortOffset),
		primitives.MatchingService: loop(matchingPortOffset),
		primitives.WorkerService:   loop(workerPortOffset),
	}
}

// waitForFrontend polls until an SDK client can connect and every namespace
// is visible through the frontend, or ctx ends.
func waitForFrontend(ctx context.Context, opts options) error {
	var lastErr error
	for {
		lastErr = checkFrontend(ctx, opts)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("frontend %s not ready: %w (last error: %v)", opts.frontendAddr(), ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func checkFrontend(ctx context.Context, opts options) error {
	c, err := client.DialContext(ctx, client.Options{
		HostPort: opts.frontendAddr(),
		Logger:   quietSDKLogger{},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	for _, ns := range opts.Namespaces {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
		if err != nil {
			return fmt.Errorf("namespace %q: %w", ns, err)
		}
	}
	return nil
}

// quietSDKLogger drops the SDK client's own log lines during readiness polls.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...interface{}) {}
func (quietSDKLogger) Info(string, ...interface{})  {}
func (quietSDKLogger) Warn(string, ...interface{})  {}
func (quietSDKLogger) Error(string, ...interface{}) {}
