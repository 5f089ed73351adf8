package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// RetryOn is a set of conditions that make a failed attempt worth sending
// again, to another endpoint.
type RetryOn uint16

// Retry conditions.
const (
	// RetryConnectFailure: the connection could not be established
	// (refused, unreachable, dial timeout). Nothing reached the endpoint.
	RetryConnectFailure RetryOn = 1 << iota
	// RetryReset: the connection broke before response headers arrived
	// (reset, closed, malformed response).
	RetryReset
	// RetryTimeout: the per-try timeout passed before response headers.
	RetryTimeout
	// Retry502, Retry503 and Retry504: the endpoint answered that status.
	Retry502
	Retry503
	Retry504
	// RetryGRPCUnavailable: a gRPC endpoint answered UNAVAILABLE (14)
	// without a body (a trailers-only response).
	RetryGRPCUnavailable
)

// DefaultRetryOn is used when RetryPolicy.On is zero: every condition.
const DefaultRetryOn = RetryConnectFailure | RetryReset | RetryTimeout | Retry502 | Retry503 | Retry504 | RetryGRPCUnavailable

var retryNames = []struct {
	name string
	on   RetryOn
}{
	{"connect-failure", RetryConnectFailure}, {"reset", RetryReset}, {"timeout", RetryTimeout},
	{"502", Retry502}, {"503", Retry503}, {"504", Retry504}, {"grpc-unavailable", RetryGRPCUnavailable},
}

