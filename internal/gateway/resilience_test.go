package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/echo"
)

// killable is a backend that can die abruptly (listener closed, every
// connection cut, as with kill -9) and come back on the same address.
type killable struct {
	t      testing.TB
	addr   string
	status int           // 0 echoes
	idle   time.Duration // the server's keep-alive idle timeout; 0 is net/http's
	hits   atomic.Int64
	posts  atomic.Int64
	mu     sync.Mutex
	srv    *http.Server
}

func newKillable(t testing.TB, status int) *killable {
	return newKillableIdle(t, status, 0)
}

func newKillableIdle(t testing.TB, status int, idle time.Duration) *killable {
	k := &killable{t: t, addr: "127.0.0.1:0", status: status, idle: idle}
	k.start()
	t.Cleanup(k.kill)
	return k
}

func (k *killable) url() string { return "http://" + k.addr }

func (k *killable) start() {
	k.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", k.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		k.t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	echoH := echo.Handler(k.addr)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		k.hits.Add(1)
		if r.Method == http.MethodPost {
			k.posts.Add(1)
		}
		if k.status != 0 {
			w.WriteHeader(k.status)
			return
		}
		echoH.ServeHTTP(w, r)
	}), IdleTimeout: k.idle}
	k.mu.Lock()
	k.srv = srv
	k.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// kill closes the listener and cuts every connection at once.
func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.srv != nil {
		_ = k.srv.Close()
		k.srv = nil
	}
}

// blackhole accepts connections and never answers.
func blackhole(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return "http://" + ln.Addr().String()
}

type adminServices struct {
	Services []struct {
		Name      string `json:"name"`
		Available int    `json:"available"`
		Panic     bool   `json:"panic"`
		Endpoints []struct {
			URL       string `json:"url"`
			Available bool   `json:"available"`
			Ejected   bool   `json:"ejected"`
			Breaker   string `json:"breaker"`
			Health    string `json:"health"`
		} `json:"endpoints"`
	} `json:"services"`
}

// endpointState returns the admin view of the endpoint at url.
func endpointState(t testing.TB, g *testGateway, url string) (available, ejected bool, breaker, health string) {
	t.Helper()
	_, body := get(t, httpClient(), g.admin+"/admin/services")
	var as adminServices
	decodeJSON(t, body, &as)
	for _, s := range as.Services {
		for _, e := range s.Endpoints {
			if e.URL == url {
				return e.Available, e.Ejected, e.Breaker, e.Health
			}
		}
	}
	t.Fatalf("endpoint %s not in /admin/services: %s", url, body)
	return
}

func resilienceYAML(urls []string, service, route string) string {
	return "services:\n" + serviceYAML("pool", urls...) + service + `
routes:
  - name: r
    match: {path: "/{rest...}"}
    service: pool
` + route
}

