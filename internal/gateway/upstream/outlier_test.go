package upstream

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

var errRefused = errors.New("connection refused")

// failOn sends n requests, failing those that land on bad with o.
func failOn(t *testing.T, p *Pool, n int, bad map[*Endpoint]bool, o Outcome) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	for range n {
		e, done, err := p.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bad[e] {
			done(o)
		} else {
			done(Outcome{Status: 200})
		}
	}
}

func TestOutlierEjectionTiming(t *testing.T) {
	t.Parallel()
	eps := endpoints(3)
	base := 80 * time.Millisecond
	p := newTestPool(t, Config{Outlier: &Outlier{ConsecutiveFailures: 3, BaseEjectionTime: base, MaxEjectionTime: 2 * base}}, eps)
	bad := map[*Endpoint]bool{eps[0]: true}
	// Two failures in a row do not eject; a success resets the count.
	eps[0].consec.Store(2)
	p.learn(eps[0], Outcome{Status: 200})
	failOn(t, p, 3, nil, Outcome{})
	p.learn(eps[0], Outcome{Status: 500})
	p.learn(eps[0], Outcome{Status: 500})
	if !eps[0].Available() {
		t.Fatal("ejected after 2 failures with threshold 3")
	}
	p.learn(eps[0], Outcome{Err: errRefused})
	if eps[0].Available() || !eps[0].Status().Ejected {
		t.Fatal("not ejected after 3 failures")
	}
	ejectedAt := time.Now()
	if got := counts(t, p, 30); got[eps[0]] != 0 {
		t.Fatalf("ejected endpoint got %d requests", got[eps[0]])
	}
	waitUntil(t, time.Second, eps[0].Available)
	if d := time.Since(ejectedAt); d < base-10*time.Millisecond {
		t.Errorf("readmitted after %v, want about %v", d, base)
	}
	// The second ejection in a row lasts twice as long (capped at max).
	failOn(t, p, 60, bad, Outcome{Status: 503})
	if eps[0].Available() {
		t.Fatal("not ejected again")
	}
	if left := eps[0].Status().EjectedFor; left < base+base/2 || left > 2*base {
		t.Errorf("second ejection lasts %v, want %v", left, 2*base)
	}
	if n := eps[0].Status().Ejections; n != 2 {
		t.Errorf("ejections = %d", n)
	}
}

// TestMaxEjectionPercent: even when every endpoint fails, no more than the
// allowed share is ejected.
func TestMaxEjectionPercent(t *testing.T) {
	t.Parallel()
	eps := endpoints(4)
	p := newTestPool(t, Config{Outlier: &Outlier{ConsecutiveFailures: 2, BaseEjectionTime: time.Minute, MaxEjectionPercent: 50}}, eps)
	all := map[*Endpoint]bool{eps[0]: true, eps[1]: true, eps[2]: true, eps[3]: true}
	failOn(t, p, 200, all, Outcome{Status: 503})
	ejected := 0
	for _, e := range eps {
		if e.Status().Ejected {
			ejected++
		}
	}
	if ejected != 2 {
		t.Errorf("%d of 4 ejected, want 2 (50%%)", ejected)
	}
	if p.Panicking() {
		t.Error("outlier ejection alone must not cause panic mode at 50%")
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
