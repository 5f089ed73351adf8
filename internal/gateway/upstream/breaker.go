package upstream

import (
	"errors"
	"fmt"
	"runtime"
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
	if b.HalfOpenRequests > maxProbeCount || b.SuccessThreshold > maxProbeCount {
		return fmt.Errorf("breaker: half-open requests and success threshold must be at most %d", maxProbeCount)
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

// A breaker's state lives in one word, changed only by compare-and-swap:
//
//	bits 32-63  generation, incremented by every state change
//	bits 30-31  state
//	bits 15-29  probes in flight (half-open)
//	bits  0-14  successful probes (half-open)
//
// Select reserves a probe slot by a CAS conditioned on the whole word, so
// a slot is never granted twice and never granted in a generation that
// already ended. Each probe's Done carries its generation; an outcome from
// an earlier generation, or from a request that was not a probe, never
// moves a half-open breaker.
const (
	genShift      = 32
	stateShift    = 30
	probeShift    = 15
	countMask     = 1<<15 - 1
	maxProbeCount = countMask
)

func wordGen(w uint64) uint32      { return uint32(w >> genShift) }
func wordState(w uint64) int32     { return int32(w>>stateShift) & 3 }
func wordProbes(w uint64) int32    { return int32(w>>probeShift) & countMask }
func wordSuccesses(w uint64) int32 { return int32(w) & countMask }

// breaker is one endpoint's circuit breaker state.
type breaker struct {
	word      atomic.Uint64
	fails     atomic.Int32 // failures in a row while closed
	maxProbes atomic.Int32
	ticket    atomic.Pointer[probeTicket] // the current half-open generation's

	mu    sync.Mutex // guards timer
	timer *time.Timer
}

// probeTicket is the Done handed to the probes of one half-open
// generation. It is made once per transition to half-open, so Select does
// not allocate.
type probeTicket struct {
	gen  uint32
	done Done
}

func (b *breaker) stateName() string { return stateNames[wordState(b.word.Load())] }

// usable reports whether a request may go through: always unless half-open
// with every probe slot taken. (Open endpoints are excluded by flagOpen.)
// Select still has to win a slot with admit.
func (b *breaker) usable() bool {
	w := b.word.Load()
	return wordState(w) != stateHalfOpen || wordProbes(w) < b.maxProbes.Load()
}

// admit lets one request through e's breaker and returns the Done it must
// report to: e's own when the breaker is not half-open, a probe's when it
// reserved a probe slot, nil when every slot is taken.
func (b *breaker) admit(e *Endpoint) Done {
	for {
		w := b.word.Load()
		if wordState(w) != stateHalfOpen {
			return e.done
		}
		t := b.ticket.Load()
		if t == nil || t.gen != wordGen(w) {
			// The ticket is published just before the word; a mismatch
			// means a transition is in progress.
			runtime.Gosched()
			continue
		}
		if wordProbes(w) >= b.maxProbes.Load() {
			return nil
		}
		if b.word.CompareAndSwap(w, w+1<<probeShift) {
			return t.done
		}
	}
}

// release is called by Endpoint.finish when a request that was not a
// probe ends without a verdict. Only probes hold a slot, and they give it
// back through their own Done (settleProbe), so there is nothing to do.
func (b *breaker) release() {}

// record feeds the outcome of a request that was not a probe; failed means
// no response arrived. It only counts while closed: a half-open breaker
// moves on its probes' outcomes alone.
func (b *breaker) record(p *Pool, e *Endpoint, bc *Breaker, failed bool) {
	w := b.word.Load()
	if wordState(w) != stateClosed {
		return
	}
	if !failed {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		return
	}
	if n := b.fails.Add(1); int(n) >= bc.FailureThreshold {
		p.moveBreaker(e, bc, wordGen(w), stateClosed, stateOpen, int(n))
	}
}

// newProbeTicket returns the Done of e's probes in half-open generation
// gen: it settles the probe with the breaker, then does what every
// request's Done does.
func (p *Pool) newProbeTicket(e *Endpoint, gen uint32) *probeTicket {
	return &probeTicket{gen: gen, done: func(o Outcome) {
		p.settleProbe(e, gen, o)
		e.finish(o)
	}}
}

// settleProbe frees the slot of a probe admitted in generation gen and
// applies its verdict. A probe whose generation ended lost its slot with
// it and has no say.
func (p *Pool) settleProbe(e *Endpoint, gen uint32, o Outcome) {
	b := &e.br
	var w uint64
	for {
		w = b.word.Load()
		if wordGen(w) != gen || wordState(w) != stateHalfOpen {
			return
		}
		nw := w - 1<<probeShift
		if o.Err == nil && !o.neutral() && wordSuccesses(w) < countMask {
			nw++
		}
		if b.word.CompareAndSwap(w, nw) {
			w = nw
			break
		}
	}
	bc := p.cur.Load().cfg.breaker
	switch {
	case o.neutral() || bc == nil:
	case o.Err != nil:
		p.moveBreaker(e, bc, gen, stateHalfOpen, stateOpen, 1)
	case int(wordSuccesses(w)) >= bc.SuccessThreshold:
		p.moveBreaker(e, bc, gen, stateHalfOpen, stateClosed, 0)
	}
}

// moveBreaker changes e's breaker from state from to state to, if it is
// still in from and in generation gen, and starts a new generation.
func (p *Pool) moveBreaker(e *Endpoint, bc *Breaker, gen uint32, from, to int32, failures int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &e.br
	// Generation and state change only under p.mu; concurrent CASes touch
	// the probe and success counts alone.
	if w := b.word.Load(); wordGen(w) != gen || wordState(w) != from {
		return
	}
	if to == stateHalfOpen {
		// Published before the word, so admit finds it.
		b.maxProbes.Store(int32(bc.HalfOpenRequests))
		b.ticket.Store(p.newProbeTicket(e, gen+1))
	}
	next := uint64(gen+1)<<genShift | uint64(to)<<stateShift
	for w := b.word.Load(); !b.word.CompareAndSwap(w, next); w = b.word.Load() {
	}
	b.fails.Store(0)
	e.transitions[to].Add(1)
	switch to {
	case stateOpen:
		e.setFlag(flagOpen, true)
		b.mu.Lock()
		if b.timer != nil {
			b.timer.Stop()
		}
		if !p.closed {
			b.timer = time.AfterFunc(bc.OpenTime, func() { p.moveBreaker(e, bc, gen+1, stateOpen, stateHalfOpen, 0) })
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
// breaker is switched off. It starts a new generation, so probes in flight
// have no say afterwards. The caller holds the pool's mutex.
func (b *breaker) reset(p *Pool, e *Endpoint) {
	b.stopTimer()
	for {
		w := b.word.Load()
		if b.word.CompareAndSwap(w, uint64(wordGen(w)+1)<<genShift|uint64(stateClosed)<<stateShift) {
			if wordState(w) != stateClosed {
				p.log.Info("circuit breaker closed", "service", p.name, "endpoint", e.URL.Host, "reason", "breaker disabled")
			}
			break
		}
	}
	b.fails.Store(0)
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
