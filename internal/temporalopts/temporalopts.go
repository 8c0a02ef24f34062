// Package temporalopts holds the Temporal connection settings shared by the
// worker and the CLI: address, namespace, TLS, and the zap-backed logger.
package temporalopts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.uber.org/zap"
)

// Connection is how to reach Temporal. Settings come from three places,
// the first that gives one wins: hpcvm's flags (and their HPCVM_*
// environment variables); the SDK's environment configuration, i.e. the
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*
// variables over a profile of temporal.toml (TEMPORAL_PROFILE,
// TEMPORAL_CONFIG_FILE), as the temporal CLI and every SDK read them; then
// hpcvm's defaults (the local dev server). Empty fields are unset.
type Connection struct {
	Address       string
	Namespace     string
	TLSCert       string // client certificate (PEM), for mutual TLS
	TLSKey        string
	TLSCA         string // CA bundle that signed the server's certificate
	TLSServerName string
	TLS           bool // TLS without a client certificate

	// Profile names the temporal.toml profile ("" : TEMPORAL_PROFILE, else
	// "default"); ConfigFile the file ("": TEMPORAL_CONFIG_FILE, else the
	// SDK's default path). A missing default file is no error.
	Profile    string
	ConfigFile string
	// Env looks environment variables up; nil means the process's.
	Env envconfig.EnvLookup
}

// Defaults.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ClientOptions builds the SDK's client options. The TLS flags are checked
// as a whole first; their errors name the flag and the file to fix.
func (c Connection) ClientOptions(logger *zap.Logger) (client.Options, error) {
	if _, err := c.TLSConfig(); err != nil {
		return client.Options{}, err
	}
	prof, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{
		ConfigFilePath: c.ConfigFile, ConfigFileProfile: c.Profile, EnvLookup: c.Env,
	})
	if err != nil {
		return client.Options{}, fmt.Errorf("Temporal client configuration (temporal.toml profile, TEMPORAL_* environment variables): %w; "+
			"name an existing profile with --temporal-profile or TEMPORAL_PROFILE, or the file with --temporal-config-file or TEMPORAL_CONFIG_FILE", err)
	}
	c.override(&prof)
	opts, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("Temporal client configuration (temporal.toml profile, TEMPORAL_* environment variables): %w", err)
	}
	opts.Logger = NewLogger(logger)
	if opts.HostPort == "" {
		opts.HostPort = DefaultAddress
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if cfg := opts.ConnectionOptions.TLS; cfg != nil {
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
		// Certificate files are read again when they change (renewal in
		// place); certificate data given inline stays as it is.
		if prof.TLS != nil && prof.TLS.ClientCertPath != "" {
			pair, err := newReloadingPair(prof.TLS.ClientCertPath, prof.TLS.ClientKeyPath)
			if err != nil {
				return client.Options{}, err
			}
			cfg.Certificates = nil
			cfg.GetClientCertificate = pair.get
		}
	}
	return opts, nil
}

// override puts hpcvm's settings over the profile's, field by field: a
// --tls-ca flag replaces the profile's CA and keeps its client certificate.
func (c Connection) override(p *envconfig.ClientConfigProfile) {
	if c.Address != "" {
		p.Address = c.Address
	}
	if c.Namespace != "" {
		p.Namespace = c.Namespace
	}
	if !c.wantsTLS() {
		return
	}
	if p.TLS == nil {
		p.TLS = &envconfig.ClientConfigTLS{}
	}
	p.TLS.Disabled = false
	if c.TLSCert != "" {
		p.TLS.ClientCertPath, p.TLS.ClientCertData = c.TLSCert, nil
		p.TLS.ClientKeyPath, p.TLS.ClientKeyData = c.TLSKey, nil
	}
	if c.TLSCA != "" {
		p.TLS.ServerCACertPath, p.TLS.ServerCACertData = c.TLSCA, nil
	}
	if c.TLSServerName != "" {
		p.TLS.ServerName = c.TLSServerName
	}
}

// wantsTLS: any TLS setting means the operator expects TLS. Connecting in
// plain text while ignoring, say, --tls-server-name would fail later with
// a far less clear error (or, worse, not fail).
func (c Connection) wantsTLS() bool {
	return c.TLS || c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "" || c.TLSServerName != ""
}

