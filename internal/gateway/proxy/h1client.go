package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// maxNativeRequestBody is the largest request body the HTTP/1.1 client
// sends itself. It writes the whole request before reading the response, so
// a body larger than the sockets' buffers could deadlock against an endpoint
// that answers while it still reads; larger bodies, and bodies of unknown
// length, go through the fallback transport.
const maxNativeRequestBody = 64 << 10

// h1Client is Portico's upstream HTTP/1.1 client for plain-http endpoints.
// It writes each request and reads its response on the calling goroutine
// over a pool of keep-alive connections per endpoint address, so a round
// trip costs no goroutine hand-off. Requests it does not cover (other
// schemes, upgrades, Expect, trailers, bodies of unknown length or larger
// than maxNativeRequestBody) go to fallback.
type h1Client struct {
	fallback    *http.Transport
	dialer      *net.Dialer
	maxIdle     int
	maxConns    int
	idleTimeout time.Duration

	mu    sync.RWMutex
	hosts map[string]*hostPool
}

var _ http.RoundTripper = (*h1Client)(nil)

func newH1Client(fallback *http.Transport, dialer *net.Dialer) *h1Client {
	return &h1Client{
		fallback:    fallback,
		dialer:      dialer,
		maxIdle:     fallback.MaxIdleConnsPerHost,
		maxConns:    fallback.MaxConnsPerHost,
		idleTimeout: fallback.IdleConnTimeout,
		hosts:       make(map[string]*hostPool),
	}
}

// CloseIdleConnections closes the idle connections of both clients.
func (t *h1Client) CloseIdleConnections() {
	t.mu.RLock()
	pools := make([]*hostPool, 0, len(t.hosts))
	for _, p := range t.hosts {
		pools = append(pools, p)
	}
	t.mu.RUnlock()
	for _, p := range pools {
		p.closeIdle()
	}
	t.fallback.CloseIdleConnections()
}

// covers reports whether the client sends req itself.
func (t *h1Client) covers(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return req.ContentLength == 0
	}
	return req.ContentLength > 0 && req.ContentLength <= maxNativeRequestBody
}

// RoundTrip implements http.RoundTripper.
func (t *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.covers(req) {
		return t.fallback.RoundTrip(req)
	}
	var o sendOptions
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil {
		o.got1xx = trace.Got1xxResponse
	}
	res, err := t.do(req.Context(), req, o)
	closeRequestBody(req)
	return res, err
}

// sendOptions are what a caller of do adds to the request.
type sendOptions struct {
	// deadline, if set, bounds the wait for a connection and for the
	// response header; when it passes the request fails with
	// ErrUpstreamTimeout. It costs no timer or context of its own: it is
	// the connection's I/O deadline.
	deadline time.Time
	// got1xx, if set, receives each interim response before the final one.
	got1xx func(code int, header textproto.MIMEHeader) error
	// watch has the connection check ctx by polling, at most watchInterval
	// apart, instead of a context.AfterFunc per request. The caller's own
	// deadline and ctx's are kept exactly; only a cancellation is noticed
	// up to watchInterval late.
	watch bool
	// now, if set, is the current time, to spare a clock read.
	now time.Time
	// res, hdr and body, if set, are memory for the response, its header
	// and its body, which the caller must not use after the exchange ends
	// (the direct path pools them). hdr is cleared before use.
	res  *http.Response
	hdr  http.Header
	body *h1Body
	// interim, if set, is the client's response writer: interim responses
	// are relayed to it (forwardInterim).
	interim http.ResponseWriter
}

// gotInterim passes on one interim response.
func (o *sendOptions) gotInterim(code int, hdr http.Header) error {
	if o.interim != nil {
		forwardInterim(o.interim, code, textproto.MIMEHeader(hdr))
	}
	if o.got1xx != nil {
		return o.got1xx(code, textproto.MIMEHeader(hdr))
	}
	return nil
}

// do sends req, which covers must accept, on a pooled connection and reads
// the response header; ctx (not req's own) governs it. It does not close
// req.Body.
func (t *h1Client) do(ctx context.Context, req *http.Request, o sendOptions) (*http.Response, error) {
	p := t.host(req.URL.Host)
	orig, fresh := req, false
	var replay io.Closer
	defer func() {
		if replay != nil {
			_ = replay.Close()
		}
	}()
	for {
		c, err := p.get(ctx, fresh, o.deadline)
		if err != nil {
			return nil, err
		}
		res, r, err := c.roundTrip(ctx, req, o)
		if err == nil {
			res.Request = orig
			return res, nil
		}
		// A pooled connection the endpoint had already closed fails before
		// the response starts; send the request once more on a new
		// connection when that cannot repeat its effect, as net/http does.
		if r.stale && !fresh && ctx.Err() == nil && (r.nothingWritten || replayable(req)) {
			if r.bodyRead {
				b, gerr := req.GetBody()
				if gerr != nil {
					return nil, err
				}
				r2 := *req
				r2.Body = b
				req, replay = &r2, b
			}
			fresh = true
			continue
		}
		return nil, err
	}
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// replayable reports whether req may be sent again after it was written to a
// connection that failed: its body can be produced again and its method (or
// an idempotency key) says repeating it is harmless.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	if !ok {
		_, ok = req.Header["X-Idempotency-Key"]
	}
	return ok
}

