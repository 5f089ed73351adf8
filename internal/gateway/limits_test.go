package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// metricValue reads one counter or gauge.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// countingBackend answers 200 and counts the requests it saw.
type countingBackend struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingBackend(t testing.TB) *countingBackend {
	t.Helper()
	b := &countingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*") // the gateway must not let this through
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

// burst sends n concurrent GETs spread over urls and counts the statuses.
func burst(t testing.TB, n int, urls []string, header http.Header) map[int]int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodGet, urls[i%len(urls)], nil)
			for k, v := range header {
				req.Header[k] = v
			}
			if i%2 == 1 && header.Get("X-Forwarded-For") != "" {
				// Every other request claims yet another address.
				req.Header.Set("X-Forwarded-For", "198.51.100."+strconv.Itoa(i%250))
			}
			code := 0
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

func limitedRoute(be, limit string) string {
	return `services:
  - name: be
    endpoints: [{url: "` + be + `"}]
routes:
  - name: limited
    match: {path: /limited}
    service: be
    rate_limit:
      limits:
` + limit
}

// TestRateLimitSingleInstanceAccuracy: 300 concurrent requests against a
// limit of 100 → exactly 100 pass, and the backend sees only those.
func TestRateLimitSingleInstanceAccuracy(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	g := startGateway(t, limitedRoute(be.URL, "        - {name: per-ip, rate: 100, per: 1h}\n"))
	codes := burst(t, 300, []string{g.base + "/limited"}, nil)
	if codes[200] != 100 || codes[429] != 200 {
		t.Errorf("status counts %v, want exactly 100 × 200 and 200 × 429", codes)
	}
	if n := be.hits.Load(); n != 100 {
		t.Errorf("backend saw %d requests, want 100", n)
	}
	if v := metricValue(t, g.Metrics().rateLimited.WithLabelValues("limited", "per-ip")); v != 200 {
		t.Errorf("portico_rate_limited_requests_total = %v, want 200", v)
	}
}

