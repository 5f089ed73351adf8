package policy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/policy/auth"
)

// authChain builds the built-in chain of a route with JWT auth and an
// authorize rule in front of a trivial handler, and a valid token for it.
func authChain(tb testing.TB) (http.Handler, string) {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	file := filepath.Join(tb.TempDir(), "idp.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg := &config.Auth{JWTIssuers: []config.JWTIssuer{{
		Name: "idp", Issuer: "https://idp.test/", Audiences: []string{"portico"}, Algorithms: []string{"RS256"},
		PublicKeys: []config.PublicKeyFile{{File: file}}, Leeway: config.Duration(30 * time.Second),
	}}}
	route := &config.Route{Name: "orders", MaxBodyBytes: -1,
		Auth:      &config.RouteAuth{JWT: &config.RouteJWT{}},
		Authorize: &config.Authorize{Scopes: &config.Requirement{AllOf: []string{"orders:read"}}},
	}
	env := Env{Auth: auth.NewRegistry(nil).Begin(cfg)}
	h, err := Chain(Builtin(), env, route, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := gjwt.NewWithClaims(gjwt.SigningMethodRS256, gjwt.MapClaims{
		"iss": "https://idp.test/", "aud": "portico", "sub": "alice", "scope": "orders:read",
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return h, tok
}

func TestAuthChain(t *testing.T) {
	h, tok := authChain(t)
	for _, tc := range []struct {
		auth string
		code int
	}{{"Bearer " + tok, 204}, {"", 401}, {"Bearer " + tok + "x", 401}} {
		r := httptest.NewRequest(http.MethodGet, "/orders", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		x := &exchange.Exchange{}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r.WithContext(exchange.NewContext(r.Context(), x)))
		if rec.Code != tc.code {
			t.Errorf("Authorization %.20q: status %d, want %d", tc.auth, rec.Code, tc.code)
		}
	}
}

// BenchmarkChainJWTAuthorize is the full policy chain with JWT auth (token
// cached after the first request) and authorization in front of a trivial
// handler.
func BenchmarkChainJWTAuthorize(b *testing.B) {
	h, tok := authChain(b)
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	x := &exchange.Exchange{}
	r = r.WithContext(exchange.NewContext(r.Context(), x))
	w := &statusWriter{h: http.Header{}}
	val := []string{"Bearer " + tok}
	b.ReportAllocs()
	for b.Loop() {
		r.Header["Authorization"] = val
		x.Consumer = nil
		h.ServeHTTP(w, r)
		if w.code != http.StatusNoContent {
			b.Fatalf("status %d", w.code)
		}
	}
}

// statusWriter keeps only the status code.
type statusWriter struct {
	h    http.Header
	code int
}

func (d *statusWriter) Header() http.Header         { return d.h }
func (d *statusWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *statusWriter) WriteHeader(code int)        { d.code = code }
