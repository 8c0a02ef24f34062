package temporalopts

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
)

// reloadingPair hands the TLS stack the client certificate from its files
// at every handshake, read again when either file changed: a host worker
// runs for months, its certificate is renewed in place, and the next
// connection it makes shows the new one without a restart. A pair that
// cannot be read (a renewal half written) leaves the last good one in use.
type reloadingPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	stamp   string
	current *tls.Certificate
}

func newReloadingPair(certFile, keyFile string) (*reloadingPair, error) {
	r := &reloadingPair{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(nil); err != nil {
		return nil, err
	}
	return r, nil
}

// stampOf says when and how the files last changed.
func (r *reloadingPair) stampOf() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%s %d %d;", f, st.Size(), st.ModTime().UnixNano())
	}
	return s, nil
}

func (r *reloadingPair) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.stampOf()
	if err == nil && stamp == r.stamp && r.current != nil {
		return r.current, nil
	}
	var pair tls.Certificate
	if err == nil {
		pair, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
	}
	if err != nil {
		if r.current != nil {
			return r.current, nil
		}
		return nil, fmt.Errorf("client certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	r.current, r.stamp = &pair, stamp
	return r.current, nil
}
