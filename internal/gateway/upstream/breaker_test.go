package upstream

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBreakerStateMachine(t *testing.T) {
	t.Parallel()
	eps := endpoints(2)
	open := 60 * time.Millisecond
	p := newTestPool(t, Config{Breaker: &Breaker{FailureThreshold: 3, OpenTime: open, HalfOpenRequests: 1, SuccessThreshold: 2}}, eps)
	e := eps[0]
	state := func() string { return e.Status().Breaker }

	// 5xx responses are successes for the breaker.
	for range 5 {
		p.learn(e, Outcome{Status: 503})
	}
	if state() != "closed" {
		t.Fatalf("breaker %s after 5xx responses", state())
	}
	p.learn(e, Outcome{Err: errRefused})
	p.learn(e, Outcome{Err: errRefused})
	p.learn(e, Outcome{Status: 200}) // resets the run
	p.learn(e, Outcome{Err: errRefused})
	p.learn(e, Outcome{Err: errRefused})
	if state() != "closed" {
		t.Fatal("opened without 3 failures in a row")
	}
	p.learn(e, Outcome{Err: errRefused})
	if state() != "open" || e.Available() {
		t.Fatalf("breaker %s, available %v after 3 failures", state(), e.Available())
	}
	if got := counts(t, p, 20); got[e] != 0 {
		t.Fatal("open breaker let requests through")
	}

	// Half-open after OpenTime: one probe at a time.
	waitUntil(t, time.Second, func() bool { return state() == "half-open" })
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	var probe Done
	for probe == nil {
		x, done, _ := p.Select(r, nil)
		if x == e {
			probe = done
		} else {
			done(Outcome{Status: 200})
		}
	}
	if got := counts(t, p, 20); got[e] != 0 {
		t.Fatal("half-open breaker let a second probe through")
	}
	probe(Outcome{Err: errRefused})
	if state() != "open" {
		t.Fatalf("failed probe left the breaker %s", state())
	}

	// Two successful probes close it.
	waitUntil(t, time.Second, func() bool { return state() == "half-open" })
	for i := 0; state() != "closed"; i++ {
		if i > 100 {
			t.Fatal("breaker did not close after successful probes")
		}
		x, done, _ := p.Select(r, nil)
		done(Outcome{Status: 200})
		_ = x
	}
	closed, opened, half := e.BreakerTransitions()
	if closed != 1 || opened != 2 || half != 2 {
		t.Errorf("transitions closed=%d open=%d half-open=%d", closed, opened, half)
	}
}

// TestBreakerNeutralOutcome: a request the client abandoned frees the probe
// slot without a verdict.
func TestBreakerNeutralOutcome(t *testing.T) {
	t.Parallel()
	eps := endpoints(1)
	p := newTestPool(t, Config{Breaker: &Breaker{FailureThreshold: 1, OpenTime: 20 * time.Millisecond}, PanicThreshold: -1}, eps)
	p.learn(eps[0], Outcome{Err: errRefused})
	waitUntil(t, time.Second, func() bool { return eps[0].Status().Breaker == "half-open" })
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	_, done, err := p.Select(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Select(r, nil); err != ErrNoEndpoint {
		t.Fatalf("second probe: %v", err)
	}
	done(Outcome{})
	if eps[0].Status().Breaker != "half-open" {
		t.Fatal("neutral outcome changed the state")
	}
	_, done, err = p.Select(r, nil)
	if err != nil {
		t.Fatalf("probe slot not freed: %v", err)
	}
	done(Outcome{Status: 200})
	if eps[0].Status().Breaker != "closed" {
		t.Fatal("successful probe did not close the breaker")
	}
}

// halfOpenPool returns a started single-endpoint pool whose breaker is
// half-open, without panic mode.
func halfOpenPool(t *testing.T, bc Breaker) (*Pool, *Endpoint) {
	t.Helper()
	eps := endpoints(1)
	bc.FailureThreshold, bc.OpenTime = 1, 20*time.Millisecond
	p := newTestPool(t, Config{Breaker: &bc, PanicThreshold: -1, Balancer: &yieldingBalancer{NewRoundRobin()}}, eps)
	p.learn(eps[0], Outcome{Err: errRefused})
	waitUntil(t, time.Second, func() bool { return eps[0].Status().Breaker == "half-open" })
	return p, eps[0]
}

// TestBreakerConcurrentProbes pins down a bug where concurrent Selects on
// a half-open endpoint all saw a free probe slot (checked in Pick, counted
// later) and let more than HalfOpenRequests probes through.
func TestBreakerConcurrentProbes(t *testing.T) {
	t.Parallel()
	const probes, callers = 3, 32
	p, e := halfOpenPool(t, Breaker{HalfOpenRequests: probes, SuccessThreshold: 100})
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	for round := range 200 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		dones := make(chan Done, callers)
		for range callers {
			wg.Go(func() {
				<-start
				if _, done, err := p.Select(r, nil); err == nil {
					dones <- done
				}
			})
		}
		close(start)
		wg.Wait()
		close(dones)
		if len(dones) != probes {
			t.Fatalf("round %d: %d probes admitted at once, want %d", round, len(dones), probes)
		}
		for done := range dones {
			done(Outcome{}) // no verdict: the slots are free again
		}
		if e.Status().Breaker != "half-open" || e.InFlight() != 0 {
			t.Fatalf("round %d: breaker %s, in flight %d", round, e.Status().Breaker, e.InFlight())
		}
	}
}

