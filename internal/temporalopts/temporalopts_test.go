package temporalopts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// throwawayPair writes a freshly generated self-signed certificate and its
// key into dir and returns their paths: the tests need real PEM files, and
// checked-in keys would only invite copying.
func throwawayPair(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certPath, keyPath
}

func TestTLSSettingsThatWork(t *testing.T) {
	dir := t.TempDir()
	cert, key := throwawayPair(t, dir, "client")
	ca, _ := throwawayPair(t, dir, "ca")

	cfg, err := Connection{}.TLSConfig()
	require.NoError(t, err)
	assert.Nil(t, cfg, "no TLS flag: plain TCP")

	cfg, err = Connection{TLS: true}.TLSConfig()
	require.NoError(t, err)
	require.NotNil(t, cfg, "--tls alone: TLS with the system's CAs")
	assert.Empty(t, cfg.Certificates)
	assert.Nil(t, cfg.RootCAs)

	cfg, err = Connection{TLSServerName: "temporal.lab"}.TLSConfig()
	require.NoError(t, err)
	require.NotNil(t, cfg, "--tls-server-name alone implies TLS rather than being ignored")
	assert.Equal(t, "temporal.lab", cfg.ServerName)

	cfg, err = Connection{TLSCert: cert, TLSKey: key, TLSCA: ca}.TLSConfig()
	require.NoError(t, err)
	require.NotNil(t, cfg)
	assert.Len(t, cfg.Certificates, 1)
	assert.NotNil(t, cfg.RootCAs)

	opts, err := Connection{TLSCA: ca}.ClientOptions(nil)
	require.NoError(t, err)
	assert.NotNil(t, opts.ConnectionOptions.TLS)
	assert.Equal(t, DefaultAddress, opts.HostPort)
}

func TestTLSSettingsThatAreRefused(t *testing.T) {
	dir := t.TempDir()
	cert, key := throwawayPair(t, dir, "client")
	_, otherKey := throwawayPair(t, dir, "other")
	missing := filepath.Join(dir, "no-such.pem")
	notPEM := filepath.Join(dir, "ca.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o600))

	for _, tc := range []struct {
		name string
		conn Connection
		// every error names the flag and the file to fix
		mentions []string
	}{
		{"key without certificate", Connection{TLSKey: key}, []string{"--tls-key", key, "--tls-cert"}},
		{"certificate without key", Connection{TLSCert: cert}, []string{"--tls-cert", cert, "--tls-key"}},
		{"unreadable certificate", Connection{TLSCert: missing, TLSKey: key}, []string{"--tls-cert", missing, "no such file"}},
		{"unreadable key", Connection{TLSCert: cert, TLSKey: missing}, []string{"--tls-key", missing, "no such file"}},
		{"key of another certificate", Connection{TLSCert: cert, TLSKey: otherKey}, []string{"--tls-cert", cert, "--tls-key", otherKey}},
		{"unreadable CA", Connection{TLSCA: missing}, []string{"--tls-ca", missing, "no such file"}},
		{"CA file without PEM", Connection{TLSCA: notPEM}, []string{"--tls-ca", notPEM, "no PEM certificate"}},
		{"CA is a directory", Connection{TLSCA: dir}, []string{"--tls-ca", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.conn.ClientOptions(nil)
			require.Error(t, err)
			for _, m := range tc.mentions {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}
