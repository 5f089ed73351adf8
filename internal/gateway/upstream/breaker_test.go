package upstream

import (
	"net/http"
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
