package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/devserver/prodserver"
	"github.com/hpcvm/hpcvm/internal/cli"
	"github.com/hpcvm/hpcvm/internal/hostworker"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// latencyProxy forwards TCP connections on loopback to target, holding
// every chunk back by oneWay in each direction: a Temporal frontend one
// network round trip of 2*oneWay away, as a team's server is, without
// touching the machine's network. It stops with the test.
func latencyProxy(t testing.TB, target string, oneWay time.Duration) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); conns.Wait() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			conns.Add(2)
			go func() { defer conns.Done(); delayedCopy(out, in, oneWay) }()
			go func() { defer conns.Done(); delayedCopy(in, out, oneWay) }()
		}
	}()
	return l.Addr().String()
}

// delayedCopy copies src to dst, each chunk written oneWay after it was
// read, in order; then closes both.
func delayedCopy(dst, src net.Conn, oneWay time.Duration) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	queue := make(chan chunk, 4096)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{time.Now().Add(oneWay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			<-time.After(wait) // the emulated network, not a test's wait
		}
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	for range queue { // let the reader finish
	}
	_, _ = io.Copy(io.Discard, src)
}

// BenchmarkRemoteTemporal starts and destroys a 1+2 cluster against the
// production-shaped server (PostgreSQL, mTLS, a worker without operator
// rights) seen across emulated network round trips, with the default and
// a raised sticky timeout, and prints the time of each and the workflow
// task figures of its runs: what the workflow task timeout and the sticky
// timeout meet on a server that is not on loopback.
//
//	go test -run '^$' -bench RemoteTemporal -benchtime 1x ./e2e/
func BenchmarkRemoteTemporal(b *testing.B) {
	w := newProdWorld(b)
	admin, err := w.srv.Dial(context.Background(), w.admin, nil)
	require.NoError(b, err)
	_, err = hostworker.EnsureSearchAttributes(context.Background(), admin, w.srv.Namespace())
	admin.Close()
	require.NoError(b, err)
	dial := func(addr string, c prodserver.ClientCert) client.Client {
		tlsCfg, err := w.srv.ClientTLS(c)
		require.NoError(b, err)
		cl, err := client.Dial(client.Options{HostPort: addr, Namespace: w.srv.Namespace(), ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg}})
		require.NoError(b, err)
		b.Cleanup(cl.Close)
		return cl
	}
	for range b.N {
		for _, c := range []struct {
			rtt, sticky time.Duration
		}{{0, 0}, {20 * time.Millisecond, 0}, {100 * time.Millisecond, 0}, {100 * time.Millisecond, 2 * time.Second}, {250 * time.Millisecond, 0}} {
			addr := w.srv.FrontendAddr()
			if c.rtt > 0 {
				addr = latencyProxy(b, addr, c.rtt/2)
			}
			e := newEnvOn(b, prodTemporal{srv: w.srv, cli: dial(addr, w.cliCert), addr: addr}, dialLibvirt(b))
			e.workerClient = dial(addr, w.worker)
			e.cliConn = w.connFlags(w.cliCert)
			e.writeConfig("")
			e.startWorkerWith(func(o *hostworker.Options) { o.StickyTimeout = c.sticky })
			e.mustLeaveNothing()
			t0 := time.Now()
			code, out := e.hpcvm("start")
			require.Equal(b, cli.ExitOK, code, out)
			start := time.Since(t0)
			t0 = time.Now()
			code, out = e.hpcvm("destroy", "--yes")
			require.Equal(b, cli.ExitOK, code, out)
			destroy := time.Since(t0)
			sticky := c.sticky
			if sticky == 0 {
				sticky = hostworker.DefaultStickyTimeout
			}
			e.waitForRuns(`HpcvmCluster = "`+e.cluster+`" AND HpcvmOperation = "destroy"`, 1)
			// Printed: a benchmark's log is cut short.
			fmt.Printf("RTT %s, sticky timeout %s: start %s, destroy %s\n", c.rtt, sticky, start.Round(10*time.Millisecond), destroy.Round(10*time.Millisecond))
			for _, l := range e.logRunFigures(api.StartClusterName, api.DestroyClusterName) {
				fmt.Println("  " + l)
			}
		}
	}
}