func TestRateLimitResponses(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	g := startGateway(t, limitedRoute(be.URL, "        - {name: per-ip, rate: 2, per: 1m}\n"))
	c := httpClient()
	for i, want := range []string{"1", "0"} {
		resp, _ := get(t, c, g.base+"/limited")
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "2" || resp.Header.Get("RateLimit-Remaining") != want ||
			resp.Header.Get("RateLimit-Reset") == "" {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	resp, body := get(t, c, g.base+"/limited")
	if resp.StatusCode != 429 || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("third request: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var doc struct {
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}
	decodeJSON(t, body, &doc)
	if doc.Status != 429 || doc.RequestID != resp.Header.Get("X-Request-Id") {
		t.Errorf("problem = %s", body)
	}
	waitFor(t, 2*time.Second, "the access log line of the 429", func() bool {
		return contains(g.access.String(), `"error":"rate_limited"`)
	})
}

// TestRateLimitSurvivesReload: counters live in the Server, not in the
// snapshot, so a reload (even one that changes the route) resets nothing.
func TestRateLimitSurvivesReload(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	yaml := limitedRoute(be.URL, "        - {name: per-ip, rate: 3, per: 1h}\n")
	g := startGateway(t, yaml)
	c := httpClient()
	for range 3 {
		get(t, c, g.base+"/limited")
	}
	g.rewrite(t, yaml+`  - name: other
    match: {path: /other}
    direct_response: {body: other}
`)
	if _, err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, g.base+"/other"); resp.StatusCode != 200 {
		t.Fatalf("new route not served: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, g.base+"/limited"); resp.StatusCode != 429 {
		t.Errorf("after a reload the exhausted limit answered %d, want 429", resp.StatusCode)
	}
}

// TestXFFSpoofingAgainstIPLimits: without trusted proxies, a client cannot
// escape an IP-keyed limit or a deny list by claiming other addresses in
// X-Forwarded-For; the backend never sees refused requests.
func TestXFFSpoofingAgainstIPLimits(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	g := startGateway(t, limitedRoute(be.URL, "        - {name: per-ip, key: [client_ip], rate: 10, per: 1h}\n")+`  - name: denied
    match: {path: /denied}
    service: be
    ip_filter: {deny: [127.0.0.0/8]}
  - name: allowed-only
    match: {path: /allowed-only}
    service: be
    ip_filter: {allow: [203.0.113.0/24]}
`)
	spoof := http.Header{"X-Forwarded-For": {"203.0.113.50"}, "X-Real-Ip": {"203.0.113.51"}, "Forwarded": {"for=203.0.113.52"}}
	codes := burst(t, 60, []string{g.base + "/limited"}, spoof)
	if codes[200] != 10 || codes[429] != 50 {
		t.Errorf("spoofed X-Forwarded-For against an IP limit of 10: %v", codes)
	}
	for _, path := range []string{"/denied", "/allowed-only"} {
		codes := burst(t, 10, []string{g.base + path}, spoof)
		if codes[403] != 10 {
			t.Errorf("%s with spoofed forwarding headers: %v, want 10 × 403", path, codes)
		}
	}
	if n := be.hits.Load(); n != 10 {
		t.Errorf("backend saw %d requests, want only the 10 allowed ones", n)
	}
	if v := metricValue(t, g.Metrics().ipDenied.WithLabelValues("denied")); v != 10 {
		t.Errorf("portico_ip_filter_denied_total{route=denied} = %v", v)
	}
}

// TestIPFilterBehindTrustedProxy: with the peer trusted, the client IP comes
// from X-Forwarded-For, and lists apply to that address.
func TestIPFilterBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	g := startGateway(t, `trusted_proxies: [127.0.0.1]
services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
routes:
  - name: r
    match: {path: /r}
    service: be
    ip_filter: {deny: [203.0.113.0/24]}
`)
	c := httpClient()
	for _, tc := range []struct {
		xff  string
		code int
	}{{"203.0.113.9", 403}, {"198.51.100.9", 200}, {"203.0.113.9, 198.51.100.9", 200}, {"198.51.100.9, 203.0.113.9", 403}} {
		req, _ := http.NewRequest(http.MethodGet, g.base+"/r", nil)
		req.Header.Set("X-Forwarded-For", tc.xff)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("X-Forwarded-For %q: %d, want %d", tc.xff, resp.StatusCode, tc.code)
		}
	}
}

func TestCORSThroughGateway(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	g := startGateway(t, `services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
routes:
  - name: api
    match: {path: /api, methods: [GET, PUT]}
    service: be
    rate_limit:
      limits: [{rate: 100, per: 1m}]
    cors:
      allow_origins: ["https://app.example.com", "https://*.example.org"]
      allow_headers: [Content-Type]
      expose_headers: [RateLimit-Remaining]
      allow_credentials: true
      max_age: 1h
`)
	c := httpClient()
	pre, _ := http.NewRequest(http.MethodOptions, g.base+"/api", nil)
	pre.Header.Set("Origin", "https://shop.example.org")
	pre.Header.Set("Access-Control-Request-Method", "PUT")
	pre.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := c.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://shop.example.org" ||
		h.Get("Access-Control-Allow-Methods") != "GET, PUT" || h.Get("Access-Control-Max-Age") != "3600" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	pre.Header.Set("Origin", "https://evil.example")
	if resp, err = c.Do(pre); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	if n := be.hits.Load(); n != 0 {
		t.Errorf("the backend saw %d preflight requests", n)
	}
	req, _ := http.NewRequest(http.MethodGet, g.base+"/api", nil)
	req.Header.Set("Origin", "https://app.example.com")
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		len(resp.Header.Values("Access-Control-Allow-Origin")) != 1 || resp.Header.Get("Access-Control-Expose-Headers") != "RateLimit-Remaining" ||
		resp.Header.Get("RateLimit-Remaining") != "99" {
		t.Errorf("actual request: %d %v", resp.StatusCode, resp.Header)
	}
	// OPTIONS without a preflight is still not a method of this route.
	plain, _ := http.NewRequest(http.MethodOptions, g.base+"/api", nil)
	if resp, err = c.Do(plain); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("plain OPTIONS: %d, want 405", resp.StatusCode)
	}
}

