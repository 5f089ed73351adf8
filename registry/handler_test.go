package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	tokOrders  = "orders-secret-0123456789"
	tokBilling = "billing-secret-0123456789"
	tokAll     = "all-services-secret-0123"
	tokRead    = "read-secret-0123456789"
)

var testTokens = []Token{
	{Name: "orders-deployer", Token: tokOrders, Services: []string{"orders"}},
	{Name: "billing-deployer", Token: tokBilling, Services: []string{"billing-*"}},
	{Name: "platform", Token: tokAll, Services: []string{"*"}},
}

func newHandler(t testing.TB, store Store, opts HandlerOptions) http.Handler {
	t.Helper()
	h, err := NewHandler(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// call sends one request to h; body "" sends none. Headers alternate names
// and values.
func call(h http.Handler, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func bearerHeader(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// wantProblem checks that w is a problem+json answer with status, a detail
// containing detail, and a type ending in typ when typ is set.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, typ, detail string) problemDoc {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p problemDoc
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != status || !strings.Contains(p.Detail, detail) || typ != "" && !strings.HasSuffix(p.Type, "/"+typ) {
		t.Fatalf("problem %+v, want status %d, type …/%s, detail containing %q", p, status, typ, detail)
	}
	return p
}

func decodeInstance(t testing.TB, w *httptest.ResponseRecorder) Instance {
	t.Helper()
	var in Instance
	if err := json.Unmarshal(w.Body.Bytes(), &in); err != nil {
		t.Fatalf("instance body %q: %v", w.Body, err)
	}
	return in
}

const ordersPath = "/registry/v1/services/orders/instances/o-1"

func TestHandlerRegisterReplaceHeartbeatDeregister(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	h := newHandler(t, m, HandlerOptions{})

	w := call(h, "PUT", ordersPath, `{"address":"127.0.0.1:8080","version":"v1","metadata":{"team":"core"}}`,
		"Content-Type", "application/json; charset=utf-8")
	if w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	in := decodeInstance(t, w)
	if in.Service != "orders" || in.ID != "o-1" || in.Status != StatusPassing || in.TTL.D() != DefaultTTL ||
		in.Revision != 1 || in.Metadata["team"] != "core" || w.Header().Get(RevisionHeader) != "1" {
		t.Fatalf("registered: %+v, revision header %q", in, w.Header().Get(RevisionHeader))
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}

	// The same id again replaces the entry: 200. The TTL may be a number
	// of seconds; registry-kept fields are ignored whatever they hold.
	w = call(h, "PUT", ordersPath, `{"service":"orders","id":"o-1","address":"127.0.0.1:9090","ttl":30,
		"status":"critical","revision":99,"registered_at":"not a time","last_heartbeat":null}`)
	if w.Code != http.StatusOK {
		t.Fatalf("re-register: %d %s", w.Code, w.Body)
	}
	if in := decodeInstance(t, w); in.Address != "127.0.0.1:9090" || in.TTL.D() != 30*time.Second ||
		in.Status != StatusPassing || in.Revision != 2 || in.RegisteredAt.IsZero() {
		t.Fatalf("replaced: %+v", in)
	}

	w = call(h, "PUT", ordersPath, `{"address":"127.0.0.1:9090","ttl":"2m"}`)
	if in := decodeInstance(t, w); w.Code != 200 || in.TTL.D() != 2*time.Minute {
		t.Fatalf("ttl as a string: %d %+v", w.Code, in)
	}

	w = call(h, "PUT", ordersPath+"/heartbeat", "")
	if w.Code != http.StatusOK || w.Header().Get(RevisionHeader) != "3" {
		t.Fatalf("heartbeat: %d %s, revision %q", w.Code, w.Body, w.Header().Get(RevisionHeader))
	}
	if in := decodeInstance(t, w); in.Status != StatusPassing || in.Revision != 3 {
		t.Fatalf("heartbeat answer: %+v", in)
	}

	w = call(h, "DELETE", ordersPath, "")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 || w.Header().Get(RevisionHeader) != "4" {
		t.Fatalf("deregister: %d %q, revision %q", w.Code, w.Body, w.Header().Get(RevisionHeader))
	}
	wantProblem(t, call(h, "DELETE", ordersPath, ""), 404, "not-found", `instance "o-1" of service "orders" is not registered`)
	wantProblem(t, call(h, "PUT", ordersPath+"/heartbeat", ""), 404, "not-found", "register it again")
	wantProblem(t, call(h, "GET", ordersPath, ""), 404, "not-found", "not registered")
}

func TestHandlerReads(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	h := newHandler(t, m, HandlerOptions{})
	for _, in := range []Instance{testInstance("orders", "o-2"), testInstance("orders", "o-1"), testInstance("billing", "b-1")} {
		mustRegister(t, m, in, time.Minute)
	}

	w := call(h, "GET", "/registry/v1/services", "")
	var svcs struct {
		Revision int64            `json:"revision"`
		Services []ServiceSummary `json:"services"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &svcs); err != nil || w.Code != 200 {
		t.Fatalf("services: %d %s", w.Code, w.Body)
	}
	if svcs.Revision != 3 || len(svcs.Services) != 2 || svcs.Services[1].Name != "orders" || svcs.Services[1].Instances != 2 ||
		w.Header().Get(RevisionHeader) != "3" {
		t.Fatalf("services: %+v", svcs)
	}

	var list struct {
		Revision  int64      `json:"revision"`
		Instances []Instance `json:"instances"`
	}
	w = call(h, "GET", "/registry/v1/services/orders/instances", "")
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 {
		t.Fatalf("instances: %d %s", w.Code, w.Body)
	}
	if list.Revision != 3 || len(list.Instances) != 2 || list.Instances[0].ID != "o-1" || w.Header().Get(RevisionHeader) != "3" {
		t.Fatalf("instances: %+v", list)
	}

	w = call(h, "GET", "/registry/v1/services/nothing/instances", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"instances":[]`) {
		t.Fatalf("unknown service: %d %s; want 200 with an empty list", w.Code, w.Body)
	}

	w = call(h, "GET", ordersPath, "")
	if in := decodeInstance(t, w); w.Code != 200 || in.ID != "o-1" || w.Header().Get(RevisionHeader) != "3" {
		t.Fatalf("one instance: %d %s", w.Code, w.Body)
	}

	m2 := newMemory(t, MemoryOptions{})
	w = call(newHandler(t, m2, HandlerOptions{}), "GET", "/registry/v1/services", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"services":[]`) {
		t.Fatalf("empty registry: %d %s", w.Code, w.Body)
	}
}

func TestHandlerRegisterErrors(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	h := newHandler(t, m, HandlerOptions{MinTTL: 2 * time.Second, MaxTTL: time.Minute, DefaultTTL: 5 * time.Second})
	big := `{"address":"127.0.0.1:80","contract":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	cases := []struct {
		name, path, body string
		headers          []string
		status           int
		detail           string
	}{
		{"invalid JSON", ordersPath, `{"address":`, nil, 400, "body: truncated JSON"},
		{"syntax error", ordersPath, `{"address" "x"}`, nil, 400, "body: invalid JSON"},
		{"empty body", ordersPath, ``, nil, 400, "body: empty"},
		{"not an object", ordersPath, `[1]`, nil, 400, "body: want an Instance JSON object"},
		{"unknown field", ordersPath, `{"address":"127.0.0.1:80","colour":"red"}`, nil, 400, "colour: unknown field"},
		{"trailing value", ordersPath, `{"address":"127.0.0.1:80"} {}`, nil, 400, "more after it"},
		{"trailing garbage", ordersPath, `{"address":"127.0.0.1:80"}x`, nil, 400, "more after it"},
		{"wrong type", ordersPath, `{"address":"127.0.0.1:80","weight":"heavy"}`, nil, 400, "weight: want a JSON number"},
		{"bad ttl", ordersPath, `{"address":"127.0.0.1:80","ttl":"soon"}`, nil, 400, "ttl: want a duration"},
		{"ttl below min", ordersPath, `{"address":"127.0.0.1:80","ttl":"1s"}`, nil, 400, "ttl: 1s is outside [2s, 1m0s]"},
		{"ttl above max", ordersPath, `{"address":"127.0.0.1:80","ttl":3600}`, nil, 400, "ttl: 1h0m0s is outside [2s, 1m0s]"},
		{"negative ttl", ordersPath, `{"address":"127.0.0.1:80","ttl":"-5s"}`, nil, 400, "ttl: -5s is outside"},
		{"bad address", ordersPath, `{"address":"nowhere"}`, nil, 400, "address: must be host:port"},
		{"missing address", ordersPath, `{}`, nil, 400, "address: must not be empty"},
		{"bad port", ordersPath, `{"address":"127.0.0.1:0"}`, nil, 400, "address: port must be a number in 1–65535"},
		{"bad protocol", ordersPath, `{"address":"127.0.0.1:80","protocol":"ftp"}`, nil, 400, "protocol:"},
		{"service mismatch", ordersPath, `{"service":"billing","address":"127.0.0.1:80"}`, nil, 400, `service: "billing" in the body does not match "orders" in the path`},
		{"id mismatch", ordersPath, `{"id":"o-2","address":"127.0.0.1:80"}`, nil, 400, `id: "o-2" in the body does not match "o-1" in the path`},
		{"bad service in path", "/registry/v1/services/Orders/instances/o-1", `{"address":"127.0.0.1:80"}`, nil, 400, "service:"},
		{"bad id in path", "/registry/v1/services/orders/instances/o%201", `{"address":"127.0.0.1:80"}`, nil, 400, "id:"},
		{"encoded slash in id", "/registry/v1/services/orders/instances/o%2F1", `{"address":"127.0.0.1:80"}`, nil, 400, "id:"},
		{"text content type", ordersPath, `{"address":"127.0.0.1:80"}`, []string{"Content-Type", "text/plain"}, 415, "application/json"},
		{"bad content type", ordersPath, `{"address":"127.0.0.1:80"}`, []string{"Content-Type", ";;"}, 415, "application/json"},
		{"body over the cap", ordersPath, big, nil, 413, "65536 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			typ := ""
			if status == 400 {
				typ = "invalid"
			}
			wantProblem(t, call(h, "PUT", tc.path, tc.body, tc.headers...), status, typ, tc.detail)
		})
	}
	// A body over the cap without a Content-Length (chunked) is cut off
	// while it is read.
	r := httptest.NewRequest("PUT", ordersPath, io.MultiReader(strings.NewReader(big)))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	wantProblem(t, w, 413, "", "65536 bytes")
	if _, rev, _ := m.Instances(context.Background(), ""); rev != 0 {
		t.Fatalf("a refused registration was stored (revision %d)", rev)
	}
}

func TestHandlerRouting(t *testing.T) {
	t.Parallel()
	h := newHandler(t, newMemory(t, MemoryOptions{}), HandlerOptions{})
	for _, path := range []string{
		"/registry/", "/registry/v1", "/registry/v1/", "/registry/v2/services", "/registry/v1/services/",
		"/registry/v1/services/orders", "/registry/v1/services/orders/instances/o-1/heartbeat/x",
		"/registry/v1/services/orders/instances/o-1/beat",
	} {
		wantProblem(t, call(h, "GET", path, ""), 404, "", "no registry API endpoint")
	}
	cases := []struct{ method, path, allow string }{
		{"POST", "/registry/v1/services", "GET"},
		{"POST", ordersPath, "GET, PUT, DELETE"},
		{"GET", ordersPath + "/heartbeat", "PUT"},
		{"DELETE", "/registry/v1/watch", "GET"},
		{"HEAD", "/registry/v1/services/orders/instances", "GET"},
	}
	for _, tc := range cases {
		w := call(h, tc.method, tc.path, "")
		wantProblem(t, w, 405, "", "not allowed")
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

func TestHandlerAuth(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := newMemory(t, MemoryOptions{})
	h := newHandler(t, m, HandlerOptions{Tokens: testTokens, ReadToken: tokRead, Logger: logger})
	body := `{"address":"127.0.0.1:80"}`
	billing := "/registry/v1/services/billing-eu/instances/b-1"

	writes := []struct {
		name   string
		path   string
		auth   []string
		status int
		typ    string
	}{
		{"no token", ordersPath, nil, 401, "unauthorized"},
		{"not bearer", ordersPath, []string{"Authorization", "Basic " + tokOrders}, 401, "unauthorized"},
		{"unknown token", ordersPath, bearerHeader("guess-0123456789"), 401, "unauthorized"},
		{"read token cannot write", ordersPath, bearerHeader(tokRead), 401, "unauthorized"},
		{"token for another service", ordersPath, bearerHeader(tokBilling), 403, "forbidden"},
		{"exact name", ordersPath, bearerHeader(tokOrders), 201, ""},
		{"exact name only", "/registry/v1/services/orders-eu/instances/o-1", bearerHeader(tokOrders), 403, "forbidden"},
		{"prefix pattern", billing, bearerHeader(tokBilling), 201, ""},
		{"prefix needs its prefix", "/registry/v1/services/billing/instances/b-1", bearerHeader(tokBilling), 403, "forbidden"},
		{"star covers all", "/registry/v1/services/anything/instances/a-1", bearerHeader(tokAll), 201, ""},
		{"case-insensitive scheme", "/registry/v1/services/anything/instances/a-2", []string{"Authorization", "bearer " + tokAll}, 201, ""},
	}
	for _, tc := range writes {
		w := call(h, "PUT", tc.path, body, tc.auth...)
		if tc.status >= 400 {
			wantProblem(t, w, tc.status, tc.typ, "")
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") != `Bearer realm="portico-registry"` {
				t.Errorf("%s: WWW-Authenticate %q", tc.name, w.Header().Get("WWW-Authenticate"))
			}
		} else if w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
		}
	}
	// Heartbeat and deregister are writes too.
	wantProblem(t, call(h, "PUT", ordersPath+"/heartbeat", ""), 401, "unauthorized", "")
	wantProblem(t, call(h, "DELETE", ordersPath, "", bearerHeader(tokBilling)...), 403, "forbidden", "")
	if w := call(h, "PUT", ordersPath+"/heartbeat", "", bearerHeader(tokOrders)...); w.Code != 200 {
		t.Fatalf("heartbeat with the right token: %d %s", w.Code, w.Body)
	}

	// Reads need the read token or any registration token.
	for _, path := range []string{"/registry/v1/services", "/registry/v1/services/orders/instances", ordersPath, "/registry/v1/watch"} {
		wantProblem(t, call(h, "GET", path, ""), 401, "unauthorized", "read token")
		wantProblem(t, call(h, "GET", path, "", bearerHeader("guess-0123456789")...), 401, "unauthorized", "")
	}
	for _, tok := range []string{tokRead, tokBilling} {
		if w := call(h, "GET", ordersPath, "", bearerHeader(tok)...); w.Code != 200 {
			t.Fatalf("read with %s: %d %s", tok, w.Code, w.Body)
		}
	}
	if w := call(h, "DELETE", ordersPath, "", bearerHeader(tokAll)...); w.Code != 204 {
		t.Fatalf("deregister: %d %s", w.Code, w.Body)
	}

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, secret := range []string{tokOrders, tokBilling, tokAll, tokRead, "guess-0123456789"} {
		if strings.Contains(out, secret) {
			t.Fatalf("a token's secret is in the log:\n%s", out)
		}
	}
	for _, want := range []string{
		`level=WARN msg="registry: request refused"`, `reason="token does not cover the service" token=billing-deployer`,
		`reason="missing token"`, `reason="unknown token"`,
		`msg="registry: instance registered" service=orders id=o-1 address=127.0.0.1:80`, `token=orders-deployer`,
		`msg="registry: instance deregistered" service=orders id=o-1 token=platform`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHandlerOpenWhenNoTokens(t *testing.T) {
	t.Parallel()
	h := newHandler(t, newMemory(t, MemoryOptions{}), HandlerOptions{Tokens: testTokens})
	// Reads are open without a read token, and any Authorization is ignored.
	if w := call(h, "GET", "/registry/v1/services", "", bearerHeader("whatever")...); w.Code != 200 {
		t.Fatalf("open read: %d %s", w.Code, w.Body)
	}
	open := newHandler(t, newMemory(t, MemoryOptions{}), HandlerOptions{})
	if w := call(open, "PUT", ordersPath, `{"address":"127.0.0.1:80"}`); w.Code != 201 {
		t.Fatalf("open write: %d %s", w.Code, w.Body)
	}
}

func TestNewHandlerRefusesBadOptions(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	tok := func(name, secret string, services ...string) []Token {
		return []Token{{Name: name, Token: secret, Services: services}}
	}
	cases := []struct {
		name  string
		store Store
		opts  HandlerOptions
		want  string
	}{
		{"nil store", nil, HandlerOptions{}, "store is nil"},
		{"min above max", m, HandlerOptions{MinTTL: time.Minute, MaxTTL: time.Second, DefaultTTL: time.Second}, "min TTL"},
		{"default outside", m, HandlerOptions{DefaultTTL: time.Hour}, "default TTL 1h0m0s is outside"},
		{"negative", m, HandlerOptions{MinTTL: -time.Second}, "must not be negative"},
		{"negative keepalive", m, HandlerOptions{KeepaliveInterval: -1}, "keepalive"},
		{"token without name", m, HandlerOptions{Tokens: tok("", "s", "a")}, "tokens[0]: name must not be empty"},
		{"token without secret", m, HandlerOptions{Tokens: tok("a", "", "a")}, `tokens[0] ("a"): token must not be empty`},
		{"token without services", m, HandlerOptions{Tokens: tok("a", "s")}, "services must list"},
		{"star inside", m, HandlerOptions{Tokens: tok("a", "s", "bill*ing")}, "services[0]"},
		{"bad prefix", m, HandlerOptions{Tokens: tok("a", "s", "Bill*")}, `pattern "Bill*"`},
		{"duplicate name", m, HandlerOptions{Tokens: append(tok("a", "s1", "x"), tok("a", "s2", "y")...)}, "duplicate name"},
		{"duplicate secret", m, HandlerOptions{Tokens: append(tok("a", "s1", "x"), tok("b", "s1", "y")...)}, `same secret as token "a"`},
	}
	for _, tc := range cases {
		_, err := NewHandler(tc.store, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s1") {
			t.Errorf("%s: the error shows a secret: %v", tc.name, err)
		}
	}
}

// bareStore hides Memory's optional methods, so the handler takes the
// paths any Store supports.
type bareStore struct{ Store }

// failingStore answers every call with err.
type failingStore struct {
	Store
	err error
}

func (f failingStore) Register(context.Context, Instance, time.Duration) (Instance, error) {
	return Instance{}, f.err
}
func (f failingStore) Heartbeat(context.Context, string, string) (Instance, error) {
	return Instance{}, f.err
}
func (f failingStore) Deregister(context.Context, string, string) error { return f.err }
func (f failingStore) Services(context.Context) ([]ServiceSummary, error) {
	return nil, f.err
}
func (f failingStore) Instances(context.Context, string) ([]Instance, int64, error) {
	return nil, 0, f.err
}
func (f failingStore) Watch(context.Context, string, int64) (Watcher, error) { return nil, f.err }

func TestHandlerWithoutOptionalStoreMethods(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	h := newHandler(t, bareStore{m}, HandlerOptions{})
	body := `{"address":"127.0.0.1:80"}`
	if w := call(h, "PUT", ordersPath, body); w.Code != 201 || w.Header().Get(RevisionHeader) != "1" {
		t.Fatalf("first registration: %d %s", w.Code, w.Body)
	}
	if w := call(h, "PUT", ordersPath, body); w.Code != 200 {
		t.Fatalf("replacement: %d %s", w.Code, w.Body)
	}
	if w := call(h, "GET", ordersPath, ""); w.Code != 200 || decodeInstance(t, w).ID != "o-1" {
		t.Fatalf("one instance: %d %s", w.Code, w.Body)
	}
	wantProblem(t, call(h, "GET", "/registry/v1/services/orders/instances/o-2", ""), 404, "not-found", "")
	if w := call(h, "DELETE", ordersPath, ""); w.Code != 204 || w.Header().Get(RevisionHeader) != "3" {
		t.Fatalf("deregister: %d, revision %q", w.Code, w.Header().Get(RevisionHeader))
	}
}

func TestHandlerMapsStoreErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    error
		status int
		typ    string
	}{
		{ErrUnavailable, 503, "unavailable"},
		{ErrClosed, 503, "unavailable"},
		{context.DeadlineExceeded, 504, "timeout"},
		{errors.New("disk on fire"), 500, ""},
	}
	for _, tc := range cases {
		h := newHandler(t, failingStore{err: tc.err}, HandlerOptions{})
		for _, req := range [][2]string{
			{"PUT", ordersPath}, {"PUT", ordersPath + "/heartbeat"}, {"DELETE", ordersPath}, {"GET", ordersPath},
			{"GET", "/registry/v1/services"}, {"GET", "/registry/v1/services/orders/instances"}, {"GET", "/registry/v1/watch"},
		} {
			body := ""
			if req[0] == "PUT" && !strings.HasSuffix(req[1], "heartbeat") {
				body = `{"address":"127.0.0.1:80"}`
			}
			w := call(h, req[0], req[1], body)
			p := wantProblem(t, w, tc.status, tc.typ, "")
			if strings.Contains(p.Detail, "disk on fire") {
				t.Errorf("%s %s: an internal error leaked: %q", req[0], req[1], p.Detail)
			}
		}
	}
}

// streamEvent is one event read from a watch stream.
type streamEvent struct {
	id, event, data string
	comment         bool
}

// streamReader reads events and comments from a stream in a goroutine.
type streamReader struct {
	ch   chan streamEvent
	done chan error
}

func readStream(body io.Reader) *streamReader {
	s := &streamReader{ch: make(chan streamEvent, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(body)
		var ev streamEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				s.ch <- ev
				ev = streamEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = true
				ev.data = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
		s.done <- sc.Err()
		close(s.done)
	}()
	return s
}

// next returns the next event, skipping comments unless comments is set.
func (s *streamReader) next(t testing.TB, comments bool) streamEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-s.ch:
			if ev.comment && !comments {
				continue
			}
			return ev
		case err := <-s.done:
			t.Fatalf("the stream ended: %v", err)
		case <-timeout:
			t.Fatal("no event within 5s")
		}
	}
}

func openWatch(t testing.TB, ctx context.Context, url string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestHandlerWatchStreamsEvents(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	srv := httptest.NewServer(newHandler(t, m, HandlerOptions{KeepaliveInterval: time.Hour}))
	t.Cleanup(srv.Close)
	mustRegister(t, m, testInstance("orders", "o-0"), time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	resp := openWatch(t, ctx, srv.URL+"/registry/v1/watch?service=orders")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("X-Accel-Buffering") != "no" ||
		resp.Header.Get(RevisionHeader) != "1" {
		t.Fatalf("watch answer: %d %v", resp.StatusCode, resp.Header)
	}
	s := readStream(resp.Body)
	// From now on: the registration before the watch is not replayed.
	mustRegister(t, m, testInstance("billing", "b-1"), time.Minute)
	in := testInstance("orders", "o-1")
	in.Metadata = map[string]string{"line": `a "quoted" é`}
	mustRegister(t, m, in, time.Minute)
	ev := s.next(t, false)
	if ev.id != "3" || ev.event != "put" {
		t.Fatalf("event: %+v", ev)
	}
	var got Event
	if err := json.Unmarshal([]byte(ev.data), &got); err != nil {
		t.Fatalf("data %q: %v", ev.data, err)
	}
	if got.Type != EventPut || got.Revision != 3 || got.Instance.ID != "o-1" || got.Instance.Metadata["line"] != `a "quoted" é` {
		t.Fatalf("decoded event: %+v", got)
	}
	if err := m.Deregister(context.Background(), "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	if ev := s.next(t, false); ev.id != "4" || ev.event != "delete" {
		t.Fatalf("delete event: %+v", ev)
	}

	// Closing the store ends the stream.
	_ = m.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when the store closed")
	}
}

func TestHandlerWatchResumes(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{History: 4})
	srv := httptest.NewServer(newHandler(t, m, HandlerOptions{}))
	t.Cleanup(srv.Close)
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		mustRegister(t, m, testInstance("orders", id), time.Minute)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Last-Event-ID wins over the query.
	resp := openWatch(t, ctx, srv.URL+"/registry/v1/watch?revision=2", "Last-Event-ID", "1")
	s := readStream(resp.Body)
	for _, want := range []string{"2", "3"} {
		if ev := s.next(t, false); ev.id != want {
			t.Fatalf("resumed event id %s, want %s", ev.id, want)
		}
	}
	resp = openWatch(t, ctx, srv.URL+"/registry/v1/watch?revision=2")
	if ev := readStream(resp.Body).next(t, false); ev.id != "3" {
		t.Fatalf("event after revision 2: %+v", ev)
	}

	// Once the history moved past the revision: 410 before any event.
	for _, id := range []string{"o-4", "o-5", "o-6"} {
		mustRegister(t, m, testInstance("orders", id), time.Minute)
	}
	for _, hdr := range [][]string{nil, {"Last-Event-ID", "1"}} {
		url := srv.URL + "/registry/v1/watch?revision=1"
		if hdr != nil {
			url = srv.URL + "/registry/v1/watch"
		}
		resp := openWatch(t, ctx, url, hdr...)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusGone || resp.Header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(string(body), `/compacted"`) {
			t.Fatalf("compacted: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}

	h := newHandler(t, m, HandlerOptions{})
	for _, q := range []string{"revision=-1", "revision=x", "service=Bad"} {
		wantProblem(t, call(h, "GET", "/registry/v1/watch?"+q, ""), 400, "invalid", "")
	}
	wantProblem(t, call(h, "GET", "/registry/v1/watch", "", "Last-Event-ID", "abc"), 400, "invalid", "Last-Event-ID")
}

func TestHandlerWatchKeepalive(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	srv := httptest.NewServer(newHandler(t, m, HandlerOptions{KeepaliveInterval: 20 * time.Millisecond}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := readStream(openWatch(t, ctx, srv.URL+"/registry/v1/watch").Body)
	for range 2 {
		if ev := s.next(t, true); !ev.comment || ev.data != "keepalive" {
			t.Fatalf("want a keepalive comment, got %+v", ev)
		}
	}
	mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	if ev := s.next(t, false); ev.id != "1" {
		t.Fatalf("event after keepalives: %+v", ev)
	}
}

// TestHandlerWatchEndsWithClient checks that the handler returns when the
// client goes away.
func TestHandlerWatchEndsWithClient(t *testing.T) {
	t.Parallel()
	h := newHandler(t, newMemory(t, MemoryOptions{}), HandlerOptions{KeepaliveInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "GET", "/registry/v1/watch", nil)
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), r)
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch handler did not return after the client went away")
	}
}
