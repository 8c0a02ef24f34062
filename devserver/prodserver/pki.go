package prodserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a throw-away certificate authority for tests: a CA, a server
// certificate for loopback, and client certificates whose common names
// the ClaimMapper turns into roles. Every file lies in Dir.
type PKI struct {
	Dir    string
	CAFile string
	// ServerCert and ServerKey are the frontend's certificate; the server's
	// own system worker presents the same pair (CN SystemWorkerCN).
	ServerCert, ServerKey string
	// ServerName is the name clients verify (the certificate holds it and
	// 127.0.0.1).
	ServerName string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// ClientCert is a client certificate and its key, as PEM files.
type ClientCert struct {
	CN       string
	CertFile string
	KeyFile  string
}

// SystemWorkerCN is the common name of the server's own certificate; the
// server's system worker connects to the frontend with it.
const SystemWorkerCN = "temporal-system-worker"

const certLifetime = 24 * time.Hour

// NewPKI makes a CA and a server certificate in dir.
func NewPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, ServerName: "localhost"}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "hpcvm test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	p.ca, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p.caKey = key
	p.CAFile = filepath.Join(dir, "ca.pem")
	if err := writePEM(p.CAFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	// The server's certificate serves both ways: frontend listener, and
	// client of the frontend for the system worker.
	srv, err := p.issue("server", SystemWorkerCN, []string{p.ServerName}, []net.IP{net.IPv4(127, 0, 0, 1)},
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, err
	}
	p.ServerCert, p.ServerKey = srv.CertFile, srv.KeyFile
	return p, nil
}

// IssueClient makes a client certificate with common name cn.
func (p *PKI) IssueClient(cn string) (ClientCert, error) {
	return p.issue("client-"+cn, cn, nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

func (p *PKI) issue(file, cn string, dns []string, ips []net.IP, usage []x509.ExtKeyUsage) (ClientCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return ClientCert{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"hpcvm tests"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return ClientCert{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return ClientCert{}, err
	}
	c := ClientCert{CN: cn, CertFile: filepath.Join(p.Dir, file+".pem"), KeyFile: filepath.Join(p.Dir, file+"-key.pem")}
	if err := writePEM(c.CertFile, "CERTIFICATE", der); err != nil {
		return ClientCert{}, err
	}
	return c, writePEM(c.KeyFile, "EC PRIVATE KEY", keyDER)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writePEM(path, kind string, der []byte) error {
	b := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
