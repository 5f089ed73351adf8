package ratelimit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/problem"
)

// Sentinel errors set as the exchange's Err, so the access log names them.
var (
	// ErrLimited marks a request refused with 429.
	ErrLimited = &classError{"rate limit exceeded", "rate_limited"}
	// ErrStoreDown marks a request refused with 503 because Redis was
	// unavailable and the route fails closed.
	ErrStoreDown = &classError{"rate-limit store unavailable", "rate_limit_store_unavailable"}
	// ErrNoRedis is returned by New when a limit needs Redis and none is
	// configured.
	ErrNoRedis = errors.New("store \"redis\" needs rate_limits.redis")
)

type classError struct{ msg, class string }

func (e *classError) Error() string      { return e.msg }
func (e *classError) ErrorClass() string { return e.class }

// Header names of the IETF RateLimit header fields draft, in the canonical
// form net/http uses as map keys (header names are case-insensitive), so
// they replace an upstream's values instead of adding to them.
const (
	HeaderLimit     = "Ratelimit-Limit"
	HeaderRemaining = "Ratelimit-Remaining"
	HeaderReset     = "Ratelimit-Reset"
)

// Rate is one compiled request rate of a route.
type Rate struct {
	// Name identifies the limit in metrics, logs and 429 details.
	Name string
	// Bucket names the counter; Key says what it is kept by.
	Bucket string
	Key    KeySpec
	Limit  Limit
	// Redis keeps the counter in the shared store.
	Redis bool
}

// QuotaRule is one compiled calendar quota of a route.
type QuotaRule struct {
	Name   string
	Bucket string
	Key    KeySpec
	Limit  int64
	Period Period
	Redis  bool
}

// Config is a route's rate_limit policy.
type Config struct {
	// Route is the route's name, for metrics and logs.
	Route  string
	Rates  []Rate
	Quotas []QuotaRule
	// FailClosed refuses requests with 503 while Redis is unavailable;
	// otherwise Redis limits fall back to the same limit in local memory
	// and Redis quotas let requests through.
	FailClosed bool
	// Headers adds the RateLimit-* headers to every response.
	Headers bool
}

// backend is a store as the handler uses it.
type backend interface {
	allow(ctx context.Context, key string, l Limit) (Result, error)
	quota(ctx context.Context, key string, limit int64, w window) (Result, error)
}

type rateCheck struct {
	Rate
	store   backend
	limited prometheus.Counter
}

type quotaCheck struct {
	QuotaRule
	store   backend
	clock   windowClock
	limited prometheus.Counter
}

type handler struct {
	next       http.Handler
	shared     *Shared
	route      string
	rates      []rateCheck
	quotas     []*quotaCheck
	failClosed bool
	headers    bool
	hdrs       headerCache
}

// New returns the rate_limit policy for one route around next. shared
// holds the stores; routes of every snapshot of a gateway use the same one.
func New(next http.Handler, cfg Config, shared *Shared) (http.Handler, error) {
	if shared == nil || shared.Local == nil {
		return nil, errors.New("rate limit: no stores")
	}
	h := &handler{next: next, shared: shared, route: cfg.Route, failClosed: cfg.FailClosed, headers: cfg.Headers}
	pick := func(redis bool) (backend, error) {
		if !redis {
			return localBackend{shared.Local}, nil
		}
		if shared.Redis == nil {
			return nil, ErrNoRedis
		}
		return redisBackend{shared.Redis}, nil
	}
	for _, r := range cfg.Rates {
		if r.Limit.Rate <= 0 || r.Limit.Period <= 0 {
			return nil, fmt.Errorf("limit %q: rate and period must be positive", r.Name)
		}
		store, err := pick(r.Redis)
		if err != nil {
			return nil, fmt.Errorf("limit %q: %w", r.Name, err)
		}
		h.rates = append(h.rates, rateCheck{Rate: r, store: store, limited: shared.limitedCounter(cfg.Route, r.Name)})
	}
	for _, q := range cfg.Quotas {
		if q.Limit <= 0 || (q.Period != Day && q.Period != Month) {
			return nil, fmt.Errorf("quota %q: limit must be positive and period day or month", q.Name)
		}
		store, err := pick(q.Redis)
		if err != nil {
			return nil, fmt.Errorf("quota %q: %w", q.Name, err)
		}
		h.quotas = append(h.quotas, &quotaCheck{QuotaRule: q, store: store, clock: windowClock{period: q.Period},
			limited: shared.limitedCounter(cfg.Route, q.Name)})
	}
	return h, nil
}

func (s *Shared) limitedCounter(route, name string) prometheus.Counter {
	if s.metrics.Limited == nil {
		return nil
	}
	return s.metrics.Limited.WithLabelValues(route, name)
}

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// verdict is the outcome of all checks of one request.
type verdict struct {
	report   Result // the result with the least remaining, for the headers
	have     bool
	refused  string // name of the limit that refused, if any
	storeErr error
}

func (v *verdict) add(res Result) {
	if !v.have || tighter(res, v.report) {
		v.report, v.have = res, true
	}
}

// tighter reports whether a is the result to show rather than b: the one
// with the least remaining, then the one that takes longest to refill.
func tighter(a, b Result) bool {
	return a.Remaining < b.Remaining || a.Remaining == b.Remaining && a.ResetAfter > b.ResetAfter
}

