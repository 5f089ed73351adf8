package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
)

const (
	aliceKey = "alice-key-0123456789"
	bobKey   = "bob-key-0123456789ab"
	// bcrypt of "s3cret-pass" at cost 4 (fast for tests).
	bobBcrypt = "$2a$04$7AYD4ANFXcPbq.r0w2Qz3.VH.lAHhD5k8yKzRQ5roU2W7VI/fy1mO"
)

func digest(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

func testAuthConfig() *config.Auth {
	return &config.Auth{Consumers: []config.Consumer{
		{ID: "alice", Scopes: []string{"orders:read"}, Claims: map[string]string{"tenant": "acme"}, APIKeys: []config.APIKey{{SHA256: digest(aliceKey)}}},
		{ID: "bob", Roles: []string{"ops"}, APIKeys: []config.APIKey{{SHA256: digest(bobKey)}}, Basic: &config.BasicCredential{Username: "bob", Bcrypt: bobBcrypt}},
	}}
}

// upstream records what reached it.
type upstream struct {
	hits     atomic.Int64
	consumer *exchange.Consumer
	req      *http.Request
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	u.consumer = exchange.From(r.Context()).Consumer
	u.req = r
	w.WriteHeader(http.StatusNoContent)
}

func newHandler(t testing.TB, reg *Registry, cfg *config.Auth, ra *config.RouteAuth) (http.Handler, *upstream) {
	t.Helper()
	p := reg.Begin(cfg)
	pol, err := Compile(p, ra)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	up := &upstream{}
	return New(up, pol), up
}

type result struct {
	code int
	x    *exchange.Exchange
	rec  *httptest.ResponseRecorder
}

func do(h http.Handler, r *http.Request) result {
	x := &exchange.Exchange{ID: "req-1"}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.WithContext(exchange.NewContext(r.Context(), x)))
	return result{rec.Code, x, rec}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	h, up := newHandler(t, NewRegistry(nil), testAuthConfig(), &config.RouteAuth{APIKey: &config.RouteAPIKey{Header: "X-Api-Key", Query: "api_key"}})
	req := func(hdr map[string][]string, target string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for k, v := range hdr {
			r.Header[k] = v
		}
		return r
	}
	tests := []struct {
		name   string
		hdr    map[string][]string
		target string
		code   int
		id     string
	}{
		{"header", map[string][]string{"X-Api-Key": {aliceKey}}, "/", 204, "alice"},
		{"query", nil, "/?a=1&api_key=" + bobKey + "&b=2", 204, "bob"},
		{"encoded query name", nil, "/?api%5Fkey=" + bobKey, 204, "bob"},
		{"missing", nil, "/", 401, ""},
		{"unknown key", map[string][]string{"X-Api-Key": {"nope-0123456789abcdef"}}, "/", 401, ""},
		{"empty key", map[string][]string{"X-Api-Key": {""}}, "/", 401, ""},
		{"two headers", map[string][]string{"X-Api-Key": {aliceKey, bobKey}}, "/", 400, ""},
		{"header and query", map[string][]string{"X-Api-Key": {aliceKey}}, "/?api_key=" + aliceKey, 400, ""},
		{"query twice", nil, "/?api_key=" + aliceKey + "&api_key=" + bobKey, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			res := do(h, req(tc.hdr, tc.target))
			if res.code != tc.code {
				t.Fatalf("status %d, want %d: %s", res.code, tc.code, res.rec.Body)
			}
			if tc.code != 204 {
				if up.hits.Load() != before {
					t.Fatal("a refused request reached the upstream")
				}
				if strings.Contains(res.x.LogQuery, "key-0123") || strings.Contains(tc.target, "key-0123") && res.x.LogQuery == "" {
					t.Fatalf("LogQuery of a refused request = %q", res.x.LogQuery)
				}
				if strings.Contains(res.rec.Body.String(), "key-0123") {
					t.Fatalf("the answer echoes the credential: %s", res.rec.Body)
				}
				if tc.code == 401 && !strings.Contains(res.rec.Header().Get("Www-Authenticate"), `ApiKey realm="portico"`) {
					t.Errorf("WWW-Authenticate = %q", res.rec.Header().Get("Www-Authenticate"))
				}
				return
			}
			if res.x.Consumer == nil || res.x.Consumer.ID != tc.id || res.x.Consumer.Method != "api_key" {
				t.Fatalf("consumer %+v, want %s", res.x.Consumer, tc.id)
			}
			if up.req.Header.Get("X-Api-Key") != "" || strings.Contains(up.req.URL.RawQuery, "key-0123") {
				t.Errorf("the credential was forwarded: %v %q", up.req.Header, up.req.URL.RawQuery)
			}
			if strings.Contains(tc.target, "?") && (res.x.LogQuery == "" || strings.Contains(res.x.LogQuery, "key-0123")) {
				t.Errorf("LogQuery = %q, want the key redacted", res.x.LogQuery)
			}
		})
	}
}