// ParseRetryOn parses condition names: connect-failure, reset, timeout, 502,
// 503, 504 and grpc-unavailable.
func ParseRetryOn(names []string) (RetryOn, error) {
	var on RetryOn
	for _, n := range names {
		found := false
		for _, rn := range retryNames {
			if rn.name == n {
				on |= rn.on
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown retry condition %q", n)
		}
	}
	return on, nil
}

// Retry defaults, used when a RetryPolicy field is zero.
const (
	DefaultBackoffBase    = 25 * time.Millisecond
	DefaultBackoffMax     = 250 * time.Millisecond
	DefaultMaxBufferBytes = 64 << 10
)

// RetryPolicy says when a route's failed attempts are sent again.
//
// A retry is safe by construction: it is made only for requests whose
// method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE), that carry an
// Idempotency-Key header, that the route declares idempotent, or whose
// attempt failed before any byte of it reached the endpoint (the connection
// could not be established). Every retry also needs the pool's retry budget
// and retry limit to allow it, time left before the route's timeout, and a
// request body that can be sent again.
type RetryPolicy struct {
	// Attempts is the most attempts per request, the first included.
	// Values below 2 disable retries.
	Attempts int
	// PerTryTimeout bounds each attempt's wait for response headers. If
	// zero, an attempt may use all that is left of Target.Timeout.
	PerTryTimeout time.Duration
	// On lists the conditions that are retried. If zero, DefaultRetryOn.
	On RetryOn
	// BackoffBase and BackoffMax shape the wait before retry n: a random
	// duration up to min(BackoffMax, BackoffBase·2ⁿ⁻¹) ("full jitter").
	// Defaults 25ms and 250ms.
	BackoffBase, BackoffMax time.Duration
	// MaxBufferBytes is the largest request body kept in memory so it can
	// be sent again; larger bodies, and bodies of unknown length (which may
	// be streams), are forwarded as they arrive and retried only after a
	// connect failure. Default 64KiB; negative never buffers.
	MaxBufferBytes int64
	// AssumeIdempotent treats every request of the route as idempotent,
	// for routes (such as read-only gRPC services) whose POSTs are safe to
	// repeat.
	AssumeIdempotent bool
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.On == 0 {
		p.On = DefaultRetryOn
	}
	if p.BackoffBase == 0 {
		p.BackoffBase = DefaultBackoffBase
	}
	if p.BackoffMax == 0 {
		p.BackoffMax = max(DefaultBackoffMax, p.BackoffBase)
	}
	if p.MaxBufferBytes == 0 {
		p.MaxBufferBytes = DefaultMaxBufferBytes
	}
	return p
}

func (p *RetryPolicy) validate() error {
	if p.PerTryTimeout < 0 || p.BackoffBase < 0 || p.BackoffMax < 0 {
		return errors.New("retry: durations must not be negative")
	}
	return nil
}

// StatusError is recorded when the last attempt's response was a retryable
// status that could not be relayed because no endpoint was left to retry on.
type StatusError struct {
	// Code is the HTTP status of the response.
	Code int
	// GRPCStatus is the grpc-status of a trailers-only gRPC response, or "".
	GRPCStatus string
}

func (e *StatusError) Error() string {
	if e.GRPCStatus != "" {
		return "upstream answered grpc-status " + e.GRPCStatus
	}
	return "upstream answered " + strconv.Itoa(e.Code)
}

// ErrRequestBody means the request body could not be read while it was
// buffered for retries.
var ErrRequestBody = errors.New("request body could not be read")

// call is the state one request shares across its attempts.
type call struct {
	tried    upstream.Tried
	deadline time.Time
	n        int  // attempts made
	safe     bool // the request may be sent twice
	hedge    bool // the request may be hedged
	replay   bool // the body can be sent again (none or buffered)
	body     []byte
	buf      *[]byte
	guard    *guardedBody
	last     error // the failure of the latest retried attempt
}

// idempotent reports whether r may be sent more than once.
func (h *handler) idempotent(r *http.Request) bool {
	if h.retry.AssumeIdempotent {
		return true
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return len(r.Header["Idempotency-Key"]) > 0
}

var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// prepare decides what the request's retries may do and, when it is safe to
// repeat and small enough, reads its body into memory.
func (h *handler) prepare(c *call, r *http.Request, websocket bool) error {
	if (h.retry.Attempts < 2 && h.hedger == nil) || websocket {
		return nil
	}
	c.safe = h.idempotent(r)
	c.hedge = c.safe && h.hedger != nil
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		c.replay = true
		return nil
	}
	if c.safe && r.ContentLength > 0 && r.ContentLength <= h.retry.MaxBufferBytes {
		c.buf = bodyBuffers.Get().(*[]byte)
		b := (*c.buf)[:0]
		if int64(cap(b)) < r.ContentLength {
			b = make([]byte, 0, r.ContentLength)
		}
		b, err := readFull(r.Body, b, r.ContentLength)
		*c.buf = b
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return fmt.Errorf("%w: %w", ErrRequestBody, err)
		}
		c.body, c.replay = b, true
		return nil
	}
	c.hedge = false
	c.guard = &guardedBody{rc: r.Body}
	return nil
}

// readFull reads exactly n bytes of r into b.
func readFull(r io.Reader, b []byte, n int64) ([]byte, error) {
	b = b[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errors.New("body shorter than its Content-Length")
		}
		return b[:0], err
	}
	return b, nil
}

// release returns the call's body buffer.
func (c *call) release() {
	if c.buf != nil {
		*c.buf = (*c.buf)[:0]
		if cap(*c.buf) <= 2*DefaultMaxBufferBytes {
			bodyBuffers.Put(c.buf)
		}
		c.buf, c.body = nil, nil
	}
}

// requestBody returns the body an attempt sends, or nil to send the
// inbound one.
func (c *call) requestBody() io.ReadCloser {
	switch {
	case c.body != nil:
		return io.NopCloser(bytes.NewReader(c.body))
	case c.guard != nil:
		return c.guard
	}
	return nil
}

// guardedBody forwards a body that is not buffered. It ignores Close, so a
// transport that gives up before sending anything (and closes the body)
// leaves it intact for another attempt, and it records whether any byte was
// read, after which no retry is possible.
type guardedBody struct {
	rc   io.ReadCloser
	read bool
}

func (g *guardedBody) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	if n > 0 || (err != nil && err != io.EOF) {
		g.read = true
	}
	return n, err
}

func (g *guardedBody) Close() error { return nil }

