// Package upstream holds the live endpoint sets of services: pools, their
// balancers, active health checks, outlier detection, circuit breakers and
// retry budgets. Discovery providers push whole endpoint sets into a pool;
// a caller (the gateway's proxy, or a service's client) asks the pool for an
// endpoint per attempt and reports the outcome back.
//
// The package depends on nothing gateway-specific, so service-to-service
// clients can use it as well. docs/resilience.md describes the mechanisms,
// their defaults and how they interact.
//
// Lock order: Pool.mu, then Endpoint.mu. The request path (Select and Done)
// takes no lock unless an endpoint changes state.
package upstream

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
)

var (
	// ErrNoEndpoint is returned by Select when a pool has no available
	// endpoint.
	ErrNoEndpoint = errors.New("no available endpoint")
	// ErrOverloaded is returned by Select when the pool already serves
	// Config.MaxRequests requests.
	ErrOverloaded = errors.New("service has too many requests in flight")
)

// DefaultPanicThreshold is the percentage of available endpoints below which
// a pool enters panic mode when Config.PanicThreshold is zero.
const DefaultPanicThreshold = 50

// Config configures a pool. The zero value is a round robin pool without
// health checks, outlier detection, breakers or limits.
type Config struct {
	// Balancer chooses among available endpoints. A balancer belongs to one
	// pool. If nil, NewRoundRobin() is used.
	Balancer Balancer
	// HealthCheck enables active health checks. If nil, endpoints are
	// healthy unless another signal says otherwise.
	HealthCheck *HealthCheck
	// Outlier enables passive outlier detection. If nil, it is off.
	Outlier *Outlier
	// Breaker enables a circuit breaker per endpoint. If nil, it is off.
	Breaker *Breaker
	// PanicThreshold is a percentage: when fewer than this share of the
	// endpoints are available the pool routes to all of them except those
	// with an open breaker or draining. 0 means DefaultPanicThreshold (50);
	// negative disables panic mode.
	PanicThreshold int
	// MaxRequests caps the requests in flight to the whole pool; beyond it
	// Select fails with ErrOverloaded. 0 means no cap.
	MaxRequests int
	// MaxRetries caps the retries and hedges in flight to the whole pool.
	// 0 means no cap.
	MaxRetries int
	// Budget limits retries to a share of requests. Default: see
	// BudgetConfig.
	Budget BudgetConfig
	// Logger receives one line per state change (health flipped, endpoint
	// ejected or readmitted, breaker opened or closed, panic mode, drain).
	// If nil, slog.Default() is used.
	Logger *slog.Logger
}

// settings is a pool's configuration with defaults applied.
type settings struct {
	health      *HealthCheck
	outlier     *Outlier
	breaker     *Breaker
	panicPct    int
	maxRequests int64
	maxRetries  int64
}

// set is one published endpoint set with what the balancer prepared for it.
type set struct {
	eps   []*Endpoint
	bal   Balancer
	state any
	cfg   *settings
}

// Pool is the live endpoint set of one service with its balancer, health,
// outlier and breaker state and its transport. It is safe for concurrent
// use; Select and Done take no lock.
type Pool struct {
	name string
	log  *slog.Logger
	// root is the pool itself, or for a subset the pool it is a view of:
	// the transport, budget, counters and limits are the root's.
	root *Pool
	// sub is set on a subset: which endpoints it shows and its balancer.
	sub *subsetOf
	// subsets are the root's subsets (copy on write, under mu).
	subsets atomic.Pointer[[]*Pool]

	transport atomic.Pointer[http.RoundTripper]
	cur       atomic.Pointer[set]
	inflight  atomic.Int64
	// shadowInflight counts the requests in inflight sent through shadow
	// views, which MaxRequests does not cover.
	shadowInflight atomic.Int64
	retries        atomic.Int64
	panicking      atomic.Bool
	available      atomic.Int32
	budget         *Budget
	stats          Stats

	mu       sync.Mutex // serializes updates and state transitions
	draining []*Endpoint
	started  bool
	closed   bool
	hcStop   chan struct{}
	sr       *srEvaluator // success-rate evaluation, while configured and started
}

