package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

func benchBackend(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello, world\n")
	}))
	b.Cleanup(s.Close)
	return s
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the proxy, not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkHandler measures one request through the proxy handler to a
// loopback backend over a kept-alive connection, as the gateway entry would
// call it: a pooled Exchange is attached to the request.
func BenchmarkHandler(b *testing.B) {
	backend := benchBackend(b)
	p := New(Config{Logger: slog.New(slog.DiscardHandler)})
	for _, timeout := range []time.Duration{0, 30 * time.Second} {
		b.Run(fmt.Sprintf("timeout=%v", timeout), func(b *testing.B) {
			h, err := p.Handler(Target{Pool: newPool(b, TransportOptions{}, backend.URL), Timeout: timeout})
			if err != nil {
				b.Fatal(err)
			}
			ex := new(exchange.Exchange)
			req := httptest.NewRequest(http.MethodGet, "http://gw.example/items/42?x=1", nil)
			req = req.WithContext(exchange.NewContext(req.Context(), ex))
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				ex.Reset()
				ex.ID, ex.Path = "0123456789abcdefghjkmnpqr", "/items/42"
				clear(w.h)
				h.ServeHTTP(w, req)
				if ex.Err != nil {
					b.Fatal(ex.Err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip measures a client request through a gateway server and
// the proxy to a loopback backend, all connections kept alive.
func BenchmarkRoundTrip(b *testing.B) {
	backend := benchBackend(b)
	h, err := New(Config{Logger: slog.New(slog.DiscardHandler)}).Handler(Target{Pool: newPool(b, TransportOptions{}, backend.URL)})
	if err != nil {
		b.Fatal(err)
	}
	g := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := &exchange.Exchange{ID: forwarded.NewRequestID(), Path: r.URL.Path}
		h.ServeHTTP(w, r.WithContext(exchange.NewContext(r.Context(), ex)))
	}))
	b.Cleanup(g.Close)
	c := testClient(b)
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Get(g.URL + "/items/42")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = forwarded.NewRequestID()
	}
}

func ExampleProxy_Handler() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s via %s\n", r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()

	transport, err := NewTransport(TransportOptions{})
	if err != nil {
		panic(err)
	}
	pool := upstream.NewPool("catalog", transport)
	endpoint, err := url.Parse(backend.URL + "/v2")
	if err != nil {
		panic(err)
	}
	pool.Update([]*upstream.Endpoint{{URL: endpoint}})

	p := New(Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	h, err := p.Handler(Target{Pool: pool, Timeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	gw := httptest.NewServer(h)
	defer gw.Close()

	res, err := http.Get(gw.URL + "/items?page=2")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Print(string(body))
	// Output: GET /v2/items?page=2 via http
}