// TLSConfig checks the TLS settings together and builds the client's TLS
// configuration; nil means plain TCP. It reads the files, so a missing or
// malformed one is reported now, before anything is submitted.
func (c Connection) TLSConfig() (*tls.Config, error) {
	if !c.wantsTLS() {
		return nil, nil
	}
	switch {
	case c.TLSKey != "" && c.TLSCert == "":
		return nil, fmt.Errorf("--tls-key %s is given without --tls-cert: mutual TLS needs the client certificate and its private key; add --tls-cert, or drop --tls-key", c.TLSKey)
	case c.TLSCert != "" && c.TLSKey == "":
		return nil, fmt.Errorf("--tls-cert %s is given without --tls-key: mutual TLS needs the client certificate and its private key; add --tls-key, or drop --tls-cert", c.TLSCert)
	}
	cfg := &tls.Config{ServerName: c.TLSServerName, MinVersion: tls.VersionTLS12}
	if c.TLSCert != "" {
		certPEM, err := readFlagFile("--tls-cert", c.TLSCert)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readFlagFile("--tls-key", c.TLSKey)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s with --tls-key %s: %v; give the client certificate (PEM) and the private key (PEM) it was issued for", c.TLSCert, c.TLSKey, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.TLSCA != "" {
		caPEM, err := readFlagFile("--tls-ca", c.TLSCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate: give the CA bundle (PEM, -----BEGIN CERTIFICATE-----) that signed the Temporal server's certificate", c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// readFlagFile reads the file a flag names; the error names both, since
// "permission denied" alone does not say which of four files is meant.
func readFlagFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return nil, fmt.Errorf("%s %s: cannot read it: %v", flag, path, err)
	}
	return b, nil
}

// zapLogger routes the SDK's key-value logger to zap.
type zapLogger struct{ s *zap.SugaredLogger }

// NewLogger adapts a zap logger to the Temporal SDK's log.Logger.
func NewLogger(l *zap.Logger) *zapLogger {
	if l == nil {
		l = zap.NewNop()
	}
	return &zapLogger{s: l.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (z *zapLogger) Debug(msg string, kv ...interface{}) { z.s.Debugw(msg, kv...) }
func (z *zapLogger) Info(msg string, kv ...interface{})  { z.s.Infow(msg, kv...) }
func (z *zapLogger) Warn(msg string, kv ...interface{})  { z.s.Warnw(msg, kv...) }
func (z *zapLogger) Error(msg string, kv ...interface{}) { z.s.Errorw(msg, kv...) }

// AddFlags defines the connection flags on fs, for hpcvm and hpcvm-worker
// alike; bind them with viper so HPCVM_* environment variables work too.
// A flag that is not given leaves the setting to the SDK's environment
// configuration (TEMPORAL_* variables, temporal.toml), then to the default.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("temporal-address", DefaultAddress, "Temporal frontend host:port (not given: TEMPORAL_ADDRESS or the temporal.toml profile, else this default)")
	fs.String("namespace", DefaultNamespace, "Temporal namespace (not given: TEMPORAL_NAMESPACE or the temporal.toml profile, else this default)")
	fs.Bool("tls", false, "connect to Temporal with TLS (implied by any other --tls-* flag, by TEMPORAL_API_KEY and by a profile's tls settings)")
	fs.String("tls-cert", "", "client certificate (PEM) for mutual TLS (else TEMPORAL_TLS_CLIENT_CERT_PATH or the profile's)")
	fs.String("tls-key", "", "client private key (PEM) for mutual TLS (else TEMPORAL_TLS_CLIENT_KEY_PATH or the profile's)")
	fs.String("tls-ca", "", "CA bundle (PEM) that signed the Temporal server's certificate (else TEMPORAL_TLS_SERVER_CA_CERT_PATH or the profile's)")
	fs.String("tls-server-name", "", "server name to verify in the Temporal server's certificate (else TEMPORAL_TLS_SERVER_NAME or the profile's)")
	fs.String("temporal-profile", "", "profile of the Temporal client configuration file (temporal.toml) to use; default: TEMPORAL_PROFILE, else \"default\"")
	fs.String("temporal-config-file", "", "Temporal client configuration file (TOML, as the temporal CLI and SDKs read it); default: TEMPORAL_CONFIG_FILE, else the user's temporalio/temporal.toml if present")
}

// FromViper reads the settings AddFlags defined that were given, as flags
// or HPCVM_* environment variables; the others stay empty, for the SDK's
// environment configuration and the defaults to fill.
func FromViper(v *viper.Viper) Connection {
	given := func(key string) string {
		if v.IsSet(key) {
			return v.GetString(key)
		}
		return ""
	}
	return Connection{
		Address: given("temporal-address"), Namespace: given("namespace"),
		TLS: v.GetBool("tls"), TLSCert: given("tls-cert"), TLSKey: given("tls-key"),
		TLSCA: given("tls-ca"), TLSServerName: given("tls-server-name"),
		Profile: given("temporal-profile"), ConfigFile: given("temporal-config-file"),
	}
}

// BindEnv makes v read HPCVM_<FLAG_NAME> environment variables.
func BindEnv(v *viper.Viper) {
	v.SetEnvPrefix("HPCVM")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
}
