package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTestProxy(t testing.TB, trusted ...string) *Proxy {
	t.Helper()
	tr, err := forwarded.NewTrusted(trusted)
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Trusted: tr, Logger: testLogger(t)})
}

// newPool returns a pool of the given endpoint URLs with a transport built by
// NewTransport.
func newPool(t testing.TB, opts TransportOptions, urls ...string) *upstream.Pool {
	t.Helper()
	if opts.Client == "" {
		opts.Client = clientUnderTest
	}
	tr, err := NewTransport(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	pool := upstream.NewPool("svc", tr)
	eps := make([]*upstream.Endpoint, 0, len(urls))
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, &upstream.Endpoint{URL: u})
	}
	pool.Update(eps)
	return pool
}

// gateway mirrors the gateway entry: it attaches an Exchange, records the
// response status, and hands the finished Exchange to the test.
type gateway struct {
	*httptest.Server
	proxy *Proxy
	exs   chan *exchange.Exchange
}

func (g *gateway) lastExchange(t testing.TB) *exchange.Exchange {
	t.Helper()
	select {
	case ex := <-g.exs:
		return ex
	case <-time.After(testTimeout):
		t.Fatal("no exchange recorded")
		return nil
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func entry(h http.Handler, exs chan<- *exchange.Exchange) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := &exchange.Exchange{Start: time.Now(), ID: forwarded.NewRequestID(), Path: r.URL.Path}
		w.Header()["X-Request-Id"] = []string{ex.ID}
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if ex.Status == 0 {
				ex.Status = rec.status
			}
			select {
			case exs <- ex:
			default:
			}
		}()
		h.ServeHTTP(rec, r.WithContext(exchange.NewContext(r.Context(), ex)))
	})
}

// startGateway serves target through p behind an entry that mimics the
// gateway's. wrap, if not nil, stands for the route's policy chain.
func startGateway(t testing.TB, p *Proxy, target Target, wrap func(http.Handler) http.Handler) *gateway {
	t.Helper()
	h, err := p.Handler(target)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		h = wrap(h)
	}
	g := &gateway{proxy: p, exs: make(chan *exchange.Exchange, 64)}
	g.Server = httptest.NewUnstartedServer(entry(h, g.exs))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	g.Config.Protocols = &protocols
	g.Config.ErrorLog = slog.NewLogLogger(testLogger(t).Handler(), slog.LevelDebug)
	g.Start()
	t.Cleanup(g.Close)
	return g
}

func testClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

func get(t testing.TB, c *http.Client, u string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// problemBody decodes a problem+json response body.
func problemBody(t testing.TB, res *http.Response, body string) map[string]any {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, body %q", ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return m
}

// rawBackend is a TCP server that answers every connection with handle.
func rawBackend(t testing.TB, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				handle(c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// readRequestHead consumes one request head from br.
func readRequestHead(br *bufio.Reader) (*http.Request, error) {
	return http.ReadRequest(br)
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}
