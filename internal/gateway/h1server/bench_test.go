package h1server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

var benchHead = []byte("GET /api/users/42?fields=name HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench\r\nAccept: application/json\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n")

func BenchmarkParseHead(b *testing.B) {
	b.ReportAllocs()
	hdr := make(http.Header, 16)
	for b.Loop() {
		if _, ok := parseHead(benchHead, hdr); !ok {
			b.Fatal("head refused")
		}
	}
}

// BenchmarkServe measures one request through a keep-alive connection
// over loopback: read, parse, a handler that writes a 200-byte body, write.
// It is the server's cost per request plus the loopback round trip; run it
// beside BenchmarkServeNetHTTP, the same through net/http's server.
func BenchmarkServe(b *testing.B) { benchServe(b, true) }

func BenchmarkServeNetHTTP(b *testing.B) { benchServe(b, false) }

func benchServe(b *testing.B, own bool) {
	body := strings.Repeat("x", 200)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fb := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Minute}
	var shutdown func(context.Context) error
	if own {
		s := &Server{Handler: h, Fallback: fb}
		go func() { _ = s.Serve(ln) }()
		shutdown = s.Shutdown
	} else {
		go func() { _ = fb.Serve(ln) }()
		shutdown = fb.Shutdown
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = shutdown(ctx)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	req := &http.Request{Method: http.MethodGet}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.Write(benchHead); err != nil {
			b.Fatal(err)
		}
		res, err := http.ReadResponse(br, req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}