// requireRedis returns the address of the machine's Redis, skipping (or,
// with PORTICO_REQUIRE_SERVICES=1, failing) when it is not running.
func requireRedis(t testing.TB) string {
	t.Helper()
	const addr = "127.0.0.1:6379"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("PORTICO_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis is required (PORTICO_REQUIRE_SERVICES=1) but %s is not reachable: %v", addr, err)
		}
		t.Skipf("Redis is not running on %s (.ci/run starts it): %v", addr, err)
	}
	c.Close()
	return addr
}

func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("portico-test:%s:%d:%d:", t.Name(), os.Getpid(), time.Now().UnixNano())
}

func redisConfig(addr, prefix, extra string) string {
	return "rate_limits:\n  redis:\n    address: \"" + addr + "\"\n    key_prefix: \"" + prefix + "\"\n" + extra
}

// TestDistributedRateLimit: three gateways sharing one Redis enforce one
// limit. The check runs in one atomic script on the Redis clock, so the
// documented margin is zero while Redis answers.
func TestDistributedRateLimit(t *testing.T) {
	t.Parallel()
	addr := requireRedis(t)
	be := newCountingBackend(t)
	yaml := redisConfig(addr, uniquePrefix(t), "    timeout: 2s\n    pool_size: 50\n") +
		limitedRoute(be.URL, "        - {name: shared, key: [client_ip], rate: 100, per: 1h, store: redis}\n")
	var urls []string
	for range 3 {
		g := startGateway(t, yaml)
		urls = append(urls, g.base+"/limited")
	}
	codes := burst(t, 300, urls, nil)
	const margin = 0
	if codes[200] < 100 || codes[200] > 100+margin || codes[200]+codes[429] != 300 {
		t.Errorf("three replicas, limit 100: status counts %v; want 100 (+%d) passed and the rest 429", codes, margin)
	}
	if n := be.hits.Load(); n != int64(codes[200]) {
		t.Errorf("backend saw %d requests, %d passed", n, codes[200])
	}
}

