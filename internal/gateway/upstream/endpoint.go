package upstream

import (
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons an endpoint is not available. They are bits of one state word per
// endpoint, so every signal feeds the same availability bit.
const (
	// flagUnhealthy is set by active health checks.
	flagUnhealthy uint32 = 1 << iota
	// flagEjected is set by outlier detection.
	flagEjected
	// flagOpen is set while the endpoint's circuit breaker is open.
	flagOpen
	// flagDraining is set on an endpoint that takes no new requests.
	flagDraining
)

// unusableNormal makes an endpoint unusable outside panic mode: any reason.
// unusablePanic is what still excludes it in panic mode: panic mode
// overrides health checks and outlier ejection, which may be wrong about a
// whole pool, but never an open breaker (whose job is to fail fast) or
// draining.
const (
	unusableNormal = flagUnhealthy | flagEjected | flagOpen | flagDraining
	unusablePanic  = flagOpen | flagDraining
)

// Endpoint is one reachable instance of a service. Callers fill URL, Weight
// and Meta and hand the endpoint to Pool.Update; the live state (in-flight
// requests, latency, health, ejection, breaker) is kept by the pool.
type Endpoint struct {
	// URL is the scheme and host the endpoint is reached at ("http", "https"
	// or "h2c" scheme); its path, if any, is prefixed to upstream paths.
	URL *url.URL
	// Weight is the relative share of traffic; 0 counts as 1.
	Weight int
	// Meta carries discovery metadata such as zone and version.
	Meta map[string]string

	flags    atomic.Uint32
	inflight atomic.Int64
	ewma     atomic.Uint64 // float64 bits: response latency in nanoseconds
	consec   atomic.Int32  // consecutive failures, for outlier detection
	srCount  atomic.Uint64 // this interval's failures<<32 | requests, for success-rate detection

	pool *Pool
	done Done   // e.finish, bound once when the endpoint joins a pool
	mark uint64 // the pool's merge generation that last saw it; under Pool.mu

	br breaker

	mu           sync.Mutex // guards the fields below
	ejectedUntil time.Time
	ejections    int // current ejection multiplier
	readmittedAt time.Time
	ejectTimer   *time.Timer
	health       healthState
	stopHealth   func()

	ejectionsTotal atomic.Uint64
	transitions    [3]atomic.Uint64 // breaker transitions to closed, open, half-open
}

// Key identifies an endpoint within a pool across endpoint set updates.
func (e *Endpoint) Key() string { return e.URL.Scheme + "://" + e.URL.Host }

// InFlight reports the number of requests the endpoint is serving.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Available reports whether the endpoint takes new requests outside panic
// mode: it is healthy, not ejected, its breaker is not open and it is not
// draining.
func (e *Endpoint) Available() bool { return e.flags.Load()&unusableNormal == 0 }

// Latency returns the endpoint's moving average response latency (the time
// to response headers), or 0 before the first response.
func (e *Endpoint) Latency() time.Duration {
	return time.Duration(math.Float64frombits(e.ewma.Load()))
}

func (e *Endpoint) weight() int {
	if e.Weight <= 0 {
		return 1
	}
	return e.Weight
}

// ewmaAlpha weighs the newest latency sample in the moving average.
const ewmaAlpha = 0.3

func (e *Endpoint) observeLatency(d time.Duration) {
	x := float64(d)
	for {
		old := e.ewma.Load()
		v := math.Float64frombits(old)
		nv := x
		if old != 0 {
			nv = v + ewmaAlpha*(x-v)
		}
		if e.ewma.CompareAndSwap(old, math.Float64bits(nv)) {
			return
		}
	}
}

// Outcome is what happened to one request sent to an endpoint. The balancer,
// outlier detection and the circuit breaker learn from it.
type Outcome struct {
	// Err is set when no response arrived because of the endpoint or the
	// path to it: connection refused or reset, a timeout, a malformed or
	// truncated response. Leave it nil when the caller gave up (the client
	// went away), which is nobody's verdict on the endpoint.
	Err error
	// Status is the response status code, or 0 when no response arrived.
	Status int
	// Latency is the time from sending the request to the response headers;
	// 0 when unknown.
	Latency time.Duration
}

// failed reports whether the outcome counts against the endpoint in outlier
// detection: no response, or a 5xx one.
func (o Outcome) failed() bool { return o.Err != nil || o.Status >= 500 }

// neutral reports an outcome that says nothing about the endpoint.
func (o Outcome) neutral() bool { return o.Err == nil && o.Status == 0 }

// Done reports the outcome of one request sent to an endpoint. It must be
// called exactly once per successful Select.
type Done func(Outcome)

// finish is the endpoint's Done.
func (e *Endpoint) finish(o Outcome) {
	e.inflight.Add(-1)
	p := e.pool
	if p != nil {
		p.inflight.Add(-1)
	}
	if o.neutral() {
		e.br.release()
		return
	}
	if o.Latency > 0 && o.Err == nil {
		e.observeLatency(o.Latency)
	}
	if p == nil {
		return
	}
	p.learn(e, o)
}

// setFlag sets or clears one reason the endpoint is unavailable and reports
// whether the state changed. The caller holds the pool's mutex.
func (e *Endpoint) setFlag(f uint32, on bool) bool {
	for {
		old := e.flags.Load()
		nv := old &^ f
		if on {
			nv = old | f
		}
		if nv == old {
			return false
		}
		if e.flags.CompareAndSwap(old, nv) {
			return true
		}
	}
}

func (e *Endpoint) has(f uint32) bool { return e.flags.Load()&f != 0 }

// EndpointStatus is a point-in-time view of an endpoint's live state.
type EndpointStatus struct {
	// Available reports whether the endpoint takes new requests.
	Available bool
	// Healthy is the active health check verdict (true without checks).
	Healthy bool
	// HealthError is the reason of the last failed health check.
	HealthError string
	// Ejected reports outlier ejection; EjectedFor is the time left.
	Ejected    bool
	EjectedFor time.Duration
	// Ejections is the number of times outlier detection ejected it.
	Ejections uint64
	// Breaker is "closed", "open" or "half-open".
	Breaker string
	// Draining reports an endpoint that takes no new requests.
	Draining bool
	// InFlight is the number of requests being served.
	InFlight int64
	// Latency is the moving average time to response headers.
	Latency time.Duration
	// Weight is the relative share of traffic.
	Weight int
}

// Status returns the endpoint's live state.
func (e *Endpoint) Status() EndpointStatus {
	f := e.flags.Load()
	e.mu.Lock()
	left := time.Until(e.ejectedUntil)
	herr := e.health.lastErr
	e.mu.Unlock()
	st := EndpointStatus{
		Available:   f&unusableNormal == 0,
		Healthy:     f&flagUnhealthy == 0,
		HealthError: herr,
		Ejected:     f&flagEjected != 0,
		Ejections:   e.ejectionsTotal.Load(),
		Breaker:     e.br.stateName(),
		Draining:    f&flagDraining != 0,
		InFlight:    e.inflight.Load(),
		Latency:     e.Latency(),
		Weight:      e.weight(),
	}
	if st.Ejected && left > 0 {
		st.EjectedFor = left
	}
	return st
}

// BreakerTransitions returns how often the endpoint's breaker moved to
// closed, open and half-open.
func (e *Endpoint) BreakerTransitions() (closed, open, halfOpen uint64) {
	return e.transitions[0].Load(), e.transitions[1].Load(), e.transitions[2].Load()
}
