package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// countingBackend answers status to every request and counts them, with
// their bodies.
type countingBackend struct {
	*httptest.Server
	hits   atomic.Int64
	bodies chan string
}

func newCountingBackend(t testing.TB, status int, delay time.Duration) *countingBackend {
	b := &countingBackend{bodies: make(chan string, 100)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		select {
		case b.bodies <- string(body):
		default:
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Timeout", r.Header.Get(HeaderRequestTimeout))
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d", status)
	}))
	t.Cleanup(b.Close)
	return b
}

func refusedURL(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// firstEndpoint is the endpoint a case tries first: a counting backend, or
// an address that refuses connections (backend nil, so nothing to count).
type firstEndpoint struct {
	url     string
	backend *countingBackend
}

// hits returns the requests the endpoint saw.
func (f firstEndpoint) hits() int64 {
	if f.backend == nil {
		return 0
	}
	return f.backend.hits.Load()
}

func refused(t testing.TB) firstEndpoint { return firstEndpoint{url: refusedURL(t)} }

func answering(status int) func(testing.TB) firstEndpoint {
	return func(t testing.TB) firstEndpoint {
		b := newCountingBackend(t, status, 0)
		return firstEndpoint{url: b.URL, backend: b}
	}
}

// retryPool is a round robin pool whose order is known: the first Select
// goes to urls[0].
func retryPool(t testing.TB, urls ...string) *upstream.Pool {
	return newPool(t, TransportOptions{}, urls...)
}

func do(t testing.TB, g *gateway, method, body string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, g.URL+"/r", rd)
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := testClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func TestRetries(t *testing.T) {
	t.Parallel()
	policy := &RetryPolicy{Attempts: 3, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond}
	cases := []struct {
		name     string
		method   string
		body     string
		hdr      http.Header
		first    func(t testing.TB) firstEndpoint
		status   int
		badHits  int64 // requests the first endpoint saw
		goodHits int64
	}{
		{"GET after connection refused", "GET", "", nil, refused, 200, 0, 1},
		{"GET after 503", "GET", "", nil, answering(503), 200, 1, 1},
		{"PUT with body after 502", "PUT", "payload", nil, answering(502), 200, 1, 1},
		{"POST after refused (nothing sent)", "POST", "payload", nil, refused, 200, 0, 1},
		{"POST after 503 is not retried", "POST", "payload", nil, answering(503), 503, 1, 0},
		{"POST with Idempotency-Key after 503", "POST", "payload", http.Header{"Idempotency-Key": {"k1"}}, answering(503), 200, 1, 1},
		{"GET after 500 is relayed", "GET", "", nil, answering(500), 500, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := newCountingBackend(t, 200, 0)
			first := tc.first(t)
			g := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, first.url, good.URL), Retry: policy, Timeout: 5 * time.Second}, nil)
			res, body := do(t, g, tc.method, tc.body, tc.hdr)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if got := good.hits.Load(); got != tc.goodHits {
				t.Errorf("second endpoint saw %d requests, want %d", got, tc.goodHits)
			}
			if got := first.hits(); got != tc.badHits {
				t.Errorf("first endpoint saw %d requests, want %d", got, tc.badHits)
			}
			if tc.body != "" && tc.goodHits > 0 {
				if b := <-good.bodies; b != tc.body {
					t.Errorf("retried body %q, want %q", b, tc.body)
				}
			}
			ex := g.lastExchange(t)
			if ex.Status != tc.status {
				t.Errorf("exchange status %d", ex.Status)
			}
		})
	}
}