func TestOptionalAndForward(t *testing.T) {
	t.Parallel()
	h, up := newHandler(t, NewRegistry(nil), testAuthConfig(), &config.RouteAuth{APIKey: &config.RouteAPIKey{}, Optional: true, ForwardCredentials: true})
	if res := do(h, httptest.NewRequest(http.MethodGet, "/", nil)); res.code != 204 || res.x.Consumer != nil {
		t.Fatalf("anonymous on an optional route: %d %+v", res.code, res.x.Consumer)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Api-Key", "wrong-key-0123456789")
	if res := do(h, r); res.code != 401 {
		t.Fatalf("an invalid key on an optional route: %d", res.code)
	}
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Api-Key", aliceKey)
	if res := do(h, r); res.code != 204 || up.req.Header.Get("X-Api-Key") != aliceKey {
		t.Fatalf("forward_credentials: %d, upstream key %q", res.code, up.req.Header.Get("X-Api-Key"))
	}
}

func TestBasic(t *testing.T) {
	t.Parallel()
	h, up := newHandler(t, NewRegistry(nil), testAuthConfig(), &config.RouteAuth{Basic: &config.RouteBasic{}, Realm: "internal"})
	for _, tc := range []struct {
		user, pass string
		code       int
	}{{"bob", "s3cret-pass", 204}, {"bob", "s3cret-pass", 204}, {"bob", "wrong", 401}, {"nobody", "s3cret-pass", 401}} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(tc.user, tc.pass)
		res := do(h, r)
		if res.code != tc.code {
			t.Fatalf("%s/%s: status %d, want %d", tc.user, tc.pass, res.code, tc.code)
		}
		if tc.code == 401 && res.rec.Header().Get("Www-Authenticate") != `Basic realm="internal", charset="UTF-8"` {
			t.Errorf("challenge %q", res.rec.Header().Get("Www-Authenticate"))
		}
		if tc.code == 204 && (res.x.Consumer.ID != "bob" || up.req.Header.Get("Authorization") != "") {
			t.Errorf("consumer %+v, upstream Authorization %q", res.x.Consumer, up.req.Header.Get("Authorization"))
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["Authorization"] = []string{"Basic Ym9iOnMzY3JldC1wYXNz", "Basic Ym9iOnMzY3JldC1wYXNz"}
	if res := do(h, r); res.code != 400 {
		t.Fatalf("two Authorization headers: %d", res.code)
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var down atomic.Bool
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		user, pass, _ := r.BasicAuth()
		if user != "portico" || pass != "secret" || r.PostFormValue("token_type_hint") != "access_token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ans := map[string]any{"active": false}
		if r.PostFormValue("token") == "good-opaque-token" {
			ans = map[string]any{"active": true, "sub": "carol", "scope": "a b", "aud": "shop", "email": "c@example.com"}
		}
		_ = json.NewEncoder(w).Encode(ans)
	}))
	defer idp.Close()
	cfg := &config.Auth{Introspection: []config.IntrospectionProvider{{Name: "idp", URL: idp.URL, ClientID: "portico", ClientSecret: "secret", Audiences: []string{"shop"}, ForwardClaims: []string{"email"}}}}
	h, _ := newHandler(t, NewRegistry(nil), cfg, &config.RouteAuth{Introspection: &config.RouteIntrospection{}, BearerQuery: "access_token"})
	bearer := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	for range 3 {
		res := do(h, bearer("good-opaque-token"))
		if res.code != 204 || res.x.Consumer.ID != "carol" || res.x.Consumer.Forward[0].Value != "c@example.com" {
			t.Fatalf("active token: %d %+v", res.code, res.x.Consumer)
		}
	}
	if res := do(h, bearer("bad-token")); res.code != 401 || !strings.Contains(res.rec.Header().Get("Www-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("inactive token: %d %q", res.code, res.rec.Header().Get("Www-Authenticate"))
	}
	do(h, bearer("bad-token"))
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d introspection calls for two distinct tokens asked five times; want 2 (answers cached)", n)
	}
	r := bearer("good-opaque-token")
	r.URL.RawQuery = "access_token=good-opaque-token"
	if res := do(h, r); res.code != 400 || !strings.Contains(res.rec.Header().Get("Www-Authenticate"), `error="invalid_request"`) {
		t.Fatalf("token in header and query: %d", res.code)
	}
	down.Store(true)
	if res := do(h, bearer("unseen-token")); res.code != 503 {
		t.Fatalf("provider down: %d, want 503", res.code)
	}
	if res := do(h, bearer("good-opaque-token")); res.code != 204 {
		t.Fatalf("a cached answer with the provider down: %d", res.code)
	}
}

