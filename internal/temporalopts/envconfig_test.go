package temporalopts

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeEnv is an environment of the test's making, so the machine's own
// TEMPORAL_* variables cannot change the outcome.
type fakeEnv map[string]string

func (f fakeEnv) Environ() []string {
	var out []string
	for k, v := range f {
		out = append(out, k+"="+v)
	}
	return out
}

func (f fakeEnv) LookupEnv(k string) (string, bool) { v, ok := f[k]; return v, ok }

// writeProfiles writes a temporal.toml with two profiles: "team" (mTLS to
// a team's server) and "cloud" (an API key).
func writeProfiles(t *testing.T, dir, cert, key, ca string) string {
	file := filepath.Join(dir, "temporal.toml")
	require.NoError(t, os.WriteFile(file, []byte(`
[profile.team]
address = "temporal.team.example:7233"
namespace = "hpcvm-team"
[profile.team.tls]
client_cert_path = "`+cert+`"
client_key_path = "`+key+`"
server_ca_cert_path = "`+ca+`"
server_name = "temporal.team.example"

[profile.cloud]
address = "hpcvm.abcde.tmprl.cloud:7233"
namespace = "hpcvm.abcde"
api_key = "secret-key"
`), 0o600))
	return file
}

func TestSettingsFollowTheSDKsEnvironmentConfiguration(t *testing.T) {
	dir := t.TempDir()
	cert, key := throwawayPair(t, dir, "client")
	ca, _ := throwawayPair(t, dir, "ca")
	otherCA, _ := throwawayPair(t, dir, "other-ca")
	file := writeProfiles(t, dir, cert, key, ca)

	t.Run("nothing configured: the local dev server, plain TCP", func(t *testing.T) {
		opts, err := Connection{Env: fakeEnv{}, ConfigFile: filepath.Join(dir, "absent.toml")}.ClientOptions(nil)
		require.NoError(t, err)
		assert.Equal(t, DefaultAddress, opts.HostPort)
		assert.Equal(t, DefaultNamespace, opts.Namespace)
		assert.Nil(t, opts.ConnectionOptions.TLS)
		assert.Nil(t, opts.Credentials)
	})

	t.Run("a profile chosen by TEMPORAL_PROFILE gives address, namespace and mTLS", func(t *testing.T) {
		opts, err := Connection{Env: fakeEnv{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "team"}}.ClientOptions(nil)
		require.NoError(t, err)
		assert.Equal(t, "temporal.team.example:7233", opts.HostPort)
		assert.Equal(t, "hpcvm-team", opts.Namespace)
		require.NotNil(t, opts.ConnectionOptions.TLS)
		assert.Equal(t, "client", clientCN(t, opts.ConnectionOptions.TLS))
		assert.NotNil(t, opts.ConnectionOptions.TLS.RootCAs)
		assert.Equal(t, "temporal.team.example", opts.ConnectionOptions.TLS.ServerName)
		assert.Equal(t, uint16(tls.VersionTLS12), opts.ConnectionOptions.TLS.MinVersion)
	})

	t.Run("TEMPORAL_* variables over the profile, hpcvm's flags over both", func(t *testing.T) {
		env := fakeEnv{"TEMPORAL_NAMESPACE": "from-env", "TEMPORAL_ADDRESS": "env.example:7233"}
		opts, err := Connection{Env: env, ConfigFile: file, Profile: "team"}.ClientOptions(nil)
		require.NoError(t, err)
		assert.Equal(t, "from-env", opts.Namespace)
		assert.Equal(t, "env.example:7233", opts.HostPort)

		opts, err = Connection{Env: env, ConfigFile: file, Profile: "team",
			Address: "flag.example:7233", Namespace: "from-flag", TLSCA: otherCA, TLSServerName: "flag.example"}.ClientOptions(nil)
		require.NoError(t, err)
		assert.Equal(t, "flag.example:7233", opts.HostPort)
		assert.Equal(t, "from-flag", opts.Namespace)
		require.NotNil(t, opts.ConnectionOptions.TLS)
		assert.Equal(t, "client", clientCN(t, opts.ConnectionOptions.TLS), "the profile's client certificate stays: only the CA was overridden")
		assert.Equal(t, "flag.example", opts.ConnectionOptions.TLS.ServerName)
	})

	t.Run("an API key sends credentials over TLS", func(t *testing.T) {
		opts, err := Connection{Env: fakeEnv{}, ConfigFile: file, Profile: "cloud"}.ClientOptions(nil)
		require.NoError(t, err)
		assert.Equal(t, "hpcvm.abcde", opts.Namespace)
		assert.NotNil(t, opts.Credentials)
		assert.NotNil(t, opts.ConnectionOptions.TLS, "an API key implies TLS")

		opts, err = Connection{Env: fakeEnv{"TEMPORAL_API_KEY": "k", "TEMPORAL_ADDRESS": "x.tmprl.cloud:7233"}, ConfigFile: filepath.Join(dir, "absent.toml")}.ClientOptions(nil)
		require.NoError(t, err)
		assert.Equal(t, "x.tmprl.cloud:7233", opts.HostPort)
		assert.NotNil(t, opts.Credentials)
		assert.NotNil(t, opts.ConnectionOptions.TLS)
	})

	t.Run("a profile that is not there is an error saying where to look", func(t *testing.T) {
		_, err := Connection{Env: fakeEnv{}, ConfigFile: file, Profile: "nope"}.ClientOptions(nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "nope")
		assert.Contains(t, err.Error(), "--temporal-profile")
	})

	t.Run("a profile's unreadable certificate is an error", func(t *testing.T) {
		_, err := Connection{Env: fakeEnv{"TEMPORAL_TLS_CLIENT_CERT_PATH": filepath.Join(dir, "missing.pem")}, ConfigFile: file, Profile: "team"}.ClientOptions(nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "TEMPORAL_*")
	})
}