// TestPerTryTimeout: a silent endpoint costs one per-try timeout, then the
// request is retried elsewhere; without another endpoint the client gets
// 504 at the per-try timeout.
func TestPerTryTimeout(t *testing.T) {
	t.Parallel()
	slow := newCountingBackend(t, 200, 5*time.Second)
	good := newCountingBackend(t, 200, 0)
	policy := &RetryPolicy{Attempts: 2, PerTryTimeout: 100 * time.Millisecond, BackoffBase: time.Millisecond}
	g := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, slow.URL, good.URL), Retry: policy, Timeout: 2 * time.Second, PropagateDeadline: true}, nil)
	start := time.Now()
	res, _ := do(t, g, "GET", "", nil)
	if res.StatusCode != 200 || good.hits.Load() != 1 {
		t.Fatalf("status %d, good hits %d", res.StatusCode, good.hits.Load())
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("took %v, want about one per-try timeout", d)
	}
	// The deadline sent upstream is the per-try timeout, in milliseconds.
	if v := res.Header.Get("X-Timeout"); v == "" || v > "100" || len(v) > 3 {
		t.Errorf("X-Request-Timeout upstream = %q, want at most 100", v)
	}

	only := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, slow.URL), Retry: policy, Timeout: 2 * time.Second}, nil)
	start = time.Now()
	res, _ = do(t, only, "GET", "", nil)
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", res.StatusCode)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("504 after %v; want the per-try timeouts, not the route timeout", d)
	}
}

// TestTotalTimeoutBoundsRetries: retries never outlast the route timeout.
func TestTotalTimeoutBoundsRetries(t *testing.T) {
	t.Parallel()
	slow := newCountingBackend(t, 200, 5*time.Second)
	policy := &RetryPolicy{Attempts: 10, PerTryTimeout: 80 * time.Millisecond, BackoffBase: time.Millisecond}
	g := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, slow.URL, slow.URL+"/x"), Retry: policy, Timeout: 200 * time.Millisecond}, nil)
	start := time.Now()
	res, _ := do(t, g, "GET", "", nil)
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d", res.StatusCode)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("took %v with a 200ms route timeout", d)
	}
	if n := slow.hits.Load(); n < 2 || n > 3 {
		t.Errorf("%d attempts within 200ms of 80ms tries", n)
	}
}

// TestRetryBudgetHolds: with every endpoint failing, attempts stay within
// requests plus the budget.
func TestRetryBudgetHolds(t *testing.T) {
	t.Parallel()
	bad1, bad2 := newCountingBackend(t, 503, 0), newCountingBackend(t, 503, 0)
	tr, _ := NewTransport(TransportOptions{Client: clientUnderTest})
	pool, err := upstream.New("svc", tr, upstream.Config{Budget: upstream.BudgetConfig{Percent: 20, MinPerSecond: 1}, PanicThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	pool.Update(newPool(t, TransportOptions{}, bad1.URL, bad2.URL).Endpoints())
	policy := &RetryPolicy{Attempts: 3, BackoffBase: time.Microsecond, BackoffMax: time.Microsecond}
	g := startGateway(t, newTestProxy(t), Target{Pool: pool, Retry: policy}, nil)
	const n = 300
	for range n {
		res, _ := do(t, g, "GET", "", nil)
		if res.StatusCode != 503 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	attempts := bad1.hits.Load() + bad2.hits.Load()
	if attempts > n*12/10 {
		t.Errorf("%d attempts for %d requests: the budget allows 20%%", attempts, n)
	}
	if st := pool.Stats(); st.RetriesDenied.Load() == 0 || st.Attempts.Load() != uint64(attempts) {
		t.Errorf("denied %d, attempts %d", st.RetriesDenied.Load(), st.Attempts.Load())
	}
}

// TestLargeBodyNotBuffered: a body over the buffer limit streams through
// and a 503 is relayed rather than retried.
func TestLargeBodyNotBuffered(t *testing.T) {
	t.Parallel()
	bad := newCountingBackend(t, 503, 0)
	good := newCountingBackend(t, 200, 0)
	policy := &RetryPolicy{Attempts: 3, MaxBufferBytes: 8, BackoffBase: time.Millisecond}
	g := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, bad.URL, good.URL), Retry: policy}, nil)
	res, _ := do(t, g, "PUT", strings.Repeat("x", 100), nil)
	if res.StatusCode != 503 || good.hits.Load() != 0 {
		t.Fatalf("status %d, good hits %d", res.StatusCode, good.hits.Load())
	}
	if b := <-bad.bodies; len(b) != 100 {
		t.Errorf("upstream got %d body bytes", len(b))
	}
}
