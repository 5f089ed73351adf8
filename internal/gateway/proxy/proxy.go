// Package proxy forwards requests that passed a route's policies to an
// endpoint of the route's service and streams the answer back.
//
// It is net/http/httputil.ReverseProxy configured with Rewrite (never
// Director), one buffer pool shared by all routes, and the service pool's
// transport. On top of it the package adds what a gateway needs: endpoint
// selection per attempt with outcome reporting, gateway-owned forwarding and
// request id headers that a client can neither strip nor spoof, a timeout that
// bounds only the wait for response headers, problem+json errors, WebSocket
// tracking for graceful shutdown, and gRPC status recording.
//
// docs/proxy.md describes the behaviour seen from clients and services.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// Errors recorded in exchange.Exchange.Err by the proxy. Transport errors
// (refused connections, resets, malformed responses) are recorded as
// returned by the transport.
var (
	// ErrUpstreamTimeout means the route's timeout, or the attempt's
	// per-try timeout, passed before the endpoint sent response headers.
	ErrUpstreamTimeout = errors.New("upstream did not send response headers in time")
	// ErrUnexpectedUpgrade means the endpoint answered 101 Switching
	// Protocols to a request that did not ask to upgrade.
	ErrUnexpectedUpgrade = errors.New("upstream switched protocols without being asked")
	// ErrUpgradeRefused means the client asked for a WebSocket upgrade on a
	// route that does not allow it, or sent an invalid Upgrade header.
	ErrUpgradeRefused = errors.New("protocol upgrade refused")
	// ErrShuttingDown means a WebSocket upgrade arrived after CloseUpgraded.
	ErrShuttingDown = errors.New("proxy is shutting down")
	// ErrAborted means the response was cut after it had started, because the
	// endpoint's body ended early or the client went away.
	ErrAborted = errors.New("response aborted after it started")
)

// DefaultRequestIDHeader is the header that carries the request id when
// Config.RequestIDHeader is empty.
const DefaultRequestIDHeader = "X-Request-Id"

