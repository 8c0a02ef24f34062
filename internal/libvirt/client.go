// Package libvirt is hpcvm's only door to libvirtd. It knows nothing about
// clusters: callers hand it XML documents and names, and it makes libvirt
// objects exist (Ensure*), reports on them (Lookup*, List*) and removes them
// (Delete*), classifying every failure into the kinds in errors.go.
package libvirt

import (
	"errors"
	"sync"
	"time"

	lv "libvirt.org/go/libvirt"
)

// Client is a pool of connections to one libvirtd, a connection per running
// call (see maxConns). It is safe for concurrent use; the mutex guards the
// pool, not the calls. After libvirtd went away, a call dials again and
// waits for it to come back (see do).
type Client struct {
	uri     string
	mu      sync.Mutex
	slots   []*connRef // the open connections, live or not yet found dead
	dialing int        // connections being dialled
}

// maxConns is how many connections a Client opens at most: one per call
// running at once, up to the worker's concurrent activities (32). A call
// that shares a connection can wait behind the others in libvirtd: measured
// on libvirt 9.0, the third virDomainDestroy on one connection reached the
// QEMU driver only when one of the first two had returned, 2 s later. So
// every call gets a connection of its own, as every virsh process has; an
// idle one is reused. (libvirtd still runs at most max_workers calls at
// once, 20 by default, whatever the connections.)
const maxConns = 32

// connRef counts the calls running on a connection, so that one found dead
// is closed only after the last of them returned: closing it under a
// running call would free it while in use.
type connRef struct {
	conn    *lv.Connect
	users   int
	retired bool
}

// Dial connects to libvirtd at uri (for example "qemu:///system").
func Dial(uri string) (*Client, error) {
	conn, err := openConn(uri)
	if err != nil {
		return nil, err
	}
	return &Client{uri: uri, slots: []*connRef{{conn: conn}}}, nil
}

func openConn(uri string) (*lv.Connect, error) {
	conn, err := lv.NewConnect(uri)
	if err != nil {
		return nil, &Error{
			Kind: ErrConnection, Op: "connect", Object: uri,
			Detail: libvirtMessage(err) + "; start libvirtd (scripts/libvirtd-up.sh in a checkout) or check the URI",
			Cause:  err,
		}
	}
	return conn, nil
}

// URI is the libvirt URI the client was dialled with.
func (c *Client) URI() string { return c.uri }

// Close releases the connections once calls still running on them return.
// Using the client afterwards dials again.
func (c *Client) Close() error {
	c.retireAll()
	return nil
}

// retireAll drops every pooled connection; calls running on them finish
// first.
func (c *Client) retireAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.slots {
		c.retireLocked(r)
	}
	c.slots = nil
}

func (c *Client) retireLocked(r *connRef) {
	r.retired = true
	if r.users == 0 {
		_, _ = r.conn.Close()
	}
}

// acquire returns a live connection for one call: an idle one, else a new
// one, else (maxConns open) the least busy. A connection found dead
// (libvirtd restarted, or the client was closed) is dropped. Pair with
// release.
func (c *Client) acquire() (*connRef, error) {
	c.mu.Lock()
	for {
		var best *connRef
		for _, r := range c.slots {
			if best == nil || r.users < best.users {
				best = r
			}
		}
		if best == nil || (best.users > 0 && len(c.slots)+c.dialing < maxConns) {
			break // dial one more
		}
		if !connDead(best.conn) {
			best.users++
			c.mu.Unlock()
			return best, nil
		}
		c.dropLocked(best)
	}
	// Dial without the lock: a libvirtd that is slow to answer must not
	// hold up the calls that have a connection.
	c.dialing++
	c.mu.Unlock()
	conn, err := openConn(c.uri)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialing--
	if err != nil {
		return nil, err
	}
	r := &connRef{conn: conn, users: 1}
	c.slots = append(c.slots, r)
	return r, nil
}

// dropLocked retires r and takes it out of the pool.
func (c *Client) dropLocked(r *connRef) {
	c.retireLocked(r)
	for i, s := range c.slots {
		if s == r {
			c.slots = append(c.slots[:i], c.slots[i+1:]...)
			return
		}
	}
}

func (c *Client) release(r *connRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.users--
	if r.retired && r.users == 0 {
		_, _ = r.conn.Close()
	}
}

// connDead reports whether conn has lost libvirtd.
func connDead(conn *lv.Connect) bool {
	alive, err := conn.IsAlive()
	return err != nil || !alive
}

// do runs fn with a live connection and classifies its error. While
// libvirtd does not answer (it is restarting), it waits for it, up to
// reconnectWithin. If fn fails because the connection dropped (libvirtd
// restarted since the last call: without an event loop the client only
// notices when a call fails), it runs fn once more on a new connection when
// retry is set; every operation passed with retry is written to be
// repeatable.
func (c *Client) do(op, object string, retry bool, fn func(conn *lv.Connect) error) error {
	r, err := c.reconnect()
	if err != nil {
		return err
	}
	if !retry {
		// fn cannot be repeated (an upload): make sure first that the
		// connection did not die with a libvirtd restart, which a
		// connection that was idle since cannot tell.
		if _, perr := r.conn.GetLibVersion(); perr != nil && isConnLoss(perr, r.conn) {
			if r, err = c.replaceDead(r); err != nil {
				return err
			}
		}
	}
	err = fn(r.conn)
	if err != nil && retry && isConnLoss(err, r.conn) {
		if r, err = c.replaceDead(r); err != nil {
			return err
		}
		err = fn(r.conn)
	}
	defer c.release(r)
	return classify(op, object, err, r.conn)
}

// replaceDead gives up r, found dead, for a new connection. libvirtd went
// away: every pooled connection is to the same dead daemon, and without an
// event loop they still look alive until a call fails on them. All are
// retired, so this call and the ones after it dial afresh instead of
// finding another dead one.
func (c *Client) replaceDead(r *connRef) (*connRef, error) {
	c.retireAll()
	c.release(r)
	return c.reconnect()
}

// reconnectWithin is how long a call waits for libvirtd to answer again
// before failing: a restart (a package upgrade) takes a second or two, and
// a step that fails for it costs the run a retry.
const reconnectWithin = 15 * time.Second

// reconnect acquires a connection, dialling until libvirtd answers, for at
// most reconnectWithin; only a connection error is waited out.
func (c *Client) reconnect() (*connRef, error) {
	deadline := time.Now().Add(reconnectWithin)
	wait := 50 * time.Millisecond
	for {
		r, err := c.acquire()
		if err == nil || !errors.Is(err, ErrConnection) || time.Now().After(deadline) {
			return r, err
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}