// TestBreakerStaleOutcomes pins down a bug where outcomes of requests that
// were not probes of the current half-open period drove its transitions:
// a request admitted while closed that ended during half-open closed the
// breaker without a probe, and took a probe slot with it.
func TestBreakerStaleOutcomes(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)

	t.Run("admitted while closed", func(t *testing.T) {
		t.Parallel()
		eps := endpoints(1)
		p := newTestPool(t, Config{Breaker: &Breaker{FailureThreshold: 1, OpenTime: 20 * time.Millisecond}, PanicThreshold: -1}, eps)
		e := eps[0]
		_, early, err := p.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.learn(e, Outcome{Err: errRefused})
		waitUntil(t, time.Second, func() bool { return e.Status().Breaker == "half-open" })
		early(Outcome{Status: 200})
		if s := e.Status().Breaker; s != "half-open" {
			t.Fatalf("a request admitted while closed moved the half-open breaker to %s", s)
		}
		_, probe, err := p.Select(r, nil)
		if err != nil {
			t.Fatalf("the probe slot was taken by a stale outcome: %v", err)
		}
		probe(Outcome{Status: 200})
		if s := e.Status().Breaker; s != "closed" {
			t.Fatalf("breaker %s after a successful probe", s)
		}
	})

	t.Run("probe of an earlier half-open period", func(t *testing.T) {
		t.Parallel()
		p, e := halfOpenPool(t, Breaker{HalfOpenRequests: 2})
		_, old, err := p.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, failing, err := p.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		failing(Outcome{Err: errRefused})
		waitUntil(t, time.Second, func() bool { return e.Status().Breaker == "half-open" })
		old(Outcome{Status: 200})
		if s := e.Status().Breaker; s != "half-open" {
			t.Fatalf("a probe of the previous half-open period moved the breaker to %s", s)
		}
		if _, _, opened, _ := transitions(e); opened != 2 {
			t.Fatalf("opened %d times", opened)
		}
	})
}

func transitions(e *Endpoint) (total, closed, opened, halfOpen uint64) {
	closed, opened, halfOpen = e.BreakerTransitions()
	return closed + opened + halfOpen, closed, opened, halfOpen
}

// TestMaxRequestsUnderConcurrency pins down a check-then-increment race
// that let concurrent Selects exceed Config.MaxRequests.
func TestMaxRequestsUnderConcurrency(t *testing.T) {
	t.Parallel()
	const limit, callers = 4, 32
	p := newTestPool(t, Config{MaxRequests: limit, Balancer: &yieldingBalancer{NewRoundRobin()}}, endpoints(3))
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			for range 300 {
				_, done, err := p.Select(r, nil)
				if err != nil {
					continue
				}
				n := held.Add(1)
				for {
					m := peak.Load()
					if n <= m || peak.CompareAndSwap(m, n) {
						break
					}
				}
				runtime.Gosched()
				held.Add(-1)
				done(Outcome{Status: 200})
			}
		})
	}
	close(start)
	wg.Wait()
	if peak.Load() > limit {
		t.Errorf("%d requests in flight at once, limit %d", peak.Load(), limit)
	}
	if p.inflight.Load() != 0 {
		t.Errorf("pool in-flight count %d after every request ended", p.inflight.Load())
	}
}

// yieldingBalancer lets other goroutines run between choosing an endpoint
// and returning it, as a slow balancer would, which widens the window
// between a pick and what Select does with it.
type yieldingBalancer struct{ Balancer }

func (b *yieldingBalancer) Pick(c Candidates) *Endpoint {
	e := b.Balancer.Pick(c)
	runtime.Gosched()
	return e
}
