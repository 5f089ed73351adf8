package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// benchSecret is the HS256 key of the policies benchmark's issuer.
const benchSecret = "bench-secret-0123456789abcdef0123456789abcdef"

// benchGateway builds a gateway (without binding listeners) whose routes
// are one proxied route to an in-process backend, the same route behind JWT
// authentication and a local rate limit (as in scenario 3 of the peer
// benchmark, bench/configs/portico-policies.yaml) and one direct response.
// accessLog turns the access log on; it writes to io.Discard.
func benchGateway(b *testing.B, accessLog bool) http.Handler {
	b.Helper()
	payload := []byte(`{"id":42,"name":"portico","tags":["gateway","proxy","bench"],"ok":true,"padding":"` +
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" + `"}`)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(payload)
	}))
	b.Cleanup(be.Close)
	enabled := "false"
	if accessLog {
		enabled = "true"
	}
	cfg, err := config.Parse("bench.yaml", []byte(`
access_log: {enabled: `+enabled+`}
auth:
  jwt_issuers:
    - name: bench
      issuer: https://idp.test/
      audiences: [portico]
      algorithms: [HS256]
      hmac_secret: "`+benchSecret+`"
services:
  - name: api
    endpoints: [{url: "`+be.URL+`"}]
routes:
  - name: api
    match: {path: "/api/{rest...}", methods: [GET]}
    service: api
  - name: secured
    match: {path: "/secured/{rest...}", methods: [GET]}
    service: api
    auth:
      jwt:
        issuers: [bench]
    rate_limit:
      limits:
        - name: bench
          key: [client_ip]
          rate: 1000000
          per: 1s
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
	b.Cleanup(func() {
		if s.access != nil && s.access.Dropped() > 0 {
			b.Logf("access log dropped %d lines", s.access.Dropped())
		}
		s.closeAccessLog()
	})
	return &entry{s: s}
}

func benchServe(b *testing.B, h http.Handler, target, authorization string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		auth := []string{authorization}
		for pb.Next() {
			if authorization != "" {
				// The auth policy strips the credential from the request it
				// forwards; net/http gives every request a header map of its
				// own, so put it back.
				req.Header["Authorization"] = auth
			}
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
	benchServe(b, benchGateway(b, true), "/api/users/42?x=1", "")
}

// BenchmarkGatewayProxyNoLog is BenchmarkGatewayProxy with the access log
// off; the difference between the two is the access log's cost.
func BenchmarkGatewayProxyNoLog(b *testing.B) {
	benchServe(b, benchGateway(b, false), "/api/users/42?x=1", "")
}

// BenchmarkGatewayPolicies is scenario 3 of the peer benchmark in process:
// an HS256 JWT (verified once, then cached), a local rate limit far above
// the load, the access log and metrics, proxied to a loopback backend.
func BenchmarkGatewayPolicies(b *testing.B) {
	tok := signToken(b, gjwt.SigningMethodHS256, []byte(benchSecret), "", gjwt.MapClaims{
		"iss": "https://idp.test/", "aud": "portico", "sub": "bench", "exp": time.Now().Add(time.Hour).Unix(),
	})
	benchServe(b, benchGateway(b, true), "/secured/users/42?x=1", "Bearer "+tok)
}

// BenchmarkGatewayDirect is the gateway's own overhead without an upstream,
// access log and metrics included.
func BenchmarkGatewayDirect(b *testing.B) {
	benchServe(b, benchGateway(b, true), "/direct", "")
}

// BenchmarkGatewayDirectNoLog is BenchmarkGatewayDirect with the access log
// off.
func BenchmarkGatewayDirectNoLog(b *testing.B) {
	benchServe(b, benchGateway(b, false), "/direct", "")
}
