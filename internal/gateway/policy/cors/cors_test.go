package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func backend(reached *int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*reached++
		// A service that tries to allow everyone itself.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Vary", "Accept-Encoding")
		w.WriteHeader(http.StatusOK)
	})
}

func mustNew(t testing.TB, next http.Handler, cfg Config) http.Handler {
	t.Helper()
	h, err := New(next, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	reached := 0
	rejected := 0
	h := mustNew(t, backend(&reached), Config{
		AllowOrigins:     []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods:     []string{"GET", "PUT"},
		AllowHeaders:     []string{"Content-Type", "x-tenant"},
		AllowCredentials: true,
		MaxAge:           10 * time.Minute,
		RouteMethods:     []string{"GET", "PUT"},
		OnRejected:       func() { rejected++ },
	})
	acrm := func(m, hdrs string) map[string]string {
		out := map[string]string{"Access-Control-Request-Method": m}
		if hdrs != "" {
			out["Access-Control-Request-Headers"] = hdrs
		}
		return out
	}
	tests := []struct {
		name, origin string
		hdr          map[string]string
		code         int
	}{
		{"exact origin", "https://app.example.com", acrm("PUT", "content-type, X-Tenant"), 204},
		{"origin case", "HTTPS://APP.EXAMPLE.COM", acrm("GET", ""), 204},
		{"wildcard subdomain", "https://a.b.example.org", acrm("GET", ""), 204},
		{"wildcard needs a subdomain", "https://example.org", acrm("GET", ""), 403},
		{"suffix trick", "https://evilexample.org", acrm("GET", ""), 403},
		{"suffix in subdomain", "https://example.org.evil.com", acrm("GET", ""), 403},
		{"other scheme", "http://app.example.com", acrm("GET", ""), 403},
		{"other port", "https://app.example.com:8443", acrm("GET", ""), 403},
		{"null origin", "null", acrm("GET", ""), 403},
		{"method", "https://app.example.com", acrm("DELETE", ""), 403},
		{"header", "https://app.example.com", acrm("GET", "Authorization"), 403},
	}
	for _, tc := range tests {
		w := do(h, http.MethodOptions, tc.origin, tc.hdr)
		if w.Code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.name, w.Code, tc.code)
			continue
		}
		if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
			t.Errorf("%s: no Vary: Origin", tc.name)
		}
		if tc.code == 204 {
			hd := w.Header()
			if hd.Get("Access-Control-Allow-Origin") != tc.origin || hd.Get("Access-Control-Allow-Credentials") != "true" ||
				hd.Get("Access-Control-Allow-Methods") != "GET, PUT" || hd.Get("Access-Control-Allow-Headers") != "Content-Type, X-Tenant" ||
				hd.Get("Access-Control-Max-Age") != "600" {
				t.Errorf("%s: headers %v", tc.name, hd)
			}
		} else if w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: refused preflight headers %v", tc.name, w.Header())
		}
	}
	if reached != 0 {
		t.Errorf("the backend saw %d preflight requests", reached)
	}
	if rejected != 8 {
		t.Errorf("OnRejected called %d times, want 8", rejected)
	}
	if w := do(h, http.MethodOptions, "", nil); w.Code != 405 || w.Header().Get("Allow") != "GET, PUT" {
		t.Errorf("plain OPTIONS on a GET, PUT route: %d %v", w.Code, w.Header())
	}
}

func TestActualRequest(t *testing.T) {
	t.Parallel()
	reached := 0
	h := mustNew(t, backend(&reached), Config{
		AllowOrigins:  []string{"https://app.example.com"},
		ExposeHeaders: []string{"RateLimit-Remaining", "X-Request-Id"},
	})
	w := do(h, http.MethodGet, "https://app.example.com", nil)
	hd := w.Header()
	if hd.Get("Access-Control-Allow-Origin") != "https://app.example.com" || hd.Get("Access-Control-Allow-Credentials") != "" ||
		hd.Get("Access-Control-Expose-Headers") != "RateLimit-Remaining, X-Request-Id" {
		t.Errorf("allowed origin: %v", hd)
	}
	if v := hd.Values("Vary"); len(v) != 2 || v[0] != "Accept-Encoding" || v[1] != "Origin" {
		t.Errorf("Vary = %q", v)
	}
	w = do(h, http.MethodGet, "https://evil.example", nil)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin got Access-Control-Allow-Origin %q from the service", got)
	}
	w = do(h, http.MethodGet, "", nil)
	if w.Header().Get("Access-Control-Allow-Origin") != "" || !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
		t.Errorf("same-origin request: %v", w.Header())
	}
	if reached != 3 {
		t.Errorf("backend reached %d times, want 3", reached)
	}
}

func TestAnyOrigin(t *testing.T) {
	t.Parallel()
	reached := 0
	h := mustNew(t, backend(&reached), Config{AllowOrigins: []string{"*"}, AllowHeaders: []string{"*"}})
	w := do(h, http.MethodOptions, "https://x.test", map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-a, x-b"})
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Headers") != "x-a, x-b" {
		t.Errorf("any origin preflight: %d %v", w.Code, w.Header())
	}
	if w := do(h, http.MethodOptions, "", nil); w.Code != 200 || reached != 1 {
		t.Errorf("plain OPTIONS on a route matching any method: %d, reached %d", w.Code, reached)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{},
		{AllowOrigins: []string{"*"}, AllowCredentials: true},
		{AllowOrigins: []string{"https://*.*.example.com"}},
		{AllowOrigins: []string{"example.com"}},
		{AllowOrigins: []string{"https://a.example.com/path"}},
		{AllowOrigins: []string{"https://*."}},
		{AllowOrigins: []string{"https://a.example.com:0"}},
	} {
		if _, err := New(http.NotFoundHandler(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func BenchmarkActualRequest(b *testing.B) {
	h := mustNew(b, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), Config{
		AllowOrigins: []string{"https://app.example.com", "https://*.example.org"}, ExposeHeaders: []string{"X-Request-Id"},
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Origin", "https://a.example.org")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.Header())
		h.ServeHTTP(w, r)
	}
}

func BenchmarkPreflight(b *testing.B) {
	h := mustNew(b, http.NotFoundHandler(), Config{AllowOrigins: []string{"https://app.example.com"}, AllowHeaders: []string{"Content-Type"}})
	r := httptest.NewRequest(http.MethodOptions, "/", nil)
	r.Header.Set("Origin", "https://app.example.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "content-type")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
