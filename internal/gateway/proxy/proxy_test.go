package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// echoBackend answers with what it received, as headers.
func echoBackend(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Got-Request-Uri", r.RequestURI)
		h.Set("Got-Host", r.Host)
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Request-Id", "Connection", "Upgrade", "X-Custom", "X-Real-Ip", "True-Client-Ip"} {
			if v, ok := r.Header[k]; ok {
				h["Got-"+k] = []string{strings.Join(v, " | ")}
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func TestHandlerValidatesTarget(t *testing.T) {
	t.Parallel()
	p := newTestProxy(t)
	if _, err := p.Handler(Target{}); err == nil {
		t.Error("nil pool accepted")
	}
	pool := newPool(t, TransportOptions{}, "http://127.0.0.1:1")
	if _, err := p.Handler(Target{Pool: pool, Timeout: -time.Second}); err == nil {
		t.Error("negative timeout accepted")
	}
}

func TestKeepAliveReuse(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)

	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	c := testClient(t)
	for range 20 {
		if _, body := get(t, c, g.URL+"/x", nil); body != "hello" {
			t.Fatalf("body %q", body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("backend saw %d connections for 20 sequential requests, want 1", n)
	}
}

func TestPathAndQuery(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	c := testClient(t)
	cases := []struct {
		name     string
		endpoint string
		rewrite  func(string, *exchange.Params) string
		target   string // request target sent by the client
		want     string // request target the endpoint receives
	}{
		{"plain", "", nil, "/a/b?x=1&y=2", "/a/b?x=1&y=2"},
		{"query kept verbatim", "", nil, "/q?b=two%20words&a=%2F&c=1;d=2&&e", "/q?b=two%20words&a=%2F&c=1;d=2&&e"},
		{"space re-encoded", "", nil, "/files/a%20b", "/files/a%20b"},
		{"utf-8 re-encoded", "", nil, "/caf%C3%A9", "/caf%C3%A9"},
		{"unreserved decoded", "", nil, "/%7Euser/%41", "/~user/A"},
		{"percent sign", "", nil, "/p/100%25", "/p/100%25"},
		{"question mark in path", "", nil, "/what%3F?x=1", "/what%3F?x=1"},
		{"sub-delims stay literal", "", nil, "/m;v=1/a+b@c", "/m;v=1/a+b@c"},
		{"endpoint base path", "/api", nil, "/users?id=7", "/api/users?id=7"},
		{"endpoint base path with slash", "/api/", nil, "/users", "/api/users"},
		{"route rewrite", "", func(p string, _ *exchange.Params) string { return strings.TrimPrefix(p, "/v1") }, "/v1/items/a%20b", "/items/a%20b"},
		{"empty query marker kept", "", nil, "/e?", "/e?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL+tc.endpoint), Rewrite: tc.rewrite}, nil)
			res, _ := get(t, c, g.URL+tc.target, nil)
			if got := res.Header.Get("Got-Request-Uri"); got != tc.want {
				t.Errorf("endpoint got %q, want %q", got, tc.want)
			}
			ex := g.lastExchange(t)
			if tc.rewrite != nil && ex.UpstreamPath == "" {
				t.Error("UpstreamPath not recorded")
			}
		})
	}
}

func TestHostPreserved(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/", nil)
	req.Host = "shop.example:8443"
	res, err := testClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Got-Host"); got != "shop.example:8443" {
		t.Fatalf("endpoint got Host %q", got)
	}
	if got := res.Header.Get("Got-X-Forwarded-Host"); got != "shop.example:8443" {
		t.Fatalf("X-Forwarded-Host %q", got)
	}
}

func TestExchangeRecorded(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	res, body := get(t, testClient(t), g.URL+"/rec", nil)
	if res.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	ex := g.lastExchange(t)
	if ex.Endpoint != strings.TrimPrefix(backend.URL, "http://") {
		t.Errorf("Endpoint = %q", ex.Endpoint)
	}
	if ex.UpstreamStart.IsZero() || ex.UpstreamDuration <= 0 {
		t.Errorf("upstream timing not recorded: %v %v", ex.UpstreamStart, ex.UpstreamDuration)
	}
	if ex.Err != nil || ex.GRPCStatus != "" || ex.Status != 200 {
		t.Errorf("Err=%v GRPCStatus=%q Status=%d", ex.Err, ex.GRPCStatus, ex.Status)
	}
}

func TestForwardingHeaders(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	spoof := http.Header{
		"X-Forwarded-For":   {"203.0.113.9, 10.0.0.1", "198.51.100.2"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"evil.example"},
		"Forwarded":         {`for=203.0.113.9;proto=https`},
		"X-Request-Id":      {"spoofed-id"},
		"X-Real-Ip":         {"203.0.113.9"},
		"True-Client-Ip":    {"203.0.113.9"},
	}
	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
		res, _ := get(t, testClient(t), g.URL+"/", spoof)
		ex := g.lastExchange(t)
		host := strings.TrimPrefix(g.URL, "http://")
		want := map[string]string{
			"Got-X-Forwarded-For":   "127.0.0.1",
			"Got-X-Forwarded-Proto": "http",
			"Got-X-Forwarded-Host":  host,
			"Got-Forwarded":         `for=127.0.0.1;host="` + host + `";proto=http`,
			"Got-X-Request-Id":      ex.ID,
			"Got-X-Real-Ip":         "",
			"Got-True-Client-Ip":    "",
		}
		for k, v := range want {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != ex.ID {
			t.Errorf("response X-Request-Id = %q, want [%s]", got, ex.ID)
		}
	})
	t.Run("trusted peer", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, newTestProxy(t, "127.0.0.0/8"), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
		res, _ := get(t, testClient(t), g.URL+"/", spoof)
		ex := g.lastExchange(t)
		host := strings.TrimPrefix(g.URL, "http://")
		want := map[string]string{
			"Got-X-Forwarded-For":   "203.0.113.9, 10.0.0.1, 198.51.100.2, 127.0.0.1",
			"Got-X-Forwarded-Proto": "https",
			"Got-X-Forwarded-Host":  "evil.example",
			"Got-X-Real-Ip":         "203.0.113.9",
			"Got-Forwarded":         `for=203.0.113.9;proto=https, for=127.0.0.1;host="` + host + `";proto=http`,
			// The entry decides whether a trusted peer's id is kept; the
			// proxy always sends the Exchange's.
			"Got-X-Request-Id": ex.ID,
		}
		for k, v := range want {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	})
}