// load sends GETs from 4 clients until stop is closed and counts failures.
func load(t testing.TB, url string, stop <-chan struct{}) (sent, failed *atomic.Int64, wait func()) {
	sent, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := httpClient()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				res, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
					t.Logf("status %d err %v", res.StatusCode, err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return sent, failed, wg.Wait
}

// TestKilledBackendIsRetriedEjectedAndReadmitted: one of three backends
// dies abruptly under steady load; no GET fails, the endpoint is ejected,
// and it is readmitted once it is back.
func TestKilledBackendIsRetriedEjectedAndReadmitted(t *testing.T) {
	t.Parallel()
	ks := []*killable{newKillable(t, 0), newKillable(t, 0), newKillable(t, 0)}
	g := startGateway(t, resilienceYAML([]string{ks[0].url(), ks[1].url(), ks[2].url()}, `
    health_check: {interval: 100ms, timeout: 100ms, healthy_threshold: 1, unhealthy_threshold: 2}
    outlier_detection: {consecutive_failures: 2, base_ejection_time: 300ms}
`, `    retry: {attempts: 3, backoff_base: 1ms, backoff_max: 5ms}
`))
	stop := make(chan struct{})
	sent, failed, wait := load(t, g.base+"/x", stop)
	time.Sleep(200 * time.Millisecond)
	victim := ks[1]
	victim.kill()
	waitFor(t, 3*time.Second, "the dead endpoint to be taken out", func() bool {
		avail, _, _, _ := endpointState(t, g, victim.url())
		return !avail
	})
	time.Sleep(300 * time.Millisecond)
	victim.start()
	waitFor(t, 5*time.Second, "the endpoint to be readmitted", func() bool {
		avail, _, _, _ := endpointState(t, g, victim.url())
		return avail
	})
	before := victim.hits.Load()
	waitFor(t, 3*time.Second, "traffic to reach the readmitted endpoint", func() bool { return victim.hits.Load() > before })
	close(stop)
	wait()
	if failed.Load() != 0 || sent.Load() < 100 {
		t.Fatalf("%d of %d GETs failed", failed.Load(), sent.Load())
	}
}

// TestSilentBackendTimesOutAndIsEjected: a backend that accepts TCP and
// never answers costs one per-try timeout per request until it is ejected;
// the requests succeed elsewhere.
func TestSilentBackendTimesOutAndIsEjected(t *testing.T) {
	t.Parallel()
	hole := blackhole(t)
	good := newBackend(t, "good")
	g := startGateway(t, resilienceYAML([]string{hole, good.URL}, `
    outlier_detection: {consecutive_failures: 2, base_ejection_time: 30s}
`, `    timeout: 3s
    retry: {attempts: 2, per_try_timeout: 150ms, backoff_base: 1ms}
`))
	c := httpClient()
	for i := range 6 {
		start := time.Now()
		res, _ := get(t, c, g.base+"/x")
		if res.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("request %d took %v", i, d)
		}
	}
	if avail, ejected, _, _ := endpointState(t, g, hole); avail || !ejected {
		t.Fatalf("silent endpoint available=%v ejected=%v", avail, ejected)
	}
	// Alone, the silent backend gives 504 at the per-try timeout.
	g2 := startGateway(t, resilienceYAML([]string{hole}, "", `    timeout: 3s
    retry: {attempts: 1, per_try_timeout: 150ms}
`))
	start := time.Now()
	res, body := get(t, c, g2.base+"/x")
	if res.StatusCode != http.StatusGatewayTimeout || !contains(res.Header.Get("Content-Type"), "problem+json") {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("504 after %v, want the 150ms per-try timeout", d)
	}
}

