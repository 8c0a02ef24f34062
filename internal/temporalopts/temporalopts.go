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
	"go.uber.org/zap"
)

// Connection is how to reach Temporal.
type Connection struct {
	Address       string
	Namespace     string
	TLSCert       string // client certificate (PEM), for mutual TLS
	TLSKey        string
	TLSCA         string // CA bundle that signed the server's certificate
	TLSServerName string
	TLS           bool // TLS without a client certificate
}

// Defaults.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ClientOptions builds the SDK's client options. The TLS flags are checked
// as a whole first; their errors name the flag and the file to fix.
func (c Connection) ClientOptions(logger *zap.Logger) (client.Options, error) {
	opts := client.Options{
		HostPort:  c.Address,
		Namespace: c.Namespace,
		Logger:    NewLogger(logger),
	}
	if opts.HostPort == "" {
		opts.HostPort = DefaultAddress
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	cfg, err := c.TLSConfig()
	if err != nil {
		return opts, err
	}
	opts.ConnectionOptions.TLS = cfg
	return opts, nil
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
func AddFlags(fs *pflag.FlagSet) {
	fs.String("temporal-address", DefaultAddress, "Temporal frontend host:port")
	fs.String("namespace", DefaultNamespace, "Temporal namespace")
	fs.Bool("tls", false, "connect to Temporal with TLS (implied by any other --tls-* flag)")
	fs.String("tls-cert", "", "client certificate (PEM) for mutual TLS")
	fs.String("tls-key", "", "client private key (PEM) for mutual TLS")
	fs.String("tls-ca", "", "CA bundle (PEM) that signed the Temporal server's certificate")
	fs.String("tls-server-name", "", "server name to verify in the Temporal server's certificate")
}

// FromViper reads the settings AddFlags defined, from flags or environment.
func FromViper(v *viper.Viper) Connection {
	return Connection{
		Address: v.GetString("temporal-address"), Namespace: v.GetString("namespace"),
		TLS: v.GetBool("tls"), TLSCert: v.GetString("tls-cert"), TLSKey: v.GetString("tls-key"),
		TLSCA: v.GetString("tls-ca"), TLSServerName: v.GetString("tls-server-name"),
	}
}

// BindEnv makes v read HPCVM_<FLAG_NAME> environment variables.
func BindEnv(v *viper.Viper) {
	v.SetEnvPrefix("HPCVM")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
}
