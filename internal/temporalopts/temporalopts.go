// Package temporalopts holds the Temporal connection settings shared by the
// worker and the CLI: address, namespace, TLS, and the zap-backed logger.
package temporalopts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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

// ClientOptions builds the SDK's client options.
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
	if c.TLS || c.TLSCert != "" || c.TLSCA != "" {
		cfg := &tls.Config{ServerName: c.TLSServerName, MinVersion: tls.VersionTLS12}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			return opts, errors.New("--tls-cert and --tls-key go together: give both or neither")
		}
		if c.TLSCert != "" {
			pair, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
			if err != nil {
				return opts, fmt.Errorf("loading the TLS client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		if c.TLSCA != "" {
			pem, err := os.ReadFile(c.TLSCA)
			if err != nil {
				return opts, fmt.Errorf("reading the TLS CA bundle: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return opts, fmt.Errorf("%s holds no PEM certificate", c.TLSCA)
			}
			cfg.RootCAs = pool
		}
		opts.ConnectionOptions.TLS = cfg
	}
	return opts, nil
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
	fs.Bool("tls", false, "connect to Temporal with TLS (implied by --tls-cert or --tls-ca)")
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