// startRedis runs a private redis-server on a free loopback port and
// returns its address and a function that kills it.
func startRedis(t testing.TB) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("PORTICO_REQUIRE_SERVICES") == "1" {
			t.Fatalf("redis-server is required (PORTICO_REQUIRE_SERVICES=1): %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	addr := "127.0.0.1:" + port
	waitFor(t, 5*time.Second, "redis-server to listen", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, stop
}

// TestRedisStoppedMidTest: when Redis dies, fail-open routes keep serving
// under each replica's local fallback limit (429s, no 5xx, no added
// latency once the breaker is open) and fail-closed routes answer 503.
func TestRedisStoppedMidTest(t *testing.T) {
	t.Parallel()
	addr, stop := startRedis(t)
	be := newCountingBackend(t)
	yaml := redisConfig(addr, "portico-test:", "    timeout: 100ms\n    breaker_cooldown: 30s\n") + `services:
  - name: be
    endpoints: [{url: "` + be.URL + `"}]
routes:
  - name: open
    match: {path: /open}
    service: be
    rate_limit:
      limits: [{name: shared, rate: 20, per: 1h, store: redis}]
  - name: closed
    match: {path: /closed}
    service: be
    rate_limit:
      limits: [{name: shared, rate: 20, per: 1h, store: redis}]
      on_redis_error: closed
`
	g1, g2 := startGateway(t, yaml), startGateway(t, yaml)
	codes := burst(t, 30, []string{g1.base + "/open", g2.base + "/open"}, nil)
	if codes[200] != 20 || codes[429] != 10 {
		t.Fatalf("with Redis up: %v, want one shared limit of 20", codes)
	}
	stop()

	start := time.Now()
	codes = burst(t, 60, []string{g1.base + "/open", g2.base + "/open"}, nil)
	// Each replica falls back to the same limit in its own memory: up to
	// 20 per replica pass, the rest get 429, and nothing gets a 5xx.
	if codes[200] != 40 || codes[429] != 20 {
		t.Errorf("Redis down, fail open: %v, want 2 × 20 passed by the local fallback and 20 × 429", codes)
	}
	codes = burst(t, 20, []string{g1.base + "/closed", g2.base + "/closed"}, nil)
	if codes[503] != 20 {
		t.Errorf("Redis down, fail closed: %v, want 20 × 503", codes)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("requests with Redis down took %s", d)
	}
	for _, g := range []*testGateway{g1, g2} {
		m := g.Metrics()
		if v := metricValue(t, m.rateLimitErrors.WithLabelValues("fail_open")); v < 30 {
			t.Errorf("fail_open store errors = %v", v)
		}
		if v := metricValue(t, m.rateLimitBreaker); v != 1 {
			t.Errorf("breaker gauge = %v, want 1 (open)", v)
		}
	}
	// Once the breaker is open, a request costs no Redis timeout.
	c := httpClient()
	t0 := time.Now()
	for range 20 {
		resp, _ := get(t, c, g1.base+"/open")
		if resp.StatusCode >= 500 {
			t.Fatalf("fail-open route answered %d", resp.StatusCode)
		}
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("20 requests with the breaker open took %s", d)
	}
}

// BenchmarkChainRateLimitCORS is the whole gateway handler in front of a
// loopback backend with a local rate limit and CORS on the route.
func BenchmarkChainRateLimitCORS(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	b.Cleanup(be.Close)
	g := startGateway(b, `access_log: {enabled: true}
services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
routes:
  - name: api
    match: {path: "/api/{rest...}", methods: [GET]}
    service: be
    rate_limit:
      limits: [{rate: 1000000000, per: 1h, key: [client_ip]}]
    cors:
      allow_origins: ["https://app.example.com", "https://*.example.org"]
      expose_headers: [RateLimit-Remaining]
`)
	h := &entry{s: g.Server}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/api/users/42", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Origin", "https://app.example.com")
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

// TestAPIKeyLimitCountsVerifiedKey pins down the bug where a limit keyed by
// api_key never saw the key: auth had already removed it from the request,
// so the limit fell back to the client IP and a client changing its
// (trusted) forwarded address escaped it; on a route without API-key auth
// the part read whatever X-Api-Key the client made up. The part now counts
// by the key auth verified, and is refused on routes without API-key auth.
func TestAPIKeyLimitCountsVerifiedKey(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	const keyA, keyB = "key-aaaaaaaaaaaaaaaaaaaa", "key-bbbbbbbbbbbbbbbbbbbb"
	digest := func(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }
	consumers := `auth:
  consumers:
    - id: a
      api_keys: [{sha256: ` + digest(keyA) + `}]
    - id: b
      api_keys: [{sha256: ` + digest(keyB) + `}]
`
	g := startGateway(t, `trusted_proxies: [127.0.0.1]
services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
`+consumers+`routes:
  - name: limited
    match: {path: /limited}
    service: be
    auth: {api_key: {header: X-Api-Key}}
    rate_limit:
      limits:
        - {name: per-key, key: [api_key], rate: 3, per: 1h}
`)
	c := httpClient()
	do := func(key, from string) int {
		req, _ := http.NewRequest(http.MethodGet, g.base+"/limited", nil)
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, want := range []int{200, 200, 200, 429, 429} {
		if got := do(keyA, "198.51.100."+strconv.Itoa(i+1)); got != want {
			t.Errorf("key A request %d from a new forwarded address: %d, want %d", i, got, want)
		}
	}
	if got := do(keyB, "198.51.100.1"); got != 200 {
		t.Errorf("key B, from an address key A used: %d, want 200 (its own bucket)", got)
	}
	if n := be.hits.Load(); n != 4 {
		t.Errorf("backend saw %d requests, want 4", n)
	}

	// A route that does not verify API keys cannot count by them: a key a
	// client merely sends would choose its bucket. The configuration is
	// refused with file, line and field.
	path := writeConfig(t, t.TempDir(), baseConfig+`services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
`+consumers+`routes:
  - name: open
    match: {path: /open}
    service: be
    rate_limit:
      limits:
        - {name: per-key, key: [api_key], rate: 3, per: 1h}
`)
	_, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), path+":") ||
		!strings.Contains(err.Error(), `routes[0].rate_limit.limits[0].key[0]: key part "api_key" needs auth.api_key on the route`) {
		t.Fatalf("an api_key limit on a route without API-key auth: %v", err)
	}
}
