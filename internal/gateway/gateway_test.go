package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/echo"
)

// backend is an echo server that counts the connections it accepted.
type backend struct {
	*httptest.Server
	conns atomic.Int64
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewUnstartedServer(echo.Handler(name))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func serviceYAML(name string, urls ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  - name: %s\n    endpoints:\n", name)
	for _, u := range urls {
		fmt.Fprintf(&sb, "      - url: %s\n", u)
	}
	return sb.String()
}

func TestProxyThroughGateway(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGateway(t, `
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: echo
    match: {path: "/api/{rest...}"}
    service: echo
    rewrite: {strip_prefix: /api}
    headers:
      request: {set: {X-Gateway: portico}}
      response: {set: {X-Route: echo}}
  - name: user
    match: {path: "/users/{id}", methods: [GET]}
    service: echo
    rewrite: {path: "/v1/users/{id}"}
  - name: hello
    match: {path: /hello}
    direct_response: {status: 200, body: "hi"}
`)
	c := &http.Client{Timeout: 5 * time.Second}

	resp, body := get(t, c, g.base+"/api/things?q=1&token=secret")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var rep echo.Reply
	decodeJSON(t, body, &rep)
	id := resp.Header.Get("X-Request-Id")
	if id == "" || rep.RequestID != id {
		t.Fatalf("request id: response %q, upstream %q", id, rep.RequestID)
	}
	if rep.Path != "/things" || rep.Query != "q=1&token=secret" {
		t.Fatalf("upstream path %q query %q", rep.Path, rep.Query)
	}
	if got := rep.Headers["X-Gateway"]; len(got) != 1 || got[0] != "portico" {
		t.Fatalf("request header rule: %v", got)
	}
	if resp.Header.Get("X-Route") != "echo" {
		t.Fatalf("response header rule missing: %v", resp.Header)
	}
	if got := rep.Headers["X-Forwarded-For"]; len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For %v", got)
	}

	for i := 0; i < 5; i++ {
		get(t, c, g.base+"/api/x")
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("backend accepted %d connections for 6 sequential requests; want 1 (keep-alive)", n)
	}

	_, body = get(t, c, g.base+"/users/42")
	decodeJSON(t, body, &rep)
	if rep.Path != "/v1/users/42" {
		t.Fatalf("template rewrite: %q", rep.Path)
	}

	resp, body = get(t, c, g.base+"/hello")
	if resp.StatusCode != 200 || body != "hi" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("direct response %d %q %v", resp.StatusCode, body, resp.Header)
	}

	// The access log has one JSON line per request with the request id and
	// the secret query value redacted.
	waitFor(t, 3*time.Second, "access log lines", func() bool { return len(g.access.lines()) >= 8 })
	first := g.access.lines()[0]
	var line map[string]any
	decodeJSON(t, first, &line)
	if line["request_id"] != id || line["route"] != "echo" || line["service"] != "echo" || line["status"] != float64(200) {
		t.Fatalf("access log line %s", first)
	}
	if strings.Contains(first, "secret") {
		t.Fatalf("access log leaks a redacted query value: %s", first)
	}
}

func TestGatewayErrors(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGateway(t, `
services:
`+serviceYAML("echo", be.URL)+serviceYAML("dead", "http://127.0.0.1:1")+`
routes:
  - name: get-only
    match: {path: /items, methods: [GET, POST]}
    service: echo
  - name: small
    match: {path: /upload}
    service: echo
    max_body_bytes: 10
  - name: dead
    match: {path: /dead}
    service: dead
`)
	c := &http.Client{Timeout: 5 * time.Second}
	tests := []struct {
		name, method, path, body string
		status                   int
		allow                    string
	}{
		{name: "no route", method: "GET", path: "/nope", status: 404},
		{name: "method not allowed", method: "DELETE", path: "/items", status: 405, allow: "GET, HEAD, POST"},
		{name: "encoded slash", method: "GET", path: "/items%2Fx", status: 400},
		{name: "dot dot escape", method: "GET", path: "/a/%2e%2e/items", status: 400},
		{name: "body too large", method: "POST", path: "/upload", body: strings.Repeat("x", 11), status: 413},
		{name: "upstream refused", method: "GET", path: "/dead", status: 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.base+tc.path, strings.NewReader(tc.body))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if tc.allow != "" && resp.Header.Get("Allow") != tc.allow {
				t.Fatalf("Allow %q, want %q", resp.Header.Get("Allow"), tc.allow)
			}
			var doc map[string]any
			decodeJSON(t, string(b), &doc)
			if doc["status"] != float64(tc.status) || doc["request_id"] != resp.Header.Get("X-Request-Id") {
				t.Fatalf("problem %v", doc)
			}
		})
	}
}

func TestRawTargetsAreRejected(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGateway(t, `
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: public
    match: {path: "/public/{rest...}"}
    service: echo
`)
	addr := strings.TrimPrefix(g.base, "http://")
	for _, target := range []string{
		"/public/../admin", "/public/%2e%2e/admin", "/public/..%2fadmin", "/public/%5c..%5cadmin",
		"/public/a;b", "/public/\xc0\xae", "http://evil.example/public/x", "/public/a#frag",
	} {
		t.Run(target, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n", target)
			b, _ := io.ReadAll(conn)
			status := strings.SplitN(string(b), "\r\n", 2)[0]
			if !strings.Contains(status, " 400 ") && !strings.Contains(status, " 404 ") {
				t.Fatalf("target %q answered %q", target, status)
			}
			if be.conns.Load() != 0 {
				t.Fatalf("target %q reached the backend", target)
			}
		})
	}
}

// TestConnectionCannotStripRuleHeaders: a client listing a header in
// Connection must not remove what a route's request rule sets.
func TestConnectionCannotStripRuleHeaders(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGateway(t, `
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: tenant
    match: {path: "/{rest...}"}
    service: echo
    headers:
      request: {set: {X-Tenant: fixed}, add: {X-Extra: one}}
`)
	req, _ := http.NewRequest(http.MethodGet, g.base+"/x", nil)
	req.Header.Set("Connection", "keep-alive, X-Tenant, x-extra")
	req.Header.Set("X-Tenant", "spoofed")
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rep echo.Reply
	decodeJSON(t, string(body), &rep)
	if got := rep.Headers["X-Tenant"]; len(got) != 1 || got[0] != "fixed" {
		t.Fatalf("X-Tenant upstream = %v, want [fixed]", got)
	}
	if got := rep.Headers["X-Extra"]; len(got) != 1 || got[0] != "one" {
		t.Fatalf("X-Extra upstream = %v, want [one]", got)
	}
}

// TestRejectedTargetsAreLogged: the access log keeps the raw path of a
// request refused for its target, escaped, so attack traffic is visible.
func TestRejectedTargetsAreLogged(t *testing.T) {
	t.Parallel()
	g := startGateway(t, `
routes:
  - name: hello
    match: {path: /hello}
    direct_response: {body: hi}
`)
	resp, _ := get(t, httpClient(), g.base+"/a/%2e%2e/admin?x=1")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	waitFor(t, 3*time.Second, "the access log line", func() bool { return len(g.access.lines()) == 1 })
	var line map[string]any
	decodeJSON(t, g.access.lines()[0], &line)
	if line["path"] != "/a/%2e%2e/admin?x=1" || line["status"] != float64(400) {
		t.Fatalf("access log line %v", line)
	}
}