// Config configures a Proxy.
type Config struct {
	// Trusted lists the peers whose forwarding headers (X-Forwarded-For,
	// X-Forwarded-Proto, X-Forwarded-Host, Forwarded) are kept and extended.
	// If nil, no peer is trusted and those headers are replaced.
	Trusted *forwarded.Trusted
	// RequestIDHeader is the header that carries the request id upstream and
	// back to the client. If empty, DefaultRequestIDHeader is used.
	RequestIDHeader string
	// Logger receives upstream errors. If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Proxy forwards requests to service endpoints. One Proxy is shared by all
// routes of a gateway: it owns the buffer pool used to copy response bodies
// and the set of upgraded (WebSocket) connections. It is safe for concurrent
// use.
type Proxy struct {
	trusted     *forwarded.Trusted
	reqIDHeader string
	log         *slog.Logger
	buffers     bufferPool
	upgraded    connSet
}

// New returns a Proxy configured by cfg.
func New(cfg Config) *Proxy {
	p := &Proxy{trusted: cfg.Trusted, log: cfg.Logger, reqIDHeader: cfg.RequestIDHeader}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.reqIDHeader == "" {
		p.reqIDHeader = DefaultRequestIDHeader
	}
	p.reqIDHeader = http.CanonicalHeaderKey(p.reqIDHeader)
	p.upgraded.conns = make(map[*trackedConn]struct{})
	return p
}

// Target is what one route forwards to.
type Target struct {
	// Pool is the service's pool: it chooses the endpoint of each attempt
	// and provides the transport. Required.
	Pool *upstream.Pool
	// Rewrite maps the canonical path and the route's parameters to the
	// path sent upstream; its result must start with one "/". If nil, the
	// canonical path is sent unchanged.
	Rewrite func(path string, params *exchange.Params) string
	// Timeout bounds the time from sending the request until the upstream
	// response headers arrive, across all attempts and the waits between
	// them; when it passes the client gets 504. A body streaming after the
	// headers is never cut by it. If zero, there is no limit.
	Timeout time.Duration
	// WebSocket allows WebSocket upgrades. If false, a WebSocket handshake
	// is answered with 400.
	WebSocket bool
	// Retry says which failed attempts are sent again. If nil, each request
	// makes one attempt.
	Retry *RetryPolicy
	// Hedge sends a second attempt of a slow idempotent request. If nil,
	// requests are not hedged.
	Hedge *HedgePolicy
	// PropagateDeadline tells the endpoint how long the gateway will wait
	// for each attempt, in X-Request-Timeout (milliseconds) and, for gRPC
	// requests, grpc-timeout. If false, those headers pass as the client
	// sent them.
	PropagateDeadline bool
}

// Handler returns the handler that forwards a route's requests to t. It is
// built once per route when a configuration is loaded.
func (p *Proxy) Handler(t Target) (http.Handler, error) {
	if t.Pool == nil {
		return nil, errors.New("proxy target has no pool")
	}
	if t.Pool.Transport() == nil {
		return nil, fmt.Errorf("service %q has no transport", t.Pool.Name())
	}
	if t.Timeout < 0 {
		return nil, fmt.Errorf("negative timeout %v", t.Timeout)
	}
	h := &handler{p: p, t: t, service: t.Pool.Name()}
	var transport http.RoundTripper = t.Pool
	h.retry = RetryPolicy{Attempts: 1}.withDefaults()
	if t.Retry != nil {
		if err := t.Retry.validate(); err != nil {
			return nil, err
		}
		h.retry = t.Retry.withDefaults()
		h.perTry = h.retry.PerTryTimeout
	}
	if t.Hedge != nil {
		hg, err := newHedger(h, t.Pool, *t.Hedge)
		if err != nil {
			return nil, err
		}
		h.hedger, transport = hg, hg
	}
	h.rp = httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      transport,
		BufferPool:     &p.buffers,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return h, nil
}

// handler forwards the requests of one route.
type handler struct {
	p       *Proxy
	t       Target
	service string
	rp      httputil.ReverseProxy
	retry   RetryPolicy // Attempts is 0 without a retry policy
	perTry  time.Duration
	hedger  *hedger
	// lastMillis is the last X-Request-Timeout value sent (millisValue),
	// lastForwarded the last Forwarded element (forwardedElem).
	lastMillis    atomic.Pointer[millis]
	lastForwarded atomic.Pointer[forwardedCache]
}

// attempt is the state of one request sent to one endpoint. It is the
// context of the request handed to ReverseProxy, so Rewrite, ModifyResponse
// and ErrorHandler find it without a context lookup chain or a map.
type attempt struct {
	// Context is the inbound request's context, or a cancelable child of it
	// when the route has a timeout or the request upgrades.
	context.Context
	h      *handler
	ex     *exchange.Exchange
	ep     *upstream.Endpoint
	done   upstream.Done
	in     *http.Request // the request as the handler received it
	w      http.ResponseWriter
	timer  *time.Timer
	cancel context.CancelCauseFunc
	// c is the state shared by the request's attempts; the first attempt
	// holds it in first.
	c     *call
	first call
	// start is when the attempt was sent; tryDeadline when its timer fires.
	start       time.Time
	tryDeadline time.Time
	// status and latency are the response's, for the pool's outcome.
	status  int
	latency time.Duration
	// retry is the failure that will be retried, after wait; nothing was
	// written to the client.
	retry error
	wait  time.Duration
	// retrySlot is set on a retry, which holds one of the pool's retry
	// slots until it ends.
	retrySlot bool
	// hedgeCancel releases the context of a hedged attempt's winner.
	hedgeCancel context.CancelFunc

	// websocket is set when the request is a WebSocket handshake the route
	// allows.
	websocket bool
	grpc      bool
	hijacked  bool
	completed bool
	// identityStripped is set when the outbound header was copied without
	// the gateway-owned headers (the direct path), so setIdentity need not
	// look for them.
	identityStripped bool
	// failure is the endpoint's fault that ended the attempt, reported to
	// the pool's Done.
	failure error

	body upstreamBody
	// hv backs the gateway-owned request header values, so setting them
	// costs no allocation per header.
	hv [5]string
}

type attemptKey struct{}

// Value makes the attempt reachable from contexts derived from it.
func (a *attempt) Value(key any) any {
	if key == (attemptKey{}) {
		return a
	}
	return a.Context.Value(key)
}

func attemptFrom(ctx context.Context) *attempt {
	if a, ok := ctx.(*attempt); ok {
		return a
	}
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

func (a *attempt) expire() { a.cancel(ErrUpstreamTimeout) }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := exchange.From(r.Context())
	if ex == nil {
		// Used outside the gateway entry: give the request an identity.
		ex = &exchange.Exchange{Start: time.Now(), ID: forwarded.NewRequestID(), Path: r.URL.Path}
		r = r.WithContext(exchange.NewContext(r.Context(), ex))
	}
	hdr := w.Header()
	if v := hdr[h.p.reqIDHeader]; len(v) != 1 || v[0] != ex.ID {
		hdr[h.p.reqIDHeader] = []string{ex.ID}
	}

	websocket, err := h.checkUpgrade(r)
	if err != nil {
		h.fail(w, r, ex, nil, err)
		return
	}
	a := &attempt{h: h, ex: ex, in: r, w: w, websocket: websocket}
	c := &a.first
	a.c = c
	pool := h.t.Pool
	if err := h.prepare(c, r, websocket); err != nil {
		c.release()
		h.fail(w, r, ex, nil, err)
		return
	}
	now := time.Now()
	pool.Budget().Deposit(now)
	if h.t.Timeout > 0 {
		c.deadline = now.Add(h.t.Timeout)
	}
	for {
		ep, done, err := pool.Select(r, &c.tried)
		if err != nil {
			if a.retrySlot {
				pool.ReleaseRetry()
			}
			if c.last != nil {
				err = c.last
			}
			h.fail(w, r, ex, nil, err)
			break
		}
		a.ep, a.done = ep, done
		if !h.serveAttempt(a, w, r, now) {
			break
		}
		if !sleep(r.Context(), a.wait) {
			pool.ReleaseRetry()
			h.fail(w, r, ex, nil, r.Context().Err())
			break
		}
		a = &attempt{h: h, ex: ex, in: r, w: w, c: c, retrySlot: true}
		pool.Stats().Retries.Add(1)
		now = time.Now()
	}
	c.release()
}

// serveAttempt sends one attempt to a.ep and relays its answer. It reports
// whether the attempt failed in a way that is retried; then nothing was
// written to the client.
// start is when the attempt began, read by the caller.
func (h *handler) serveAttempt(a *attempt, w http.ResponseWriter, r *http.Request, start time.Time) bool {
	c, ex := a.c, a.ex
	c.n++
	c.tried.Add(a.ep)
	h.t.Pool.Stats().Attempts.Add(1)
	a.Context = r.Context()
	a.start = start
	d := h.perTry
	if !c.deadline.IsZero() {
		if left := c.deadline.Sub(a.start); d == 0 || left < d {
			d = max(left, time.Millisecond)
		}
	}
	client := h.directClient(a, r)
	switch {
	case client != nil:
		// The direct path bounds the attempt with the connection's deadline.
		if d > 0 {
			a.tryDeadline = a.start.Add(d)
		}
	case d > 0 || a.websocket:
		a.Context, a.cancel = context.WithCancelCause(r.Context())
		if d > 0 {
			a.timer = time.AfterFunc(d, a.expire)
			a.tryDeadline = a.start.Add(d)
		}
	}
	ex.Endpoint = a.ep.URL.Host
	if ex.UpstreamStart.IsZero() {
		ex.UpstreamStart = a.start
	}
	defer a.finish()

	if client != nil {
		h.serveDirect(a, w, r, client)
		a.completed = true
		return a.retry != nil
	}
	rw := w
	if a.websocket {
		rw = &upgradeWriter{ResponseWriter: w, a: a}
	}
	req := r.WithContext(a)
	if body := c.requestBody(); body != nil {
		req.Body = body
	}
	h.rp.ServeHTTP(rw, req)
	a.completed = true
	return a.retry != nil
}

// finish releases the attempt's timer and context and reports its outcome
// to the pool exactly once. It also runs when ReverseProxy aborts the
// response with http.ErrAbortHandler, before the panic reaches net/http.
func (a *attempt) finish() {
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.cancel != nil {
		a.cancel(context.Canceled)
	}
	if a.hedgeCancel != nil {
		a.hedgeCancel()
	}
	if !a.completed && a.ex.Err == nil {
		a.ex.Err = ErrAborted
	}
	a.done(upstream.Outcome{Err: a.failure, Status: a.status, Latency: a.latency})
	if a.retrySlot {
		a.h.t.Pool.ReleaseRetry()
	}
}

// checkUpgrade decides what happens to a request that asks to switch
// protocols. It reports whether the request is a WebSocket handshake to
// forward; other protocols are dropped from the request in rewrite.
func (h *handler) checkUpgrade(r *http.Request) (bool, error) {
	proto := upgradeType(r.Header)
	if proto == "" {
		return false, nil
	}
	if !printable(proto) {
		return false, fmt.Errorf("%w: invalid Upgrade header", ErrUpgradeRefused)
	}
	if !strings.EqualFold(strings.TrimSpace(proto), "websocket") {
		return false, nil
	}
	if !h.t.WebSocket {
		return false, fmt.Errorf("%w: WebSocket is not enabled on this route", ErrUpgradeRefused)
	}
	if h.p.upgraded.isClosing() {
		return false, ErrShuttingDown
	}
	return true, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