// isConnectFailure reports an error from establishing the connection:
// nothing of the request was written.
func isConnectFailure(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// condition classifies an attempt's failure as a retry condition; 0 means
// it is never retried.
func condition(a *attempt, err error) RetryOn {
	var se *StatusError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &se):
		if se.GRPCStatus != "" {
			return RetryGRPCUnavailable
		}
		switch se.Code {
		case http.StatusBadGateway:
			return Retry502
		case http.StatusServiceUnavailable:
			return Retry503
		case http.StatusGatewayTimeout:
			return Retry504
		}
		return 0
	case errors.As(err, &mbe), errors.Is(err, ErrUnexpectedUpgrade), errors.Is(err, ErrRequestBody):
		return 0
	case a.in.Context().Err() != nil:
		return 0 // the client went away
	case errors.Is(err, ErrUpstreamTimeout) || context.Cause(a) == ErrUpstreamTimeout || isTimeout(err):
		if isConnectFailure(err) {
			return RetryConnectFailure
		}
		return RetryTimeout
	case isConnectFailure(err):
		return RetryConnectFailure
	}
	return RetryReset
}

// mayRetry decides whether a's failure is retried; if so it reserves the
// retry (budget and limit) and records the failure. Nothing may have been
// written to the client.
func (h *handler) mayRetry(a *attempt, err error) bool {
	c := a.c
	if c.n >= h.retry.Attempts || a.hijacked {
		return false
	}
	cond := condition(a, err)
	if cond == 0 || h.retry.On&cond == 0 {
		return false
	}
	untouched := c.guard == nil || !c.guard.read
	if !(c.safe && (c.replay || untouched)) && !(cond == RetryConnectFailure && untouched) {
		return false
	}
	wait := h.backoff(c.n)
	if !c.deadline.IsZero() && time.Until(c.deadline) <= wait {
		return false
	}
	pool := h.t.Pool
	if !pool.AcquireRetry() {
		pool.Stats().RetriesDenied.Add(1)
		return false
	}
	if !pool.Budget().Withdraw(time.Now()) {
		pool.ReleaseRetry()
		pool.Stats().RetriesDenied.Add(1)
		return false
	}
	a.retry, a.wait = err, wait
	c.last = err
	return true
}

// logRetry records a failed attempt that will be retried.
func (h *handler) logRetry(a *attempt, err error) {
	ctx := a.in.Context()
	if !h.p.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	h.p.log.LogAttrs(ctx, slog.LevelDebug, "upstream attempt failed; retrying",
		slog.String("request_id", a.ex.ID),
		slog.String("service", h.service),
		slog.String("endpoint", a.ep.URL.Host),
		slog.Int("attempt", a.c.n),
		slog.Duration("backoff", a.wait),
		slog.String("error", safeError(err)),
	)
}

// backoff returns the jittered wait before retry n (n attempts made).
func (h *handler) backoff(n int) time.Duration {
	ceiling := h.retry.BackoffBase << min(n-1, 16)
	if ceiling <= 0 || ceiling > h.retry.BackoffMax {
		ceiling = h.retry.BackoffMax
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling) + 1
}

// sleep waits d unless ctx ends first; it reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// retryStatus reports whether a response with this status (or gRPC
// status) should be retried rather than relayed, and reserves the retry.
func (h *handler) retryStatus(a *attempt, res *http.Response) bool {
	if h.retry.Attempts < 2 {
		return false
	}
	// The error is made only for a status that may be retried: this runs
	// for every response.
	var se *StatusError
	switch res.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		se = &StatusError{Code: res.StatusCode}
	case http.StatusOK:
		if v := res.Header["Grpc-Status"]; len(v) == 0 || v[0] != "14" || !isGRPC(res.Header) {
			return false
		}
		se = &StatusError{Code: res.StatusCode, GRPCStatus: "14"}
	default:
		return false
	}
	if !h.mayRetry(a, se) {
		return false
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.CopyN(io.Discard, res.Body, 4<<10)
	return true
}