// NewPool returns an empty round robin pool for the named service that
// sends requests through transport, without health checks, outlier
// detection or breakers.
func NewPool(name string, transport http.RoundTripper) *Pool {
	p, _ := New(name, transport, Config{})
	return p
}

// New returns an empty pool for the named service configured by cfg. Health
// checks run once Start is called.
func New(name string, transport http.RoundTripper, cfg Config) (*Pool, error) {
	p := &Pool{name: name, log: cfg.Logger, hcStop: make(chan struct{})}
	p.root = p
	if p.log == nil {
		p.log = slog.Default()
	}
	p.transport.Store(&transport)
	s, err := newSet(nil, cfg)
	if err != nil {
		return nil, err
	}
	b, err := NewBudget(cfg.Budget)
	if err != nil {
		return nil, err
	}
	p.budget = b
	p.cur.Store(s)
	return p, nil
}

func newSet(eps []*Endpoint, cfg Config) (*set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := &settings{health: cfg.HealthCheck, outlier: cfg.Outlier, breaker: cfg.Breaker,
		panicPct: cfg.PanicThreshold, maxRequests: int64(cfg.MaxRequests), maxRetries: int64(cfg.MaxRetries)}
	if st.panicPct == 0 {
		st.panicPct = DefaultPanicThreshold
	}
	if st.health != nil {
		h := st.health.withDefaults()
		st.health = &h
	}
	if st.outlier != nil {
		o := st.outlier.withDefaults()
		st.outlier = &o
	}
	if st.breaker != nil {
		b := st.breaker.withDefaults()
		st.breaker = &b
	}
	bal := cfg.Balancer
	if bal == nil {
		bal = NewRoundRobin()
	}
	if eps == nil {
		eps = []*Endpoint{}
	}
	return &set{eps: eps, bal: bal, state: bal.Prepare(eps), cfg: st}, nil
}