// TestFailingBackendsEjectedWithinMaxPercent: two of three backends answer
// 503 to everything; one is ejected, never both (max 50%), and retries
// keep GETs succeeding.
func TestFailingBackendsEjectedWithinMaxPercent(t *testing.T) {
	t.Parallel()
	bad1, bad2 := newKillable(t, 503), newKillable(t, 503)
	good := newBackend(t, "good")
	g := startGateway(t, resilienceYAML([]string{bad1.url(), bad2.url(), good.URL}, `
    outlier_detection: {consecutive_failures: 3, base_ejection_time: 30s, max_ejection_percent: 50}
    retry_budget: {percent: 100}
`, `    retry: {attempts: 3, backoff_base: 1ms, backoff_max: 2ms}
`))
	c := httpClient()
	for range 60 {
		if res, _ := get(t, c, g.base+"/x"); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	_, e1, _, _ := endpointState(t, g, bad1.url())
	_, e2, _, _ := endpointState(t, g, bad2.url())
	if e1 == e2 {
		t.Fatalf("ejected: %v, %v; want exactly one (50%% of 3)", e1, e2)
	}
}

// TestAllBackendsDown: fast 503 problem+json, no hang, no goroutine or
// file descriptor growth. It does not run in parallel, so the process-wide
// counts are this test's.
func TestAllBackendsDown(t *testing.T) {
	ks := []*killable{newKillable(t, 0), newKillable(t, 0)}
	g := startGateway(t, resilienceYAML([]string{ks[0].url(), ks[1].url()}, `
    circuit_breaker: {failure_threshold: 2, open_time: 30s}
`, `    retry: {attempts: 2, backoff_base: 1ms}
`))
	c := httpClient()
	get(t, c, g.base+"/warm")
	ks[0].kill()
	ks[1].kill()
	// The first requests find the endpoints refusing connections.
	for range 4 {
		res, _ := get(t, c, g.base+"/x")
		if res.StatusCode != 502 && res.StatusCode != 503 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	for range 200 {
		start := time.Now()
		res, body := get(t, c, g.base+"/x")
		if res.StatusCode != http.StatusServiceUnavailable || !contains(res.Header.Get("Content-Type"), "problem+json") {
			t.Fatalf("status %d %s: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("503 took %v", d)
		}
	}
	waitFor(t, 2*time.Second, fmt.Sprintf("goroutines to settle at %d", goroutines), func() bool {
		return runtime.NumGoroutine() <= goroutines+5
	})
	if n := openFDs(); fds > 0 && n > fds+10 {
		t.Errorf("open files grew from %d to %d", fds, n)
	}
}

// openFDs counts the process's open file descriptors (0 where unknown).
func openFDs() int {
	ents, err := readDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return ents
}

// TestPostRetriedOnlyWithIdempotencyKey: a POST that reached a backend
// answering 503 is not sent again; with an Idempotency-Key it may be.
func TestPostRetriedOnlyWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	bad1, bad2 := newKillable(t, 503), newKillable(t, 503)
	g := startGateway(t, resilienceYAML([]string{bad1.url(), bad2.url()}, `
    outlier_detection: {enabled: false}
`, `    retry: {attempts: 3, backoff_base: 1ms}
`))
	c := httpClient()
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodPost, g.base+"/orders", strings.NewReader(`{"n":1}`))
		if i%2 == 1 {
			req.Header.Set("Idempotency-Key", fmt.Sprint("key-", i))
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 503 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	// 5 plain POSTs once each; 5 keyed POSTs up to 3 times each.
	if n := bad1.posts.Load() + bad2.posts.Load(); n < 5+5*2 || n > 5+5*3 {
		t.Errorf("backends saw %d POSTs for 5 plain and 5 keyed requests", n)
	}
	bad1.posts.Store(0)
	bad2.posts.Store(0)
	req, _ := http.NewRequest(http.MethodPost, g.base+"/orders", strings.NewReader(`{}`))
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if n := bad1.posts.Load() + bad2.posts.Load(); n != 1 {
		t.Fatalf("a POST without Idempotency-Key was sent %d times", n)
	}
}

// TestRetryBudgetDuringOutage: with every backend failing, concurrent
// clients cannot make retries multiply the load: upstream attempts stay
// within 1.2 times the client requests plus the budget's minimum rate.
func TestRetryBudgetDuringOutage(t *testing.T) {
	t.Parallel()
	bad1, bad2 := newKillable(t, 503), newKillable(t, 503)
	g := startGateway(t, resilienceYAML([]string{bad1.url(), bad2.url()}, `
    outlier_detection: {enabled: false}
    retry_budget: {percent: 20, min_per_second: 1}
`, `    retry: {attempts: 5, backoff_base: 1ms, backoff_max: 1ms}
`))
	const clients, perClient = 4, 100
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := httpClient()
			for range perClient {
				if time.Now().After(deadline) {
					return
				}
				sent.Add(1)
				res, err := c.Get(g.base + "/x")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 503 {
					t.Errorf("status %d", res.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The budget counts in one-second buckets over a 10s window (the
	// default) and allows, over that window, the larger of 20% of its
	// requests and min_per_second × 10s = 10 retries. A run shorter than
	// 9s touches at most 10 distinct seconds, so all of it is one window:
	//   retries ≤ max(0.2·n, 10) ≤ 0.2·n + 10
	//   attempts = n + retries ≤ 1.2·n + 10, i.e. 10·attempts ≤ 12·n + 100.
	if elapsed >= 9*time.Second {
		t.Fatalf("the run took %v; the bound below holds for one budget window", elapsed)
	}
	n := sent.Load()
	attempts := bad1.hits.Load() + bad2.hits.Load()
	t.Logf("%d requests from %d clients in %v: %d upstream attempts", n, clients, elapsed, attempts)
	if 10*attempts > 12*n+100 {
		t.Errorf("%d upstream attempts for %d requests, want at most 1.2·%d + 10", attempts, n, n)
	}
	if attempts <= n {
		t.Errorf("%d upstream attempts for %d requests: no retry was sent, the budget was not exercised", attempts, n)
	}
	_, body := get(t, httpClient(), g.admin+"/metrics")
	if !contains(body, `portico_upstream_retries_denied_total{service="pool"}`) || !contains(body, "portico_upstream_attempts_total") {
		t.Errorf("retry metrics missing:\n%s", grep(body, "portico_upstream_"))
	}
}

// TestShortBackendKeepAliveCausesNo502: a backend that closes idle
// connections sooner than the gateway does must not produce 502s: the
// transport retries requests on connections that turn out to be closed.
func TestShortBackendKeepAliveCausesNo502(t *testing.T) {
	t.Parallel()
	k := newKillableIdle(t, 0, 30*time.Millisecond)
	g := startGateway(t, resilienceYAML([]string{k.url()}, "", `    retry: {attempts: 1}
`))
	c := httpClient()
	for i := range 30 {
		res, body := get(t, c, g.base+"/x")
		if res.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, res.StatusCode, body)
		}
		time.Sleep(time.Duration(25+i%10) * time.Millisecond)
	}
}

// TestTruncatedUpstreamBodyAbortsClient: a Content-Length larger than what
// the backend sends never looks like a clean 200 to the client.
func TestTruncatedUpstreamBodyAbortsClient(t *testing.T) {
	t.Parallel()
	be := newHijackBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
	g := startGateway(t, resilienceYAML([]string{be}, "", ""))
	conn, err := net.Dial("tcp", g.Addr("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /x HTTP/1.1\r\nHost: gw\r\n\r\n")
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return // aborted before the headers: fine
	}
	b, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("client read a complete %d response of %d bytes", res.StatusCode, len(b))
	}
}

func readDir(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	return len(ents), err
}

// TestEndpointStateSurvivesReload: editing a service (adding an endpoint)
// reconciles its pool, so an ejected endpoint stays ejected; removing the
// service closes the pool.
func TestEndpointStateSurvivesReload(t *testing.T) {
	t.Parallel()
	bad, good, extra := newKillable(t, 503), newBackend(t, "good"), newBackend(t, "extra")
	svc := `
    outlier_detection: {consecutive_failures: 2, base_ejection_time: 1m}
`
	g := startGateway(t, resilienceYAML([]string{bad.url(), good.URL}, svc, ""))
	c := httpClient()
	waitFor(t, 3*time.Second, "the failing endpoint to be ejected", func() bool {
		get(t, c, g.base+"/x")
		_, ejected, _, _ := endpointState(t, g, bad.url())
		return ejected
	})
	pool := g.snap.Load().services["pool"].pool
	g.rewrite(t, resilienceYAML([]string{bad.url(), good.URL, extra.URL}, svc, ""))
	if _, err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if g.snap.Load().services["pool"].pool != pool {
		t.Fatal("a changed service got a new pool")
	}
	if _, ejected, _, _ := endpointState(t, g, bad.url()); !ejected {
		t.Fatal("ejection lost on reload")
	}
	if len(pool.Endpoints()) != 3 {
		t.Fatalf("%d endpoints after the reload", len(pool.Endpoints()))
	}
}