func TestForwardingHeadersIPv6(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	backend := echoBackend(t)
	h, err := newTestProxy(t).Handler(Target{Pool: newPool(t, TransportOptions{}, backend.URL)})
	if err != nil {
		t.Fatal(err)
	}
	g := &httptest.Server{Listener: ln, Config: &http.Server{Handler: entry(h, make(chan *exchange.Exchange, 1))}}
	g.Start()
	t.Cleanup(g.Close)
	res, _ := get(t, testClient(t), g.URL+"/", nil)
	if got := res.Header.Get("Got-X-Forwarded-For"); got != "::1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := res.Header.Get("Got-Forwarded"); !strings.HasPrefix(got, `for="[::1]";host=`) {
		t.Errorf("Forwarded = %q", got)
	}
}

func TestForwardedElement(t *testing.T) {
	t.Parallel()
	cases := []struct {
		peer, host, proto, want string
	}{
		{"192.0.2.1", "example.com", "https", "for=192.0.2.1;host=example.com;proto=https"},
		{"2001:db8::1", "example.com:8080", "http", `for="[2001:db8::1]";host="example.com:8080";proto=http`},
		{"", "", "http", "for=unknown;proto=http"},
		{"192.0.2.1", `a"b\c`, "http", `for=192.0.2.1;host="a\"b\\c";proto=http`},
	}
	for _, tc := range cases {
		peer, ok := parseAddrForTest(tc.peer)
		if got := forwardedElement(peer, ok, tc.host, tc.proto); got != tc.want {
			t.Errorf("forwardedElement(%q, %q) = %q, want %q", tc.peer, tc.host, got, tc.want)
		}
	}
}

