package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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

// TestHedgeLoserCanceledAtWinnerHeaders pins down a bug where the losing
// leg of a hedge was canceled only after the winner's whole response had
// been relayed: with a hung first endpoint and a streaming winner, the hung
// request held its connection, in-flight count and retry slot for the whole
// stream. The loser must be canceled as soon as the winner's headers arrive.
func TestHedgeLoserCanceledAtWinnerHeaders(t *testing.T) {
	t.Parallel()
	var canceledAt, headersAt atomic.Int64
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			canceledAt.Store(time.Now().UnixNano())
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(hung.Close)
	streaming := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Stamped before the headers leave: the loser cannot be canceled
		// because of them any earlier, and the stamp is set before the
		// test can observe the cancellation.
		headersAt.Store(time.Now().UnixNano())
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(streaming.Close)
	pool := retryPool(t, hung.URL, streaming.URL)
	g := startGateway(t, newTestProxy(t), Target{Pool: pool, Hedge: &HedgePolicy{Delay: 50 * time.Millisecond}, Timeout: 5 * time.Second}, nil)
	res, err := testClient(t).Get(g.URL + "/r")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if pool.Stats().Hedges.Load() != 1 {
		t.Fatalf("hedges = %d, want 1 (the hung endpoint must take the first attempt)", pool.Stats().Hedges.Load())
	}
	// Wait for the cancellation while the stream is still running.
	deadline := time.Now().Add(time.Second)
	for canceledAt.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if canceledAt.Load() == 0 {
		t.Fatal("the losing request was not canceled while the winner streamed")
	}
	if d := time.Duration(canceledAt.Load() - headersAt.Load()); d > 100*time.Millisecond {
		t.Errorf("losing request canceled %v after the winner's headers, want at most 100ms", d)
	}
	if body, err := io.ReadAll(res.Body); err != nil || string(body) != "done" {
		t.Errorf("winner's body %q, %v", body, err)
	}
}

// TestHedgeRefundsBudgetWithoutSecondEndpoint pins down a bug where a
// hedge that found no other endpoint kept its retry-budget withdrawal.
func TestHedgeRefundsBudgetWithoutSecondEndpoint(t *testing.T) {
	t.Parallel()
	slow := newCountingBackend(t, 200, 200*time.Millisecond)
	pool := retryPool(t, slow.URL)
	g := startGateway(t, newTestProxy(t), Target{Pool: pool, Hedge: &HedgePolicy{Delay: 20 * time.Millisecond}, Timeout: 5 * time.Second}, nil)
	before := pool.Budget().Remaining(time.Now())
	for range 3 {
		if res, _ := do(t, g, http.MethodGet, "", nil); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if after := pool.Budget().Remaining(time.Now()); after != before {
		t.Errorf("retry budget remaining %d after three unhedgeable requests, want %d", after, before)
	}
	if n := pool.Stats().Hedges.Load(); n != 0 {
		t.Errorf("hedges = %d with a single endpoint", n)
	}
}
