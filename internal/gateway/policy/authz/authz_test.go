package authz

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func TestAuthorize(t *testing.T) {
	t.Parallel()
	rules := Compile(&config.Authorize{
		Scopes: &config.Requirement{AllOf: []string{"orders:read"}, AnyOf: []string{"orders:write", "orders:admin"}},
		Roles:  &config.Requirement{AnyOf: []string{"admin", "ops"}},
		Claims: []config.ClaimRequirement{{Name: "tenant", AnyOf: []string{"acme", "globex"}}},
	}, []string{`Bearer realm="portico"`})
	ok := &exchange.Consumer{ID: "a", Scopes: []string{"orders:read", "orders:write"}, Roles: []string{"ops"}, Claims: map[string][]string{"tenant": {"x", "acme"}}}
	tests := []struct {
		name   string
		c      *exchange.Consumer
		code   int
		detail string
	}{
		{"allowed", ok, 204, ""},
		{"anonymous", nil, 401, "needs credentials"},
		{"missing all_of scope", &exchange.Consumer{ID: "a", Scopes: []string{"orders:write"}}, 403, `missing scope \"orders:read\"`},
		{"missing any_of scope", &exchange.Consumer{ID: "a", Scopes: []string{"orders:read"}}, 403, `one of \"orders:write\", \"orders:admin\" is required`},
		{"missing role", &exchange.Consumer{ID: "a", Scopes: ok.Scopes, Roles: []string{"viewer"}}, 403, "missing role: one of"},
		{"wrong claim", &exchange.Consumer{ID: "a", Scopes: ok.Scopes, Roles: ok.Roles, Claims: map[string][]string{"tenant": {"evil-secret-tenant"}}}, 403, `claim \"tenant\" must be one of`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reached := false
			h := New(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached = true; w.WriteHeader(204) }), rules)
			x := &exchange.Exchange{ID: "r", Consumer: tc.c}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil).WithContext(exchange.NewContext(t.Context(), x)))
			if rec.Code != tc.code || reached != (tc.code == 204) {
				t.Fatalf("status %d reached=%v, want %d", rec.Code, reached, tc.code)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tc.detail) {
				t.Errorf("body %s does not name %q", body, tc.detail)
			}
			if strings.Contains(body, "evil-secret-tenant") {
				t.Errorf("the answer echoes the consumer's claim: %s", body)
			}
			if tc.code == 401 && rec.Header().Get("Www-Authenticate") == "" {
				t.Error("401 without a challenge")
			}
		})
	}
	only := Compile(&config.Authorize{Consumers: []string{"bob"}}, nil)
	if d := only.Check(ok); d == "" {
		t.Error("a consumer not in the list was allowed")
	}
}

// TestConsumersNameTheIssuer pins down the bug where authorize.consumers
// compared the id alone, so any issuer's token with sub "svc-a" passed
// "consumers: [svc-a]". A plain id names a consumer of auth.consumers; a
// token subject is named with its issuer.
func TestConsumersNameTheIssuer(t *testing.T) {
	t.Parallel()
	rules := Compile(&config.Authorize{Consumers: []string{"svc-a", "idp:user:42"}}, nil)
	tests := []struct {
		c  *exchange.Consumer
		ok bool
	}{
		{&exchange.Consumer{ID: "svc-a", Method: exchange.MethodAPIKey}, true},
		{&exchange.Consumer{ID: "svc-a", Method: exchange.MethodJWT, Issuer: "idp"}, false},
		{&exchange.Consumer{ID: "svc-a", Method: exchange.MethodIntrospection, Issuer: "oauth"}, false},
		{&exchange.Consumer{ID: "user:42", Method: exchange.MethodJWT, Issuer: "idp"}, true},
		{&exchange.Consumer{ID: "user:42", Method: exchange.MethodJWT, Issuer: "other"}, false},
		{&exchange.Consumer{ID: "user:42", Method: exchange.MethodBasic}, false},
		{&exchange.Consumer{ID: "42", Method: exchange.MethodJWT, Issuer: "idp:user"}, false},
	}
	for _, tc := range tests {
		if got := rules.Check(tc.c) == ""; got != tc.ok {
			t.Errorf("consumer %q of issuer %q: allowed=%v, want %v", tc.c.ID, tc.c.Issuer, got, tc.ok)
		}
	}
	if ref := ParseConsumerRef("idp:a:b"); ref != (ConsumerRef{Issuer: "idp", ID: "a:b"}) {
		t.Errorf("ParseConsumerRef = %+v", ref)
	}
}

func BenchmarkCheck(b *testing.B) {
	rules := Compile(&config.Authorize{Scopes: &config.Requirement{AllOf: []string{"orders:read"}}, Roles: &config.Requirement{AnyOf: []string{"ops"}}}, nil)
	c := &exchange.Consumer{ID: "a", Scopes: []string{"x", "orders:read"}, Roles: []string{"ops"}}
	b.ReportAllocs()
	for b.Loop() {
		if rules.Check(c) != "" {
			b.Fatal("refused")
		}
	}
}

func FuzzParseConsumerRef(f *testing.F) {
	for _, s := range []string{"svc-a", "idp:svc-a", "idp:user:42", ":x", "x:", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref := ParseConsumerRef(s)
		if strings.Contains(ref.Issuer, ":") {
			t.Fatalf("issuer %q contains ':'", ref.Issuer)
		}
		joined := ref.ID
		if strings.Contains(s, ":") {
			joined = ref.Issuer + ":" + ref.ID
		}
		if joined != s {
			t.Fatalf("ParseConsumerRef(%q) = %+v, which does not join back", s, ref)
		}
		if !strings.Contains(s, ":") && ref.Issuer != "" {
			t.Fatalf("a plain id %q got issuer %q", s, ref.Issuer)
		}
	})
}