func (h *handler) check(ctx context.Context, r *http.Request, x *exchange.Exchange) verdict {
	var v verdict
	bp := keyBufs.Get().(*[]byte)
	defer keyBufs.Put(bp)
	for i := range h.rates {
		c := &h.rates[i]
		b := c.Key.append((*bp)[:0], c.Bucket, r, x)
		*bp = b
		// The key lives only during the call; stores copy what they keep.
		key := unsafeString(b)
		res, err := c.store.allow(ctx, key, c.Limit)
		if err != nil {
			h.shared.storeFailed(h.route, err, h.failClosed)
			if h.failClosed {
				v.storeErr = err
				return v
			}
			res = h.shared.Local.Allow(key, c.Limit)
		}
		v.add(res)
		if !res.Allowed {
			v.refused = c.Name
			if c.limited != nil {
				c.limited.Inc()
			}
			return v
		}
	}
	var now time.Time
	for _, c := range h.quotas {
		if now.IsZero() {
			now = time.Now()
		}
		b := c.Key.append((*bp)[:0], c.Bucket, r, x)
		*bp = b
		key := unsafeString(b)
		res, err := c.store.quota(ctx, key, c.Limit, c.clock.at(now))
		if err != nil {
			h.shared.storeFailed(h.route, err, h.failClosed)
			if h.failClosed {
				v.storeErr = err
				return v
			}
			// A quota is a long-term budget; a local count would start
			// from zero and mean nothing, so the request passes.
			continue
		}
		v.add(res)
		if !res.Allowed {
			v.refused = c.Name
			if c.limited != nil {
				c.limited.Inc()
			}
			return v
		}
	}
	return v
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange.From(r.Context())
	v := h.check(r.Context(), r, x)
	var reqID string
	if x != nil {
		reqID = x.ID
	}
	// A route whose limits run on both sides of auth has two handlers; the
	// outer one's writer reaches this one unchanged, since auth and
	// authorize do not wrap the writer. This handler then reports through
	// it instead of wrapping again.
	outer, _ := w.(*headerWriter)
	switch {
	case v.storeErr != nil:
		if x != nil {
			x.Err = ErrStoreDown
		}
		if outer != nil {
			outer.done = true
		}
		w.Header()["Retry-After"] = []string{"1"}
		problem.Write(w, problem.Details{Status: http.StatusServiceUnavailable,
			Detail: "the rate-limit store is unavailable; try again shortly", RequestID: reqID})
		return
	case v.refused != "":
		if x != nil {
			x.Err = ErrLimited
		}
		if outer != nil {
			// The refusing limit is the one to report.
			outer.done = true
		}
		retry := formatSeconds(max(v.report.RetryAfter, time.Second))
		hd := w.Header()
		if h.headers {
			h.hdrs.set(hd, v.report)
		}
		hd["Retry-After"] = []string{retry}
		problem.Write(w, problem.Details{Status: http.StatusTooManyRequests,
			Detail: "rate limit " + strconv.Quote(v.refused) + " exceeded; retry after " + retry + "s", RequestID: reqID})
		return
	}
	if !h.headers || !v.have {
		h.next.ServeHTTP(w, r)
		return
	}
	if outer != nil {
		if tighter(v.report, outer.res) {
			outer.res = v.report
		}
		h.next.ServeHTTP(w, r)
		return
	}
	rw := writers.Get().(*headerWriter)
	*rw = headerWriter{w: w, res: v.report, hdrs: &h.hdrs}
	h.next.ServeHTTP(rw, r)
	rw.apply()
	*rw = headerWriter{}
	writers.Put(rw)
}

var writers = sync.Pool{New: func() any { return new(headerWriter) }}

// headerWriter sets the RateLimit-* headers just before the response
// header is written, replacing any the upstream sent: the gateway's limit
// is the one the client is subject to. It implements Flush, Hijack and
// Unwrap like the other policies' writers.
type headerWriter struct {
	w    http.ResponseWriter
	res  Result
	hdrs *headerCache
	done bool
}

var (
	_ http.Flusher  = (*headerWriter)(nil)
	_ http.Hijacker = (*headerWriter)(nil)
)

func (rw *headerWriter) apply() {
	if !rw.done {
		rw.done = true
		rw.hdrs.set(rw.w.Header(), rw.res)
	}
}

func (rw *headerWriter) Header() http.Header { return rw.w.Header() }

func (rw *headerWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		rw.apply()
	}
	rw.w.WriteHeader(code)
}

func (rw *headerWriter) Write(p []byte) (int, error) {
	rw.apply()
	return rw.w.Write(p)
}

// Flush sends buffered data to the client, writing the header first.
func (rw *headerWriter) Flush() { _ = rw.FlushError() }

// FlushError is Flush reporting the error, for http.ResponseController.
func (rw *headerWriter) FlushError() error {
	rw.apply()
	return http.NewResponseController(rw.w).Flush()
}

// Hijack hands the connection over to the caller.
func (rw *headerWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rw.w).Hijack()
	if err == nil {
		rw.done = true
	}
	return conn, brw, err
}

// Unwrap returns the underlying ResponseWriter for http.ResponseController.
func (rw *headerWriter) Unwrap() http.ResponseWriter { return rw.w }
