package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// benchGateway builds a gateway (without binding listeners) whose routes
// are one proxied route to an in-process backend and one direct response.
func benchGateway(b *testing.B) http.Handler {
	b.Helper()
	payload := []byte(`{"id":42,"name":"portico","tags":["gateway","proxy","bench"],"ok":true,"padding":"` +
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" + `"}`)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(payload)
	}))
	b.Cleanup(be.Close)
	cfg, err := config.Parse("bench.yaml", []byte(`
access_log: {enabled: true}
services:
  - name: api
    endpoints: [{url: "`+be.URL+`"}]
routes:
  - name: api
    match: {path: "/api/{rest...}", methods: [GET]}
    service: api
  - name: direct
    match: {path: /direct}
    direct_response: {body: ok}
`))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(cfg, WithLogger(discardLogger()), WithAccessLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.closeAccessLog() })
	return &entry{s: s}
}

func benchServe(b *testing.B, h http.Handler, target string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkGatewayProxy is the whole gateway handler (request id, canonical
// path, routing, metrics, access log, proxy) round-tripping to a loopback
// backend over keep-alive connections.
func BenchmarkGatewayProxy(b *testing.B) {
	benchServe(b, benchGateway(b), "/api/users/42?x=1")
}

// BenchmarkGatewayDirect is the gateway's own overhead without an upstream.
func BenchmarkGatewayDirect(b *testing.B) {
	benchServe(b, benchGateway(b), "/direct")
}
