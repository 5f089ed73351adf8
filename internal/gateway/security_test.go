package gateway

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// recordingBackend answers 200 and remembers every request that reached it.
type recordingBackend struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last *http.Request
}

func newRecordingBackend(t testing.TB) *recordingBackend {
	t.Helper()
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.last = r.Clone(r.Context())
		b.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) lastRequest() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

var (
	secKeyOnce sync.Once
	secKey     *rsa.PrivateKey
	otherKey   *rsa.PrivateKey
)

func securityKeys() {
	secKeyOnce.Do(func() {
		secKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		otherKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
}

// jwksFor serves the JWKS of secKey under kid "k1" and counts fetches.
func jwksFor(t testing.TB) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	pub := &secKey.PublicKey
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "k1", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func claims(edit ...func(gjwt.MapClaims)) gjwt.MapClaims {
	c := gjwt.MapClaims{"iss": "https://idp.test/", "aud": "portico", "sub": "alice",
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "orders:read", "roles": []any{"admin"}}
	for _, e := range edit {
		e(c)
	}
	return c
}

func signToken(t testing.TB, m gjwt.SigningMethod, key any, kid string, c gjwt.MapClaims) string {
	t.Helper()
	tok := gjwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unsigned(alg string, c gjwt.MapClaims) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "kid": "k1"})
	p, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// signRaw signs an exactly given header and payload with secKey.
func signRaw(t testing.TB, header, payload string) string {
	t.Helper()
	ss := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := gjwt.SigningMethodRS256.Sign(ss, secKey)
	if err != nil {
		t.Fatal(err)
	}
	return ss + "." + base64.RawURLEncoding.EncodeToString(sig)
}

const secAPIKey = "sec-api-key-0123456789"

func securityConfig(backendURL, jwksURL string) string {
	sum := sha256.Sum256([]byte(secAPIKey))
	return `
services:
` + serviceYAML("be", backendURL) + `
auth:
  consumers:
    - id: svc-a
      roles: [admin]
      api_keys: [{sha256: ` + hex.EncodeToString(sum[:]) + `}]
  jwt_issuers:
    - name: idp
      issuer: https://idp.test/
      audiences: [portico]
      algorithms: [RS256]
      jwks_url: ` + jwksURL + `
      jwks_refresh_cooldown: 1m
routes:
  - name: public
    match: {path: "/public/{rest...}"}
    service: be
  - name: admin
    match: {path: "/admin/{rest...}"}
    service: be
    auth: {jwt: {}, bearer_query: access_token}
    authorize: {roles: {any_of: [admin]}}
  - name: orders-create
    match: {path: "/orders/{id}", methods: [POST]}
    service: be
    method_override: true
  - name: orders-delete
    match: {path: "/orders/{id}", methods: [DELETE]}
    service: be
    method_override: true
    auth: {jwt: {}}
    authorize: {scopes: {all_of: [orders:delete]}}
  - name: things
    match: {path: "/things", methods: [POST]}
    service: be
  - name: keys
    match: {path: "/keys"}
    service: be
    auth: {api_key: {header: X-Api-Key, query: api_key}}
  - name: maybe
    match: {path: "/maybe"}
    service: be
    auth: {jwt: {}, optional: true}
`
}

// rawRequest sends exactly req (a full HTTP/1.1 request) and returns the
// status code.
func rawRequest(t testing.TB, addr, req string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", req[:min(len(req), 60)], err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSecurityAttacks runs the attack table against a real gateway: every
// request must be refused and the backend must never see it.
func TestSecurityAttacks(t *testing.T) {
	t.Parallel()
	securityKeys()
	be := newRecordingBackend(t)
	jwks, jwksHits := jwksFor(t)
	g := startGateway(t, securityConfig(be.URL, jwks.URL))
	addr := g.Addr("public")
	good := signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims())
	pubDER, _ := x509.MarshalPKIXPublicKey(&secKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	payload := `{"iss":"https://idp.test/","aud":"portico","sub":"alice","roles":["admin"],"exp":` + fmt.Sprint(time.Now().Add(time.Hour).Unix()) + `}`
	bearer := func(tok string) string {
		return "GET /admin/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\nConnection: close\r\n\r\n"
	}
	tests := []struct {
		name string
		req  string
		want int
	}{
		{"alg none", bearer(unsigned("none", claims())), 401},
		{"alg None", bearer(unsigned("None", claims())), 401},
		{"alg NONE", bearer(unsigned("NONE", claims())), 401},
		{"RS256 re-signed with HS256 using the public key", bearer(signToken(t, gjwt.SigningMethodHS256, pubPEM, "k1", claims())), 401},
		{"expired", bearer(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))), 401},
		{"not yet valid", bearer(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }))), 401},
		{"missing exp", bearer(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { delete(c, "exp") }))), 401},
		{"wrong iss", bearer(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { c["iss"] = "https://evil.test/" }))), 401},
		{"wrong aud", bearer(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { c["aud"] = "billing" }))), 401},
		{"bad signature, valid claims", bearer(signToken(t, gjwt.SigningMethodRS256, otherKey, "k1", claims())), 401},
		{"100000 dots", bearer(strings.Repeat(".", 100000)), http.StatusRequestHeaderFieldsTooLarge},
		{"1 MB segment", bearer("eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 1<<20) + ".c2ln"), http.StatusRequestHeaderFieldsTooLarge},
		{"token over the length limit", bearer("eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 9000) + ".c2ln"), 401},
		{"duplicate JSON keys", bearer(signRaw(t, `{"alg":"RS256","kid":"k1"}`, strings.Replace(payload, `"sub":"alice"`, `"sub":"alice","sub":"root"`, 1))), 401},
		{"two Authorization headers", "GET /admin/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + good + "\r\nAuthorization: Bearer " + good + "\r\nConnection: close\r\n\r\n", 400},
		{"token in header and query", "GET /admin/x?access_token=" + good + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + good + "\r\nConnection: close\r\n\r\n", 400},
		{"wrong role", bearer(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { c["roles"] = []any{"viewer"} }))), 403},
		{"API key in header and query", "GET /keys?api_key=" + secAPIKey + " HTTP/1.1\r\nHost: gw\r\nX-Api-Key: " + secAPIKey + "\r\nConnection: close\r\n\r\n", 400},
		{"spoofed X-Consumer-Id without credentials", "GET /admin/x HTTP/1.1\r\nHost: gw\r\nX-Consumer-Id: admin\r\nConnection: close\r\n\r\n", 401},
		{"method override against a protected DELETE", "POST /orders/1 HTTP/1.1\r\nHost: gw\r\nX-HTTP-Method-Override: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 401},
		{"method override, token without the scope", "POST /orders/1 HTTP/1.1\r\nHost: gw\r\nX-HTTP-Method: delete\r\nAuthorization: Bearer " + good + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 403},
		{"conflicting method overrides", "POST /orders/1 HTTP/1.1\r\nHost: gw\r\nX-HTTP-Method-Override: PUT\r\nX_HTTP_Method: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 400},
		{"path /public/../admin", "GET /public/../admin/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 401},
		{"path %2e%2e", "GET /public/%2e%2e/admin/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 400},
		{"path //admin", "GET //admin/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 401},
		{"path ;params", "GET /admin;jsessionid=1/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 400},
		{"path /public/..;/admin", "GET /public/..;/admin/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 400},
		{"path %2F", "GET /public%2F..%2Fadmin/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := be.hits.Load()
			code := rawRequest(t, addr, tc.req)
			if code != tc.want {
				t.Errorf("status %d, want %d", code, tc.want)
			}
			if n := be.hits.Load() - before; n != 0 {
				t.Errorf("the backend saw the request (%d hits)", n)
			}
		})
	}

	// Control: the good token passes, so the refusals above are meaningful.
	if code := rawRequest(t, addr, bearer(good)); code != 200 {
		t.Fatalf("the good token got %d", code)
	}
	if n := jwksHits.Load(); n > 2 {
		t.Errorf("the key set was fetched %d times", n)
	}
}

// TestUnknownKIDFloodThroughGateway checks the JWKS refresh rate limit
// through the gateway: many tokens with random key ids cost at most one
// extra fetch.
func TestUnknownKIDFloodThroughGateway(t *testing.T) {
	t.Parallel()
	securityKeys()
	be := newRecordingBackend(t)
	jwks, hits := jwksFor(t)
	g := startGateway(t, securityConfig(be.URL, jwks.URL))
	c := httpClient()
	send := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, g.base+"/admin/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims())); code != 200 {
		t.Fatalf("good token: %d", code)
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if send(signToken(t, gjwt.SigningMethodRS256, otherKey, fmt.Sprintf("kid-%d-%d", w, i), claims())) != 401 {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 0 || be.hits.Load() != 1 {
		t.Fatalf("%d unknown-kid tokens were not refused; backend hits %d", accepted.Load(), be.hits.Load())
	}
	if n := hits.Load(); n > 2 {
		t.Fatalf("%d JWKS fetches for 400 unknown kids; want at most 2", n)
	}
}

// TestIdentityHeaders checks that client copies of the gateway-owned
// headers never reach the backend, whatever the route, the credential or
// the Connection header says.
func TestIdentityHeaders(t *testing.T) {
	t.Parallel()
	securityKeys()
	be := newRecordingBackend(t)
	jwks, _ := jwksFor(t)
	g := startGateway(t, securityConfig(be.URL, jwks.URL))
	addr := g.Addr("public")
	good := signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims())
	spoof := "X-Consumer-Id: root\r\nX-Consumer-Scopes: everything\r\nX-Consumer-Roles: admin\r\nX_Consumer_Id: root\r\nx-consumer-claim-tenant: evil\r\nX-HTTP-Method-Override: DELETE\r\n"
	tests := []struct {
		name, req string
		id        string // expected X-Consumer-Id upstream, "" for none
	}{
		{"anonymous on a route without auth", "GET /public/x HTTP/1.1\r\nHost: gw\r\n" + spoof + "Connection: close\r\n\r\n", ""},
		{"anonymous on an optional route", "GET /maybe HTTP/1.1\r\nHost: gw\r\n" + spoof + "Connection: close\r\n\r\n", ""},
		{"authenticated", "GET /admin/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + good + "\r\n" + spoof + "Connection: close\r\n\r\n", "alice"},
		{"Connection names the identity headers", "GET /admin/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + good + "\r\n" + spoof + "Connection: close, X-Consumer-Id, X-Consumer-Roles, X-Consumer-Scopes\r\n\r\n", "alice"},
		{"API key consumer", "GET /keys HTTP/1.1\r\nHost: gw\r\nX-Api-Key: " + secAPIKey + "\r\n" + spoof + "Connection: close\r\n\r\n", "svc-a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code := rawRequest(t, addr, tc.req); code != 200 {
				t.Fatalf("status %d", code)
			}
			h := be.lastRequest().Header
			if got := h.Get("X-Consumer-Id"); got != tc.id || len(h.Values("X-Consumer-Id")) > 1 {
				t.Errorf("X-Consumer-Id upstream = %q, want %q", h.Values("X-Consumer-Id"), tc.id)
			}
			for name, vals := range h {
				lower := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
				if strings.Contains(strings.Join(vals, ","), "root") || strings.Contains(strings.Join(vals, ","), "evil") || strings.Contains(strings.Join(vals, ","), "everything") {
					t.Errorf("spoofed header reached the backend: %s: %q", name, vals)
				}
				if lower == "x-http-method-override" {
					t.Errorf("method override header reached a route that does not honour it: %s", name)
				}
				if name == "Authorization" || name == "X-Api-Key" {
					t.Errorf("the credential reached the backend in %s", name)
				}
			}
			if tc.id == "alice" && (h.Get("X-Consumer-Roles") != "admin" || h.Get("X-Consumer-Auth-Method") != "jwt" || h.Get("X-Consumer-Issuer") != "idp") {
				t.Errorf("identity headers: %v", h)
			}
		})
	}
}

// TestMethodOverride checks that an honoured override is authorized as the
// effective method and forwarded as it.
func TestMethodOverride(t *testing.T) {
	t.Parallel()
	securityKeys()
	be := newRecordingBackend(t)
	jwks, _ := jwksFor(t)
	g := startGateway(t, securityConfig(be.URL, jwks.URL))
	addr := g.Addr("public")
	del := signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(c gjwt.MapClaims) { c["scope"] = "orders:delete" }))
	code := rawRequest(t, addr, "POST /orders/7 HTTP/1.1\r\nHost: gw\r\nX-HTTP-Method-Override: DELETE\r\nAuthorization: Bearer "+del+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if r := be.lastRequest(); r.Method != http.MethodDelete || r.URL.Path != "/orders/7" {
		t.Fatalf("backend saw %s %s, want DELETE /orders/7", r.Method, r.URL.Path)
	}
	// A route without method_override: the header is removed, the method kept.
	if code := rawRequest(t, addr, "POST /things HTTP/1.1\r\nHost: gw\r\nX-HTTP-Method-Override: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if r := be.lastRequest(); r.Method != http.MethodPost || r.Header.Get("X-Http-Method-Override") != "" {
		t.Fatalf("backend saw %s with override %q", r.Method, r.Header.Get("X-Http-Method-Override"))
	}
}

// TestAPIKeyRevokedByReload checks that a key removed from the
// configuration stops working as soon as the reload is acknowledged, and
// that keys in the query are redacted in the access log.
func TestAPIKeyRevokedByReload(t *testing.T) {
	t.Parallel()
	securityKeys()
	be := newRecordingBackend(t)
	jwks, _ := jwksFor(t)
	cfg := securityConfig(be.URL, jwks.URL)
	g := startGateway(t, cfg)
	c := httpClient()
	resp, _ := get(t, c, g.base+"/keys?api_key="+secAPIKey+"&x=1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if q := be.lastRequest().URL.RawQuery; q != "x=1" {
		t.Errorf("upstream query %q, want the key removed", q)
	}
	g.rewrite(t, strings.Replace(cfg, "api_keys: [{sha256:", "api_keys_removed: [{sha256:", 1))
	if _, err := g.Reload(); err == nil {
		t.Fatal("a configuration with an unknown field was applied")
	}
	sum := sha256.Sum256([]byte("another-key-0123456789"))
	g.rewrite(t, strings.Replace(cfg, "[{sha256: "+hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte(secAPIKey)); return s[:] }()), "[{sha256: "+hex.EncodeToString(sum[:]), 1))
	if _, err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, g.base+"/keys?api_key="+secAPIKey); resp.StatusCode != 401 {
		t.Fatalf("a revoked key got %d", resp.StatusCode)
	}
	waitFor(t, 2*time.Second, "access log lines", func() bool { return len(g.access.lines()) >= 2 })
	if log := g.access.String(); strings.Contains(log, secAPIKey) || !strings.Contains(log, "api_key=REDACTED") {
		t.Fatalf("the access log shows the key or does not redact it:\n%s", log)
	}
}

// TestAdminConfigHidesSecrets pins down the bug where /admin/config showed
// secrets written literally in the file: the Redis password, bcrypt hashes
// and API key digests.
func TestAdminConfigHidesSecrets(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	const bcryptHash = "$2a$10$ajHhcmTk.9S0js1lsVAhwe1fEI9jmDyY5ufvbllVoyAwy2y1Ctx7i"
	sum := sha256.Sum256([]byte(secAPIKey))
	digest := hex.EncodeToString(sum[:])
	g := startGateway(t, `rate_limits:
  redis:
    address: "127.0.0.1:1"
    password: "hunter2-redis-password"
services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
auth:
  consumers:
    - id: a
      api_keys: [{sha256: `+digest+`}]
      basic: {username: bob, bcrypt: "`+bcryptHash+`"}
routes:
  - name: r
    match: {path: /r}
    service: be
`)
	resp, body := get(t, httpClient(), g.admin+"/admin/config")
	if resp.StatusCode != 200 || !contains(body, `"bob"`) || !contains(body, config.RedactedValue) {
		t.Fatalf("/admin/config: %d %s", resp.StatusCode, body)
	}
	for _, secret := range []string{"hunter2-redis-password", bcryptHash, digest} {
		if contains(body, secret) {
			t.Errorf("/admin/config shows %q", secret)
		}
	}
}

// TestIPLimitThrottlesBasicAuthFlood: a limit keyed by client IP runs
// before authentication, so a flood of wrong basic-auth passwords is
// throttled with 429 and bcrypt runs only for the attempts the limit let
// through. (Before, rate_limit ran after auth: every attempt cost a bcrypt
// comparison and got 401.)
func TestIPLimitThrottlesBasicAuthFlood(t *testing.T) {
	t.Parallel()
	be := newCountingBackend(t)
	g := startGateway(t, `services:
  - name: be
    endpoints: [{url: "`+be.URL+`"}]
auth:
  consumers:
    - id: a
      basic: {username: bob, bcrypt: "$2a$04$7AYD4ANFXcPbq.r0w2Qz3.VH.lAHhD5k8yKzRQ5roU2W7VI/fy1mO"}
routes:
  - name: internal
    match: {path: /internal}
    service: be
    auth: {basic: {}}
    rate_limit:
      limits:
        - {name: per-ip, key: [client_ip], rate: 5, per: 1h}
`)
	before := g.auth.BasicComparisons()
	c := httpClient()
	codes := map[int]int{}
	for i := range 30 {
		req, _ := http.NewRequest(http.MethodGet, g.base+"/internal", nil)
		req.SetBasicAuth("bob", fmt.Sprintf("guess-%d", i))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[401] != 5 || codes[429] != 25 {
		t.Errorf("30 wrong passwords under a client-IP limit of 5: %v, want 5 × 401 and 25 × 429", codes)
	}
	if n := g.auth.BasicComparisons() - before; n != 5 {
		t.Errorf("bcrypt ran %d times, want 5: throttled attempts must not be checked", n)
	}
	if be.hits.Load() != 0 {
		t.Error("the backend saw a refused request")
	}
}

// TestAuthorizeConsumersNameTheIssuer pins down the bug where
// authorize.consumers compared ids alone, so a token from any issuer whose
// subject was "svc-a" passed "consumers: [svc-a]", which names the
// configured consumer svc-a.
func TestAuthorizeConsumersNameTheIssuer(t *testing.T) {
	t.Parallel()
	securityKeys()
	be := newRecordingBackend(t)
	jwks, _ := jwksFor(t)
	g := startGateway(t, securityConfig(be.URL, jwks.URL)+`  - name: only-svc-a
    match: {path: /only-svc-a}
    service: be
    auth: {jwt: {}, api_key: {}}
    authorize: {consumers: [svc-a]}
  - name: only-idp-svc-a
    match: {path: /only-idp-svc-a}
    service: be
    auth: {jwt: {}, api_key: {}}
    authorize: {consumers: ["idp:svc-a"]}
`)
	token := signToken(t, gjwt.SigningMethodRS256, secKey, "k1", claims(func(m gjwt.MapClaims) { m["sub"] = "svc-a" }))
	c := httpClient()
	do := func(path string, bearer bool) int {
		req, _ := http.NewRequest(http.MethodGet, g.base+path, nil)
		if bearer {
			req.Header.Set("Authorization", "Bearer "+token)
		} else {
			req.Header.Set("X-Api-Key", secAPIKey)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path   string
		bearer bool
		want   int
	}{
		{"/only-svc-a", false, 200},
		{"/only-svc-a", true, 403},
		{"/only-idp-svc-a", true, 200},
		{"/only-idp-svc-a", false, 403},
	} {
		if got := do(tc.path, tc.bearer); got != tc.want {
			t.Errorf("%s with a JWT=%v: %d, want %d", tc.path, tc.bearer, got, tc.want)
		}
	}
}