// host returns the connection pool of addr, creating it on first use.
func (t *h1Client) host(addr string) *hostPool {
	t.mu.RLock()
	p := t.hosts[addr]
	t.mu.RUnlock()
	if p != nil {
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p = t.hosts[addr]; p == nil {
		p = &hostPool{t: t, addr: dialAddr(addr)}
		t.hosts[addr] = p
	}
	return p
}

// dialAddr adds the default port to a URL host without one.
func dialAddr(host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// hostPool holds the connections to one endpoint address. Idle connections
// form a stack, so the most recently used is reused first and the others
// reach their idle timeout.
type hostPool struct {
	t    *h1Client
	addr string

	mu      sync.Mutex
	idle    []*h1Conn
	open    int            // connections open, idle or busy
	waiters []chan *h1Conn // requests waiting for MaxConnsPerHost
}

// get returns an idle connection that is still open or, with fresh set or
// none idle, a new one. A deadline, if set, bounds dialing and waiting.
func (p *hostPool) get(ctx context.Context, fresh bool, deadline time.Time) (*h1Conn, error) {
	p.mu.Lock()
	for !fresh && len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		c.idle = false
		c.idleTimer.Stop()
		p.mu.Unlock()
		if c.alive() {
			c.reused = true
			return c, nil
		}
		p.discard(c)
		p.mu.Lock()
	}
	if !deadline.IsZero() {
		// Only a request that dials or waits pays for a context.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, deadline, ErrUpstreamTimeout)
		defer cancel()
	}
	if limit := p.t.maxConns; limit > 0 && p.open >= limit {
		return p.wait(ctx)
	}
	p.open++
	p.mu.Unlock()
	return p.dial(ctx)
}

// wait queues for a connection or a free connection slot; p.mu is held.
func (p *hostPool) wait(ctx context.Context) (*h1Conn, error) {
	ch := make(chan *h1Conn, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case c := <-ch:
		if c != nil {
			return c, nil
		}
		return p.dial(ctx)
	case <-ctx.Done():
	}
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == ch {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, context.Cause(ctx)
		}
	}
	p.mu.Unlock()
	// Handed a connection or a slot while giving up: pass it on.
	if c := <-ch; c != nil {
		p.put(c)
	} else {
		p.releaseSlot()
	}
	return nil, context.Cause(ctx)
}

// dial opens a connection; its slot in p.open is already taken.
func (p *hostPool) dial(ctx context.Context) (*h1Conn, error) {
	nc, err := p.t.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		p.releaseSlot()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	return newH1Conn(p, nc), nil
}

// put returns a connection whose last response ended cleanly.
func (p *hostPool) put(c *h1Conn) {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		c.reused = true
		ch <- c
		return
	}
	if len(p.idle) >= p.t.maxIdle {
		p.mu.Unlock()
		p.discard(c)
		return
	}
	c.idle = true
	p.idle = append(p.idle, c)
	c.idleTimer.Reset(p.t.idleTimeout)
	p.mu.Unlock()
}

// discard closes a connection and frees its slot.
func (p *hostPool) discard(c *h1Conn) {
	_ = c.nc.Close()
	p.releaseSlot()
}

// releaseSlot frees one connection slot, handing it to the first waiter.
func (p *hostPool) releaseSlot() {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		ch <- nil
		return
	}
	p.open--
	p.mu.Unlock()
}

// expire closes c if it is still idle when its idle timer fires.
func (p *hostPool) expire(c *h1Conn) {
	p.mu.Lock()
	if !c.idle {
		p.mu.Unlock()
		return
	}
	for i, ic := range p.idle {
		if ic == c {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	c.idle = false
	p.mu.Unlock()
	p.discard(c)
}

func (p *hostPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	for _, c := range idle {
		c.idle = false
		c.idleTimer.Stop()
	}
	p.mu.Unlock()
	for _, c := range idle {
		p.discard(c)
	}
}

// openConns reports the connections open to the address, for tests.
func (p *hostPool) openConns() (open, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open, len(p.idle)
}
