package upstream

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Circuit breaker defaults, used when a Breaker field is zero.
const (
	DefaultBreakerFailures  = 5
	DefaultBreakerOpenTime  = 10 * time.Second
	DefaultHalfOpenRequests = 1
	DefaultBreakerSuccesses = 1
)

// Breaker configures the circuit breaker of each endpoint. A closed breaker
// lets requests through; FailureThreshold failures in a row open it, and an
// open endpoint gets no requests (not even in panic mode) for OpenTime;
// then it is half-open: HalfOpenRequests probes at a time go through, and
// SuccessThreshold successes close it while one failure opens it again.
//
// The breaker counts failures where no response arrived: refused or reset
// connections, timeouts, malformed or truncated responses. Any response,
// whatever its status, is a success for the breaker; endpoints that answer
// with 5xx are outlier detection's business.
type Breaker struct {
	// FailureThreshold opens the breaker after this many failures in a
	// row. Default 5.
	FailureThreshold int
	// OpenTime is how long the breaker stays open. Default 10s.
	OpenTime time.Duration
	// HalfOpenRequests is the number of probes let through at once while
	// half-open. Default 1.
	HalfOpenRequests int
	// SuccessThreshold closes a half-open breaker after this many
	// successful probes. Default 1.
	SuccessThreshold int
}

func (b Breaker) withDefaults() Breaker {
	if b.FailureThreshold == 0 {
		b.FailureThreshold = DefaultBreakerFailures
	}
	if b.OpenTime == 0 {
		b.OpenTime = DefaultBreakerOpenTime
	}
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = DefaultHalfOpenRequests
	}
	if b.SuccessThreshold == 0 {
		b.SuccessThreshold = DefaultBreakerSuccesses
	}
	return b
}

func (b *Breaker) validate() error {
	if b.FailureThreshold < 0 || b.OpenTime < 0 || b.HalfOpenRequests < 0 || b.SuccessThreshold < 0 {
		return errors.New("breaker: thresholds and times must not be negative")
	}
	return nil
}

// Breaker states.
const (
	stateClosed int32 = iota
	stateOpen
	stateHalfOpen
)

var stateNames = [...]string{"closed", "open", "half-open"}

// breaker is one endpoint's circuit breaker state.
type breaker struct {
	state     atomic.Int32
	fails     atomic.Int32
	probes    atomic.Int32 // probes in flight while half-open
	successes atomic.Int32
	maxProbes atomic.Int32

	mu    sync.Mutex // guards timer
	timer *time.Timer
}

func (b *breaker) stateName() string { return stateNames[b.state.Load()] }

// usable reports whether a request may go through: always unless half-open
// with every probe slot taken. (Open endpoints are excluded by flagOpen.)
func (b *breaker) usable() bool {
	return b.state.Load() != stateHalfOpen || b.probes.Load() < b.maxProbes.Load()
}

// admit counts a request that was let through a half-open breaker.
func (b *breaker) admit() {
	if b.state.Load() == stateHalfOpen {
		b.probes.Add(1)
	}
}

// release returns a probe slot without a verdict.
func (b *breaker) release() {
	if b.state.Load() == stateHalfOpen && b.probes.Add(-1) < 0 {
		b.probes.Store(0)
	}
}

// record feeds one outcome; failed means no response arrived.
func (b *breaker) record(p *Pool, e *Endpoint, bc *Breaker, failed bool) {
	switch b.state.Load() {
	case stateClosed:
		if !failed {
			if b.fails.Load() != 0 {
				b.fails.Store(0)
			}
			return
		}
		if n := b.fails.Add(1); int(n) >= bc.FailureThreshold {
			p.moveBreaker(e, bc, stateClosed, stateOpen, int(n))
		}
	case stateHalfOpen:
		b.release()
		if failed {
			p.moveBreaker(e, bc, stateHalfOpen, stateOpen, 1)
		} else if int(b.successes.Add(1)) >= bc.SuccessThreshold {
			p.moveBreaker(e, bc, stateHalfOpen, stateClosed, 0)
		}
	}
}

// moveBreaker changes e's breaker from one state to another, if it is still
// in from.
func (p *Pool) moveBreaker(e *Endpoint, bc *Breaker, from, to int32, failures int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &e.br
	if !b.state.CompareAndSwap(from, to) {
		return
	}
	b.fails.Store(0)
	b.successes.Store(0)
	b.probes.Store(0)
	b.maxProbes.Store(int32(bc.HalfOpenRequests))
	e.transitions[to].Add(1)
	switch to {
	case stateOpen:
		e.setFlag(flagOpen, true)
		b.mu.Lock()
		if b.timer != nil {
			b.timer.Stop()
		}
		if !p.closed {
			b.timer = time.AfterFunc(bc.OpenTime, func() { p.moveBreaker(e, bc, stateOpen, stateHalfOpen, 0) })
		}
		b.mu.Unlock()
		p.log.Warn("circuit breaker opened", "service", p.name, "endpoint", e.URL.Host,
			"failures", failures, "open_time", bc.OpenTime.String())
	case stateHalfOpen:
		e.setFlag(flagOpen, false)
		p.log.Info("circuit breaker half-open", "service", p.name, "endpoint", e.URL.Host, "probes", bc.HalfOpenRequests)
	case stateClosed:
		e.setFlag(flagOpen, false)
		p.log.Info("circuit breaker closed", "service", p.name, "endpoint", e.URL.Host)
	}
	p.recount()
}

// reset closes the breaker without counting a transition; used when the
// breaker is switched off. The caller holds the pool's mutex.
func (b *breaker) reset(p *Pool, e *Endpoint) {
	b.stopTimer()
	if b.state.Swap(stateClosed) != stateClosed {
		p.log.Info("circuit breaker closed", "service", p.name, "endpoint", e.URL.Host, "reason", "breaker disabled")
	}
	b.fails.Store(0)
	b.probes.Store(0)
	e.setFlag(flagOpen, false)
}

func (b *breaker) stopTimer() {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
}
