package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderLimit, "999") // an upstream's own limit
		w.WriteHeader(http.StatusOK)
	})
}

func newShared(t testing.TB) *Shared {
	t.Helper()
	s, err := NewShared(SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKey(t testing.TB, parts ...string) KeySpec {
	t.Helper()
	ks, err := ParseKey(parts)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// request returns a request from ip carrying an exchange.
func request(ip string, consumer *exchange.Consumer) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	x := &exchange.Exchange{ID: "req-1", ClientIP: netip.MustParseAddr(ip), Consumer: consumer}
	return r.WithContext(exchange.NewContext(r.Context(), x))
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerHeadersAnd429(t *testing.T) {
	t.Parallel()
	h, err := New(okHandler(), Config{Route: "r", Headers: true, Rates: []Rate{
		{Name: "per-ip", Bucket: "r/per-ip", Key: mustKey(t, "client_ip"), Limit: Limit{Rate: 2, Period: time.Minute}},
	}}, newShared(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"1", "0"} {
		w := serve(h, request("192.0.2.1", nil))
		if w.Code != 200 || w.Header().Get(HeaderRemaining) != want || w.Header().Get(HeaderLimit) != "2" {
			t.Fatalf("request %d: %d %v", i, w.Code, w.Header())
		}
		if v := w.Header().Values(HeaderLimit); len(v) != 1 {
			t.Errorf("RateLimit-Limit = %q: the upstream's value was not replaced", v)
		}
	}
	w := serve(h, request("192.0.2.1", nil))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ra := w.Header().Get("Retry-After"); ra != "30" {
		t.Errorf("Retry-After = %q, want 30 (one emission interval)", ra)
	}
	if w.Header().Get(HeaderRemaining) != "0" || w.Header().Get(HeaderReset) != "60" {
		t.Errorf("429 headers = %v", w.Header())
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc["status"] != float64(429) || doc["request_id"] != "req-1" ||
		!strings.Contains(fmt.Sprint(doc["detail"]), `"per-ip"`) {
		t.Errorf("problem = %s (%v)", w.Body, err)
	}
	if w := serve(h, request("192.0.2.2", nil)); w.Code != 200 {
		t.Errorf("another client IP: %d, want its own bucket", w.Code)
	}
}

func TestHandlerWithoutHeaders(t *testing.T) {
	t.Parallel()
	h, err := New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{Route: "r", Rates: []Rate{
		{Name: "l", Bucket: "b", Key: mustKey(t), Limit: Limit{Rate: 1, Period: time.Minute}},
	}}, newShared(t))
	if err != nil {
		t.Fatal(err)
	}
	if w := serve(h, request("192.0.2.1", nil)); w.Header().Get(HeaderLimit) != "" {
		t.Errorf("headers off, but got %v", w.Header())
	}
	if w := serve(h, request("192.0.2.1", nil)); w.Code != 429 || w.Header().Get("Retry-After") == "" || w.Header().Get(HeaderLimit) != "" {
		t.Errorf("429 with headers off: %d %v", w.Code, w.Header())
	}
}

// TestHandlerSeveralLimits checks that the headers report the limit with
// the least remaining and that a later limit can refuse.
func TestHandlerSeveralLimits(t *testing.T) {
	t.Parallel()
	h, err := New(okHandler(), Config{Route: "r", Headers: true, Rates: []Rate{
		{Name: "wide", Bucket: "wide", Key: mustKey(t), Limit: Limit{Rate: 100, Period: time.Minute}},
		{Name: "narrow", Bucket: "narrow", Key: mustKey(t, "consumer"), Limit: Limit{Rate: 3, Period: time.Minute}},
	}}, newShared(t))
	if err != nil {
		t.Fatal(err)
	}
	alice := &exchange.Consumer{ID: "alice"}
	for range 3 {
		serve(h, request("192.0.2.1", alice))
	}
	w := serve(h, request("192.0.2.9", alice))
	if w.Code != 429 || !strings.Contains(w.Body.String(), `\"narrow\"`) {
		t.Errorf("consumer over its limit from another IP: %d %s", w.Code, w.Body)
	}
	if w := serve(h, request("192.0.2.9", &exchange.Consumer{ID: "bob"})); w.Code != 200 || w.Header().Get(HeaderLimit) != "3" {
		t.Errorf("bob: %d %v", w.Code, w.Header())
	}
}

func TestHandlerQuota(t *testing.T) {
	t.Parallel()
	h, err := New(okHandler(), Config{Route: "r", Headers: true, Quotas: []QuotaRule{
		{Name: "daily", Bucket: "plan", Key: mustKey(t, "consumer"), Limit: 2, Period: Day},
	}}, newShared(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &exchange.Consumer{ID: "carol", Issuer: "idp"}
	serve(h, request("192.0.2.1", c))
	serve(h, request("192.0.2.1", c))
	w := serve(h, request("192.0.2.1", c))
	ra := w.Header().Get("Retry-After")
	if w.Code != 429 || ra == "" || ra == "0" || w.Header().Get(HeaderLimit) != "2" {
		t.Errorf("over quota: %d %v", w.Code, w.Header())
	}
}

// deadRedis returns shared stores whose Redis address refuses connections.
func deadRedis(t testing.TB) *Shared {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := NewShared(SharedOptions{Redis: &RedisOptions{Address: addr, Timeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestHandlerRedisDownFailOpen(t *testing.T) {
	t.Parallel()
	shared := deadRedis(t)
	h, err := New(okHandler(), Config{Route: "r", Headers: true,
		Rates:  []Rate{{Name: "l", Bucket: "b", Key: mustKey(t), Limit: Limit{Rate: 5, Period: time.Hour}, Redis: true}},
		Quotas: []QuotaRule{{Name: "q", Bucket: "q", Key: mustKey(t), Limit: 1, Period: Month, Redis: true}},
	}, shared)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for range 20 {
		codes[serve(h, request("192.0.2.1", nil)).Code]++
	}
	if codes[200] != 5 || codes[429] != 15 {
		t.Errorf("status counts %v: want the local fallback limit (5 pass) and no 5xx", codes)
	}
	if !shared.Redis.BreakerOpen() {
		t.Error("breaker still closed after repeated failures")
	}
}

func TestHandlerRedisDownFailClosed(t *testing.T) {
	t.Parallel()
	h, err := New(okHandler(), Config{Route: "r", FailClosed: true,
		Rates: []Rate{{Name: "l", Bucket: "b", Key: mustKey(t), Limit: Limit{Rate: 5, Period: time.Hour}, Redis: true}},
	}, deadRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	w := serve(h, request("192.0.2.1", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" ||
		w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("fail closed: %d %v", w.Code, w.Header())
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	shared := newShared(t)
	if _, err := New(okHandler(), Config{Rates: []Rate{{Name: "x", Limit: Limit{Rate: 1, Period: time.Second}, Redis: true}}}, shared); err == nil ||
		!strings.Contains(err.Error(), "rate_limits.redis") {
		t.Errorf("Redis limit without Redis: %v", err)
	}
	if _, err := New(okHandler(), Config{Rates: []Rate{{Name: "x"}}}, shared); err == nil {
		t.Error("zero limit accepted")
	}
	if _, err := New(okHandler(), Config{}, nil); err == nil {
		t.Error("nil stores accepted")
	}
	if _, err := ParseKey([]string{"cookie"}); err == nil {
		t.Error("unknown key part accepted")
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	ks, err := ParseKey([]string{"consumer", "api_key", "header:x-tenant", "client_ip"})
	if err != nil {
		t.Fatal(err)
	}
	if !ks.NeedsIdentity() || mustKey(t, "client_ip", "header:x").NeedsIdentity() {
		t.Error("NeedsIdentity is wrong")
	}
	build := func(r *http.Request) string {
		return string(ks.append(nil, "b", r, exchange.From(r.Context())))
	}
	anon := request("::ffff:192.0.2.1", nil)
	if got, want := build(anon), "b|ip=192.0.2.1|ip=192.0.2.1|ip=192.0.2.1|ip=192.0.2.1"; got != want {
		t.Errorf("anonymous key = %q, want %q: missing parts fall back to the client IP", got, want)
	}
	r := request("192.0.2.1", &exchange.Consumer{ID: "alice", Issuer: "idp", KeyID: "0123abcd"})
	r.Header.Set("X-Tenant", "acme")
	if got, want := build(r), "b|c=idp/alice|k=0123abcd|h=acme|ip=192.0.2.1"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	long := request("192.0.2.1", nil)
	long.Header.Set("X-Tenant", strings.Repeat("a", 1000))
	if k := build(long); len(k) > 200 || !strings.Contains(k, "h=#") {
		t.Errorf("long header value kept as is: %d bytes", len(k))
	}
}

// TestAPIKeyPartIgnoresRequest pins down the bug where the api_key part
// read the X-Api-Key header itself: after auth stripped it the part fell
// back to the client IP, and on a route that did not check the header a
// made-up value per request opened a fresh bucket each time. The part now
// reads only the key identity auth recorded.
func TestAPIKeyPartIgnoresRequest(t *testing.T) {
	t.Parallel()
	ks := mustKey(t, "api_key")
	for i, r := range []*http.Request{request("192.0.2.1", nil), request("192.0.2.1", &exchange.Consumer{ID: "jwt-sub", Issuer: "idp"})} {
		r.Header.Set("X-Api-Key", "made-up-"+strconv.Itoa(i))
		r.URL.RawQuery = "api_key=made-up"
		if got := string(ks.append(nil, "b", r, exchange.From(r.Context()))); got != "b|ip=192.0.2.1" {
			t.Errorf("request %d: key %q, want the client IP", i, got)
		}
	}
}

// TestPreAndPostAuthHeaders: a route whose limits run on both sides of
// auth reports the tighter of the two in its RateLimit headers, and the
// refusing one on a 429.
func TestPreAndPostAuthHeaders(t *testing.T) {
	t.Parallel()
	shared := newShared(t)
	post, err := New(okHandler(), Config{Route: "r", Headers: true, Rates: []Rate{
		{Name: "per-consumer", Bucket: "r/c", Key: mustKey(t, "consumer"), Limit: Limit{Rate: 2, Period: time.Hour}},
	}}, shared)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := New(post, Config{Route: "r", Headers: true, Rates: []Rate{
		{Name: "per-ip", Bucket: "r/ip", Key: mustKey(t, "client_ip"), Limit: Limit{Rate: 5, Period: time.Hour}},
	}}, shared)
	if err != nil {
		t.Fatal(err)
	}
	alice := &exchange.Consumer{ID: "alice"}
	for i, want := range []string{"1", "0"} {
		w := serve(pre, request("192.0.2.9", alice))
		if w.Code != 200 || w.Header().Get(HeaderLimit) != "2" || w.Header().Get(HeaderRemaining) != want {
			t.Fatalf("request %d: %d %v", i, w.Code, w.Header())
		}
	}
	w := serve(pre, request("192.0.2.9", alice))
	if w.Code != 429 || w.Header().Get(HeaderLimit) != "2" || w.Header().Get(HeaderRemaining) != "0" {
		t.Fatalf("refused by the post-auth limit: %d %v", w.Code, w.Header())
	}
	w = serve(pre, request("192.0.2.9", &exchange.Consumer{ID: "bob"}))
	// Both have one left; the IP limit takes longer to refill.
	if w.Code != 200 || w.Header().Get(HeaderLimit) != "5" || w.Header().Get(HeaderRemaining) != "1" {
		t.Fatalf("bob: %d %v", w.Code, w.Header())
	}
	w = serve(pre, request("192.0.2.9", &exchange.Consumer{ID: "carol"}))
	if w.Code != 200 || w.Header().Get(HeaderLimit) != "5" || w.Header().Get(HeaderRemaining) != "0" {
		t.Fatalf("carol, 5th request from the IP: %d %v, want the IP limit reported", w.Code, w.Header())
	}
	w = serve(pre, request("192.0.2.9", &exchange.Consumer{ID: "dave"}))
	if w.Code != 429 || w.Header().Get(HeaderLimit) != "5" {
		t.Fatalf("6th request from the IP: %d %v", w.Code, w.Header())
	}
}

func BenchmarkHandlerLocal(b *testing.B) {
	h, err := New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{Route: "r", Headers: true, Rates: []Rate{
		{Name: "l", Bucket: "r/l", Key: mustKey(b, "client_ip"), Limit: Limit{Rate: 1 << 40, Period: time.Second}},
	}}, newShared(b))
	if err != nil {
		b.Fatal(err)
	}
	r := request("203.0.113.7", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.Header())
		h.ServeHTTP(w, r)
	}
}

func BenchmarkHandlerRedis(b *testing.B) {
	rs := testRedis(b, RedisOptions{})
	shared := &Shared{Local: NewLocalStore(LocalOptions{}), Redis: rs}
	h, err := New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{Route: "r", Headers: true, Rates: []Rate{
		{Name: "l", Bucket: "r/l", Key: mustKey(b, "client_ip"), Limit: Limit{Rate: 1 << 40, Period: time.Second}, Redis: true},
	}}, shared)
	if err != nil {
		b.Fatal(err)
	}
	r := request("203.0.113.7", nil).WithContext(context.Background())
	r = r.WithContext(exchange.NewContext(r.Context(), &exchange.Exchange{ClientIP: netip.MustParseAddr("203.0.113.7")}))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.Header())
		h.ServeHTTP(w, r)
	}
}