// TestConnectionHeaderCannotStripGatewayHeaders pins down that headers the
// gateway owns are written after hop-by-hop removal: a client listing them
// in Connection must not make them disappear upstream.
func TestConnectionHeaderCannotStripGatewayHeaders(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	conn, err := net.Dial("tcp", g.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	fmt.Fprintf(conn, "GET /strip HTTP/1.1\r\nHost: gw.example\r\n"+
		"Connection: keep-alive, X-Forwarded-For, X-Request-Id, X-Forwarded-Proto, X-Forwarded-Host, Forwarded, X-Custom\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\nX-Request-Id: spoof\r\nX-Custom: hop\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ex := g.lastExchange(t)
	for k, want := range map[string]string{
		"Got-X-Forwarded-For":   "127.0.0.1",
		"Got-X-Request-Id":      ex.ID,
		"Got-X-Forwarded-Proto": "http",
		"Got-X-Forwarded-Host":  "gw.example",
		"Got-Forwarded":         "for=127.0.0.1;host=gw.example;proto=http",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// Connection-listed headers that are not the gateway's are hop-by-hop.
	if got := res.Header.Get("Got-X-Custom"); got != "" {
		t.Errorf("X-Custom listed in Connection reached the endpoint: %q", got)
	}
}

func TestRequestIDWithoutExchange(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	h, err := newTestProxy(t).Handler(Target{Pool: newPool(t, TransportOptions{}, backend.URL)})
	if err != nil {
		t.Fatal(err)
	}
	g := httptest.NewServer(h)
	t.Cleanup(g.Close)
	res, _ := get(t, testClient(t), g.URL+"/", nil)
	id := res.Header.Get("X-Request-Id")
	if len(id) < 20 || res.Header.Get("Got-X-Request-Id") != id {
		t.Fatalf("response id %q, upstream id %q", id, res.Header.Get("Got-X-Request-Id"))
	}
}

func TestUpstreamRequestIDReplaced(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "backend-id")
	}))
	t.Cleanup(backend.Close)
	p := New(Config{RequestIDHeader: "x-correlation-id", Logger: testLogger(t)})
	h, err := p.Handler(Target{Pool: newPool(t, TransportOptions{}, backend.URL)})
	if err != nil {
		t.Fatal(err)
	}
	exs := make(chan *exchange.Exchange, 1)
	g := httptest.NewServer(entry(h, exs))
	t.Cleanup(g.Close)
	res, _ := get(t, testClient(t), g.URL+"/", nil)
	ex := <-exs
	if got := res.Header.Values("X-Correlation-Id"); len(got) != 1 || got[0] != ex.ID {
		t.Fatalf("X-Correlation-Id = %q, want [%s]", got, ex.ID)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	// A closed port: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(testTimeout):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	reader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(reader.Close)
	limitBody := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 1024)
			next.ServeHTTP(w, r)
		})
	}

	cases := []struct {
		name    string
		pool    []string
		timeout time.Duration
		wrap    func(http.Handler) http.Handler
		body    string
		status  int
		errIs   error
	}{
		{"connection refused", []string{refused}, 0, nil, "", http.StatusBadGateway, nil},
		{"no endpoint", nil, 0, nil, "", http.StatusServiceUnavailable, nil},
		{"timeout", []string{slow.URL}, 50 * time.Millisecond, nil, "", http.StatusGatewayTimeout, ErrUpstreamTimeout},
		{"body too large", []string{reader.URL}, 0, limitBody, strings.Repeat("x", 64<<10), http.StatusRequestEntityTooLarge, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := newPool(t, TransportOptions{}, tc.pool...)
			g := startGateway(t, newTestProxy(t), Target{Pool: pool, Timeout: tc.timeout}, tc.wrap)
			method, body := http.MethodGet, io.Reader(nil)
			if tc.body != "" {
				method, body = http.MethodPost, strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(method, g.URL+"/e", body)
			res, err := testClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tc.status, b)
			}
			ex := g.lastExchange(t)
			doc := problemBody(t, res, string(b))
			if doc["status"] != float64(tc.status) || doc["request_id"] != ex.ID {
				t.Errorf("problem %v, want status %d request_id %s", doc, tc.status, ex.ID)
			}
			if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != ex.ID {
				t.Errorf("X-Request-Id = %q", got)
			}
			if ex.Status != tc.status || ex.Err == nil {
				t.Errorf("exchange Status=%d Err=%v", ex.Status, ex.Err)
			}
			if tc.errIs != nil && !errors.Is(ex.Err, tc.errIs) {
				t.Errorf("Err = %v, want %v", ex.Err, tc.errIs)
			}
			for _, ep := range pool.Endpoints() {
				if n := ep.InFlight(); n != 0 {
					t.Errorf("endpoint %s in flight %d after the request", ep.Key(), n)
				}
			}
		})
	}
}

