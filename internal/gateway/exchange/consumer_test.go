package exchange

import (
	"net/http"
	"testing"
)

func TestIdentityHeaderNames(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Consumer-Id": true, "x-consumer-roles": true, "X_Consumer_Id": true, "X-CONSUMER_CLAIM-A": true,
		"X-Consumer": false, "X-Consumerid": false, "X-Consumer\r-Id": false, "Y-Consumer-Id": false, "": false,
	} {
		if got := IsIdentityHeader(name); got != want {
			t.Errorf("IsIdentityHeader(%q) = %v", name, got)
		}
	}
	if !FoldedEqual("X_http_method", "X-HTTP-Method") || !FoldedEqual("X-Http-Method", "x_http_METHOD") || FoldedEqual("X-Http-Method", "X-Http-Methox") {
		t.Error("FoldedEqual")
	}
}

func TestConsumerHeaders(t *testing.T) {
	c := &Consumer{ID: "alice", Method: MethodJWT, Issuer: "idp", Scopes: []string{"a", "b"},
		Forward: []Claim{{"email", "a@example.com"}, {"bad", "line\nbreak"}, {"bad name", "x"}}}
	h := http.Header{}
	for _, f := range c.Headers() {
		h[f.Name] = f.Value
	}
	want := http.Header{
		"X-Consumer-Id": {"alice"}, "X-Consumer-Auth-Method": {"jwt"}, "X-Consumer-Issuer": {"idp"},
		"X-Consumer-Scopes": {"a b"}, "X-Consumer-Claim-Email": {"a@example.com"},
	}
	if len(h) != len(want) {
		t.Fatalf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if h.Get(k) != v[0] {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v[0])
		}
	}
	if v := c.Headers()[0].Value; cap(v) != 1 {
		t.Error("shared header value has spare capacity")
	}
}