// Validate reports a configuration New or Reconfigure would refuse.
func (c Config) Validate() error {
	if c.MaxRequests < 0 || c.MaxRetries < 0 {
		return errors.New("pool limits must not be negative")
	}
	if _, err := NewBudget(c.Budget); err != nil {
		return err
	}
	if c.HealthCheck != nil {
		if err := c.HealthCheck.validate(); err != nil {
			return err
		}
	}
	if c.Outlier != nil {
		if err := c.Outlier.validate(); err != nil {
			return err
		}
	}
	if c.Breaker != nil {
		if err := c.Breaker.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Name returns the service name.
func (p *Pool) Name() string { return p.name }

// Transport returns the round tripper requests to this pool's endpoints use.
func (p *Pool) Transport() http.RoundTripper { return *p.root.transport.Load() }

// RoundTrip sends r through the pool's current transport, so a holder of
// the pool keeps working when SetTransport replaces it.
func (p *Pool) RoundTrip(r *http.Request) (*http.Response, error) {
	return (*p.root.transport.Load()).RoundTrip(r)
}

// SetTransport replaces the pool's transport and returns the previous one,
// whose idle connections the caller may close once nothing uses it.
func (p *Pool) SetTransport(t http.RoundTripper) http.RoundTripper {
	return *p.root.transport.Swap(&t)
}

// Endpoints returns the current endpoint set. The slice must not be modified.
func (p *Pool) Endpoints() []*Endpoint { return p.cur.Load().eps }

// Draining returns the endpoints that left the set but still serve requests.
func (p *Pool) Draining() []*Endpoint {
	if p.sub != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneDraining()
	return append([]*Endpoint(nil), p.draining...)
}

// Balancer returns the name of the pool's balancer.
func (p *Pool) Balancer() string { return p.cur.Load().bal.Name() }

// Panicking reports whether the pool is in panic mode.
func (p *Pool) Panicking() bool { return p.panicking.Load() }

// Budget returns the pool's retry budget.
func (p *Pool) Budget() *Budget {
	if p.sub != nil && p.sub.shadow {
		return p.sub.budget
	}
	return p.root.budget
}

// Stats returns the pool's counters.
func (p *Pool) Stats() *Stats { return &p.root.stats }

// Update replaces the endpoint set. Endpoints whose Key and URL are unchanged
// keep their live state (in-flight count, latency, health, ejection, breaker)
// and take the new weight and metadata; new ones join; missing ones drain:
// they take no new requests and their in-flight requests finish.
func (p *Pool) Update(eps []*Endpoint) {
	if p.sub != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.cur.Load()
	p.publish(p.merge(cur, eps), cur.bal, cur.cfg)
}

// Reconfigure applies a new configuration to the pool and, when eps is not
// nil, a new endpoint set (as Update does). Endpoint state survives: an
// endpoint kept by the new set keeps its health, ejection and breaker state.
// Health checks restart with the new settings if the pool is started.
func (p *Pool) Reconfigure(cfg Config, eps []*Endpoint) error {
	if p.sub != nil {
		return errSubset
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.cur.Load()
	if eps == nil {
		eps = cur.eps
	}
	next, err := newSet(nil, cfg)
	if err != nil {
		return err
	}
	if err := p.budget.Configure(cfg.Budget); err != nil {
		return err
	}
	if cfg.Logger != nil {
		p.log = cfg.Logger
	}
	merged := p.merge(cur, eps)
	healthChanged := !sameHealth(cur.cfg.health, next.cfg.health)
	if healthChanged {
		for _, e := range cur.eps {
			p.stopChecker(e)
		}
	}
	if next.cfg.outlier == nil {
		for _, e := range merged {
			p.readmitLocked(e, "outlier detection disabled")
		}
	}
	if next.cfg.breaker == nil {
		for _, e := range merged {
			e.br.reset(p, e)
		}
	}
	if next.cfg.health == nil {
		for _, e := range merged {
			p.setHealthy(e, true, "")
		}
	}
	p.publish(merged, next.bal, next.cfg)
	p.syncSuccessRate()
	return nil
}

// merge returns the new member list: existing endpoints where the key and URL
// match, the given ones otherwise. Leavers are moved to the draining list.
func (p *Pool) merge(cur *set, eps []*Endpoint) []*Endpoint {
	// Keys are compared as (scheme, host) pairs and membership is marked
	// on the endpoints, so a reconciliation allocates no string per
	// endpoint and no second map.
	old := make(map[endpointKey]*Endpoint, len(cur.eps))
	for _, e := range cur.eps {
		old[endpointKey{e.URL.Scheme, e.URL.Host}] = e
	}
	gen := mergeGen.Add(1)
	next := make([]*Endpoint, 0, len(eps))
	for _, e := range eps {
		if prev, ok := old[endpointKey{e.URL.Scheme, e.URL.Host}]; ok && sameURL(prev.URL, e.URL) && prev.mark != gen {
			prev.Weight, prev.Meta = e.Weight, e.Meta
			next = append(next, prev)
			prev.mark = gen
			continue
		}
		if e.mark == gen {
			continue
		}
		e.mark = gen
		e.pool = p
		e.done = e.finish
		if e.setFlag(flagDraining, false) {
			p.log.Info("endpoint rejoined", "service", p.name, "endpoint", e.URL.Host)
		}
		next = append(next, e)
	}
	for _, e := range cur.eps {
		if e.mark != gen {
			p.stopChecker(e)
			e.setFlag(flagDraining, true)
			p.draining = append(p.draining, e)
			p.log.Info("endpoint draining", "service", p.name, "endpoint", e.URL.Host, "in_flight", e.InFlight())
		}
	}
	p.pruneDraining()
	return next
}

func (p *Pool) pruneDraining() {
	kept := p.draining[:0]
	for _, e := range p.draining {
		if e.InFlight() > 0 && e.has(flagDraining) {
			kept = append(kept, e)
		}
	}
	clear(p.draining[len(kept):])
	p.draining = kept
}

// publish swaps in a new set, starts checkers for new members and
// recomputes availability. The caller holds p.mu.
func (p *Pool) publish(eps []*Endpoint, bal Balancer, cfg *settings) {
	next := &set{eps: eps, bal: bal, state: bal.Prepare(eps), cfg: cfg}
	p.cur.Store(next)
	if subs := p.subsets.Load(); subs != nil {
		for _, c := range *subs {
			c.follow(next)
		}
	}
	if p.started && !p.closed && cfg.health != nil {
		for _, e := range eps {
			p.startChecker(e, cfg.health)
		}
	}
	p.recount()
}

// SetDraining marks the endpoint with the given key draining (no new
// requests; in-flight ones finish) or takes it back. It reports whether the
// key is a member of the pool.
func (p *Pool) SetDraining(key string, draining bool) bool {
	if p.sub != nil {
		return p.root.SetDraining(key, draining)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.cur.Load().eps {
		if e.Key() == key {
			if e.setFlag(flagDraining, draining) {
				p.log.Info("endpoint drain changed", "service", p.name, "endpoint", e.URL.Host, "draining", draining)
				p.recount()
			}
			return true
		}
	}
	return false
}

// recount recomputes the number of available endpoints and panic mode. The
// caller holds p.mu.
func (p *Pool) recount() {
	if subs := p.subsets.Load(); subs != nil {
		for _, c := range *subs {
			c.recount()
		}
	}
	s := p.cur.Load()
	n := 0
	for _, e := range s.eps {
		if e.Available() {
			n++
		}
	}
	p.available.Store(int32(n))
	total := len(s.eps)
	panicking := s.cfg.panicPct > 0 && total > 0 && n*100 < s.cfg.panicPct*total
	if p.panicking.Swap(panicking) != panicking {
		if panicking {
			p.root.stats.PanicEntered.Add(1)
			p.log.Warn("pool entered panic mode: routing to unavailable endpoints", "service", p.name, "available", n, "endpoints", total)
		} else {
			p.log.Info("pool left panic mode", "service", p.name, "available", n, "endpoints", total)
		}
	}
}

// Available returns the number of available endpoints.
func (p *Pool) Available() int { return int(p.available.Load()) }

// Select picks an endpoint for r among the available ones, avoiding those in
// tried (which may be nil) while another is usable. The caller must call
// the returned Done exactly once when the attempt ends.
func (p *Pool) Select(r *http.Request, tried *Tried) (*Endpoint, Done, error) {
	s := p.cur.Load()
	if len(s.eps) == 0 {
		return nil, nil, ErrNoEndpoint
	}
	rt, shadow := p.root, p.sub != nil && p.sub.shadow
	if shadow {
		return p.selectShadow(r, tried, s)
	}
	if !rt.reserve(s.cfg.maxRequests) {
		rt.stats.Overflows.Add(1)
		return nil, nil, ErrOverloaded
	}
	c := Candidates{eps: s.eps, state: s.state, req: r, tried: tried, mask: unusableNormal}
	if p.panicking.Load() {
		c.mask = unusablePanic
	}
	// A half-open endpoint's last probe slot may go to a concurrent Select
	// between Pick and admit; the next Pick then passes it over.
	for range maxPicks {
		e := s.bal.Pick(c)
		if e == nil && c.tried.Len() > 0 {
			// Every usable endpoint was tried: a repeat beats no attempt.
			c.tried = nil
			e = s.bal.Pick(c)
		}
		if e == nil {
			break
		}
		if done := e.br.admit(e); done != nil {
			e.inflight.Add(1)
			return e, done, nil
		}
	}
	rt.inflight.Add(-1)
	return nil, nil, ErrNoEndpoint
}

// selectShadow is Select for a shadow view: its requests are counted in
// the root's in-flight total (Endpoint.finish takes them off) but also in
// shadowInflight, which reserve subtracts, so they never use up
// MaxRequests.
func (p *Pool) selectShadow(r *http.Request, tried *Tried, s *set) (*Endpoint, Done, error) {
	rt := p.root
	rt.inflight.Add(1)
	rt.shadowInflight.Add(1)
	c := Candidates{eps: s.eps, state: s.state, req: r, tried: tried, mask: unusableNormal}
	if p.panicking.Load() {
		c.mask = unusablePanic
	}
	for range maxPicks {
		e := s.bal.Pick(c)
		if e == nil {
			break
		}
		if done := e.br.admit(e); done != nil {
			e.inflight.Add(1)
			return e, func(o Outcome) { rt.shadowInflight.Add(-1); done(o) }, nil
		}
	}
	rt.shadowInflight.Add(-1)
	rt.inflight.Add(-1)
	return nil, nil, ErrNoEndpoint
}

// maxPicks bounds the picks of one Select that lose a probe slot race.
const maxPicks = 4

// reserve counts one more request in flight unless that would exceed max
// (0: no cap).
func (p *Pool) reserve(max int64) bool {
	if max <= 0 {
		p.inflight.Add(1)
		return true
	}
	for {
		n := p.inflight.Load()
		if n-p.shadowInflight.Load() >= max {
			return false
		}
		if p.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// AcquireRetry reserves one of Config.MaxRetries retry slots and reports
// whether one was free; call ReleaseRetry when the retry ends.
func (p *Pool) AcquireRetry() bool {
	rt := p.root
	m := rt.cur.Load().cfg.maxRetries
	if n := rt.retries.Add(1); m > 0 && n > m {
		rt.retries.Add(-1)
		return false
	}
	return true
}

// ReleaseRetry frees a slot taken by AcquireRetry.
func (p *Pool) ReleaseRetry() { p.root.retries.Add(-1) }

// learn feeds one outcome to outlier detection and the breaker.
func (p *Pool) learn(e *Endpoint, o Outcome) {
	cfg := p.cur.Load().cfg
	failed := o.failed()
	if oc := cfg.outlier; oc != nil && oc.SuccessRate != nil {
		e.countOutcome(failed)
	}
	if failed {
		n := e.consec.Add(1)
		if oc := cfg.outlier; oc != nil && int(n) >= oc.ConsecutiveFailures && !e.has(flagEjected) {
			p.eject(e, oc, int(n))
		}
	} else {
		e.consec.Store(0)
	}
	if bc := cfg.breaker; bc != nil {
		e.br.record(p, e, bc, o.Err != nil)
	}
}

// Start begins active health checks and success-rate evaluation. It is
// idempotent; Close stops them.
func (p *Pool) Start() {
	if p.sub != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	s := p.cur.Load()
	if s.cfg.health != nil {
		for _, e := range s.eps {
			p.startChecker(e, s.cfg.health)
		}
	}
	p.syncSuccessRate()
}

// Close stops health checks, success-rate evaluation and pending timers.
// The pool still serves Select afterwards (requests in flight on a retired
// pool finish), but it no longer changes endpoint state on its own.
func (p *Pool) Close() {
	if p.sub != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

// closeLocked is Close; the caller holds p.mu. Health check results that
// arrive afterwards are dropped (see recordCheck).
func (p *Pool) closeLocked() {
	if p.closed {
		return
	}
	p.closed = true
	close(p.hcStop)
	p.stopSuccessRate()
	for _, e := range p.cur.Load().eps {
		p.stopChecker(e)
		e.mu.Lock()
		if e.ejectTimer != nil {
			e.ejectTimer.Stop()
		}
		e.mu.Unlock()
		e.br.stopTimer()
	}
}

// Stats are a pool's counters, read by metrics collectors.
type Stats struct {
	// Attempts counts requests sent to endpoints, retries and hedges
	// included.
	Attempts atomic.Uint64
	// Retries counts retries sent.
	Retries atomic.Uint64
	// RetriesDenied counts retries the budget or the retry limit refused.
	RetriesDenied atomic.Uint64
	// Hedges counts hedged requests sent.
	Hedges atomic.Uint64
	// Overflows counts requests refused because of MaxRequests.
	Overflows atomic.Uint64
	// PanicEntered counts the times the pool entered panic mode.
	PanicEntered atomic.Uint64
}

// mergeGen numbers reconciliations process-wide, so an endpoint's mark
// from one pool (or one merge) never passes for another's.
var mergeGen atomic.Uint64

// endpointKey is Endpoint.Key as a comparable pair.
type endpointKey struct{ scheme, host string }

// sameURL reports whether two endpoint URLs are equal field by field, as
// their String forms would be, without formatting them.
func sameURL(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && a.Host == b.Host && a.Path == b.Path && a.RawPath == b.RawPath &&
		a.Opaque == b.Opaque && a.RawQuery == b.RawQuery && a.Fragment == b.Fragment && a.User.String() == b.User.String()
}