// TestTimeoutDoesNotCutStream pins down that the route timeout bounds only
// the wait for response headers.
func TestTimeoutDoesNotCutStream(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := range 4 {
			fmt.Fprintf(w, "part%d\n", i)
			http.NewResponseController(w).Flush()
			time.Sleep(60 * time.Millisecond)
		}
	}))
	t.Cleanup(backend.Close)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL), Timeout: 100 * time.Millisecond}, nil)
	res, body := get(t, testClient(t), g.URL+"/", nil)
	if res.StatusCode != 200 || body != "part0\npart1\npart2\npart3\n" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if ex := g.lastExchange(t); ex.Err != nil {
		t.Fatalf("Err = %v", ex.Err)
	}
}

func TestClientGoneIs499(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	t.Cleanup(backend.Close)
	pool := newPool(t, TransportOptions{}, backend.URL)
	g := startGateway(t, newTestProxy(t), Target{Pool: pool}, nil)
	ctx, cancel := context.WithCancel(ctxTimeout(t))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/", nil)
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := testClient(t).Do(req); err == nil {
		t.Fatal("request succeeded")
	}
	ex := g.lastExchange(t)
	if ex.Status != StatusClientClosedRequest || !errors.Is(ex.Err, context.Canceled) {
		t.Fatalf("Status=%d Err=%v, want 499 and context.Canceled", ex.Status, ex.Err)
	}
	if n := pool.Endpoints()[0].InFlight(); n != 0 {
		t.Fatalf("in flight %d", n)
	}
}

func TestSafeErrorDropsURL(t *testing.T) {
	t.Parallel()
	_, err := http.Get("http://127.0.0.1:1/x?api_key=secret")
	if err == nil {
		t.Skip("port 1 answered")
	}
	if s := safeError(err); strings.Contains(s, "secret") {
		t.Fatalf("safeError leaked the URL: %s", s)
	}
}

func TestJoinPath(t *testing.T) {
	t.Parallel()
	for _, tc := range [][3]string{{"", "/a", "/a"}, {"/", "/a", "/a"}, {"/api", "/a", "/api/a"}, {"/api/", "/", "/api/"}} {
		if got := joinPath(tc[0], tc[1]); got != tc[2] {
			t.Errorf("joinPath(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestBufferPoolDoesNotAllocate(t *testing.T) {
	var bp bufferPool
	bp.Put(bp.Get())
	if n := testing.AllocsPerRun(100, func() { bp.Put(bp.Get()) }); n != 0 {
		t.Fatalf("Get+Put allocate %v times", n)
	}
	if len(bp.Get()) != bufferSize {
		t.Fatal("wrong buffer size")
	}
	bp.Put(make([]byte, 10)) // foreign buffers are dropped
}
