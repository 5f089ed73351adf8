package proxy

import (
	"net/http"
	"testing"
	"time"
)

// TestHedge: a slow first attempt is hedged to another endpoint after the
// delay; the faster answer is relayed and the slow request canceled.
func TestHedge(t *testing.T) {
	t.Parallel()
	slow := newCountingBackend(t, 200, 3*time.Second)
	fast := newCountingBackend(t, 201, 0)
	pool := retryPool(t, slow.URL, fast.URL)
	g := startGateway(t, newTestProxy(t), Target{Pool: pool, Hedge: &HedgePolicy{Delay: 50 * time.Millisecond}, Timeout: 5 * time.Second}, nil)
	start := time.Now()
	res, _ := do(t, g, "GET", "", nil)
	if res.StatusCode != 201 {
		t.Fatalf("status %d, want the fast endpoint's 201", res.StatusCode)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Errorf("answered after %v", d)
	}
	ex := g.lastExchange(t)
	if ex.Endpoint != fast.Listener.Addr().String() {
		t.Errorf("exchange endpoint %s", ex.Endpoint)
	}
	if pool.Stats().Hedges.Load() != 1 {
		t.Errorf("hedges = %d", pool.Stats().Hedges.Load())
	}
	waitCond(t, func() bool {
		for _, e := range pool.Endpoints() {
			if e.InFlight() != 0 {
				return false
			}
		}
		return true
	})
	// A POST without an Idempotency-Key is never hedged.
	g2 := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, slow.URL, fast.URL), Hedge: &HedgePolicy{Delay: 10 * time.Millisecond}, Timeout: 200 * time.Millisecond}, nil)
	before := fast.hits.Load()
	if res, _ := do(t, g2, http.MethodPost, "x", nil); res.StatusCode != http.StatusGatewayTimeout || fast.hits.Load() != before {
		t.Errorf("POST: status %d, hedged %d times", res.StatusCode, fast.hits.Load()-before)
	}
}

// TestHedgeDelayFromPercentile: without a fixed delay the route learns its
// latency distribution before hedging.
func TestHedgeDelayFromPercentile(t *testing.T) {
	t.Parallel()
	hg, err := newHedger(nil, nil, HedgePolicy{Percentile: 90})
	if err != nil {
		t.Fatal(err)
	}
	if hg.delay() != 0 {
		t.Fatal("hedging before any sample")
	}
	for i := range hedgeEvery * 2 {
		hg.record(time.Duration(i%10+1) * time.Millisecond)
	}
	if d := hg.delay(); d < 9*time.Millisecond || d > 10*time.Millisecond {
		t.Errorf("p90 delay %v, want 9-10ms", d)
	}
}

func waitCond(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