// Flags that are not given leave their settings to the environment
// configuration, even though they show a default in --help.
func TestFromViperTakesOnlyGivenFlags(t *testing.T) {
	parse := func(args ...string) Connection {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		AddFlags(fs)
		require.NoError(t, fs.Parse(args))
		v := viper.New()
		require.NoError(t, v.BindPFlags(fs))
		return FromViper(v)
	}
	c := parse()
	assert.Empty(t, c.Address)
	assert.Empty(t, c.Namespace)
	c = parse("--temporal-address", "a:1", "--namespace", "n", "--temporal-profile", "team", "--tls-ca", "ca.pem")
	assert.Equal(t, Connection{Address: "a:1", Namespace: "n", Profile: "team", TLSCA: "ca.pem"}, c)

	t.Setenv("HPCVM_NAMESPACE", "from-hpcvm-env")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	AddFlags(fs)
	v := viper.New()
	require.NoError(t, v.BindPFlags(fs))
	BindEnv(v)
	assert.Equal(t, "from-hpcvm-env", FromViper(v).Namespace, "HPCVM_* variables count as flags")
	assert.False(t, strings.Contains(FromViper(v).Address, "7233"), "the address was not given")
}

// clientCN is the common name of the client certificate cfg presents.
func clientCN(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	var pair *tls.Certificate
	if cfg.GetClientCertificate != nil {
		var err error
		pair, err = cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		require.NoError(t, err)
	} else {
		require.Len(t, cfg.Certificates, 1)
		pair = &cfg.Certificates[0]
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	return leaf.Subject.CommonName
}

// A host worker runs for months: a certificate renewed in place is shown
// at the next connection, without a restart; a renewal half written
// leaves the last good one in use.
func TestClientCertificateRenewedInPlace(t *testing.T) {
	dir := t.TempDir()
	cert, key := throwawayPair(t, dir, "before")
	ca, _ := throwawayPair(t, dir, "ca")
	opts, err := Connection{Env: fakeEnv{}, ConfigFile: filepath.Join(dir, "absent.toml"), TLSCert: cert, TLSKey: key, TLSCA: ca}.ClientOptions(nil)
	require.NoError(t, err)
	cfg := opts.ConnectionOptions.TLS
	assert.Equal(t, "before", clientCN(t, cfg))

	newCert, newKey := throwawayPair(t, dir, "after")
	for from, to := range map[string]string{newCert: cert, newKey: key} {
		b, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(to, b, 0o600))
	}
	assert.Equal(t, "after", clientCN(t, cfg))

	require.NoError(t, os.WriteFile(key, []byte("half written"), 0o600))
	assert.Equal(t, "after", clientCN(t, cfg), "an unreadable renewal keeps the last good pair")
}