// TestRegistryKeepsCaches checks that a rebuild with the same issuer
// configuration reuses its verifier (and so its caches), and that a changed
// one gets a new verifier.
func TestRegistryKeepsCaches(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil)
	cfg := &config.Auth{JWTIssuers: []config.JWTIssuer{{Name: "corp", Issuer: "i", Audiences: []string{"a"}, Algorithms: []string{"HS256"}, HMACSecret: strings.Repeat("s", 32)}}}
	get := func(cfg *config.Auth) any {
		p := reg.Begin(cfg)
		v, err := p.Verifier("corp")
		if err != nil {
			t.Fatal(err)
		}
		p.Commit()
		return v
	}
	v1 := get(cfg)
	if v2 := get(cfg); v2 != v1 {
		t.Fatal("an unchanged issuer got a new verifier on rebuild")
	}
	changed := *cfg
	changed.JWTIssuers = []config.JWTIssuer{cfg.JWTIssuers[0]}
	changed.JWTIssuers[0].Audiences = []string{"b"}
	if v3 := get(&changed); v3 == v1 {
		t.Fatal("a changed issuer kept its verifier")
	}
}

func TestQueryHelpers(t *testing.T) {
	t.Parallel()
	if v, n := queryValue("a=1&api_key=x%20y&b", "api_key"); v != "x y" || n != 1 {
		t.Errorf("queryValue = %q, %d", v, n)
	}
	if got := removeQuery("a=1&api_key=x&b=2", "api_key"); got != "a=1&b=2" {
		t.Errorf("removeQuery = %q", got)
	}
	if got := redactQuery("api%5Fkey=secret&a=1", "api_key"); got != "api%5Fkey=REDACTED&a=1" {
		t.Errorf("redactQuery = %q", got)
	}
}

func FuzzQuery(f *testing.F) {
	f.Add("a=1&api_key=x&b=2")
	f.Add("api%5Fkey=1&api_key=2")
	f.Add("%zz=&&=")
	f.Fuzz(func(t *testing.T, q string) {
		_, n := queryValue(q, "api_key")
		if n == 0 {
			return
		}
		if _, left := queryValue(removeQuery(q, "api_key"), "api_key"); left != 0 {
			t.Fatalf("removeQuery(%q) left the parameter", q)
		}
		if _, left := queryValue(redactQuery(q, "api_key"), "api_key"); left != n {
			t.Fatalf("redactQuery(%q) changed the parameter count", q)
		}
	})
}

func BenchmarkAPIKeyLookup(b *testing.B) {
	cfg := testAuthConfig()
	for i := range 10000 {
		cfg.Consumers = append(cfg.Consumers, config.Consumer{ID: "c" + string(rune('a'+i%26)) + hex.EncodeToString([]byte{byte(i >> 8), byte(i)}),
			APIKeys: []config.APIKey{{SHA256: digest("key-" + hex.EncodeToString([]byte{byte(i >> 8), byte(i)}) + "-0123456789")}}})
	}
	s, err := NewStore(cfg.Consumers, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if s.APIKey(aliceKey) == nil {
			b.Fatal("not found")
		}
	}
}
