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
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/forwarded"
)

// clientUnderTest is the TransportOptions.Client the package's tests use:
// TestMain runs every test once with each client, so the proxy's
// conformance tests (streaming, truncation, retries, timeouts) hold for
// both.
var clientUnderTest string

func TestMain(m *testing.M) {
	code := 0
	for _, c := range []string{ClientNative, ClientStd} {
		clientUnderTest = c
		if rc := m.Run(); rc != 0 {
			fmt.Fprintf(os.Stderr, "tests failed with the %s client\n", c)
			code = rc
		}
	}
	os.Exit(code)
}

// stdOf returns the net/http Transport behind rt.
func stdOf(rt http.RoundTripper) *http.Transport {
	if c, ok := rt.(*h1Client); ok {
		return c.fallback
	}
	return rt.(*http.Transport)
}

func newClientTransport(t testing.TB, opts TransportOptions) http.RoundTripper {
	t.Helper()
	if opts.Client == "" {
		opts.Client = clientUnderTest
	}
	rt, err := NewTransport(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	return rt
}

// connCounter counts the connections a test server accepts.
func connCounter(s *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func roundTrip(t testing.TB, rt http.RoundTripper, method, u string, body string) (*http.Response, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctxTimeout(t), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

// TestH1Smuggling: responses that are ambiguous about where they end, or
// malformed, fail the request with 502; they never reach the client.
func TestH1Smuggling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, answer string
		// std is false where net/http's Transport accepts what the native
		// client refuses.
		std bool
	}{
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"two Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", true},
		{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd", true},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc", true},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", true},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc", false},
		{"bare LF in header", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 3\r\n\r\nabc", false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 3\r\n\r\nabc", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc", false},
		{"header too large", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\nContent-Length: 3\r\n\r\nabc", false},
		{"status garbage", "HTTP/1.1 2x0 OK\r\nContent-Length: 3\r\n\r\nabc", true},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", true},
		{"HTTP/2 status line", "HTTP/2 200 OK\r\nContent-Length: 3\r\n\r\nabc", true},
		{"unknown transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", true},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"control character in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 3\r\n\r\nabc", true},
		{"too many 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 12) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if clientUnderTest == ClientStd && !tc.std {
				t.Skip("net/http's Transport accepts this response")
			}
			backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readRequestHead(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, tc.answer)
			})
			g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend)}, nil)
			res, body := get(t, testClient(t), g.URL+"/", nil)
			if res.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, body %q: want 502", res.StatusCode, body)
			}
			if ex := g.lastExchange(t); ex.Err == nil {
				t.Error("Err not recorded")
			}
		})
	}
}

// TestH1AcceptedResponses: interim responses are skipped, a response sent
// before the request body was read is relayed, and close-delimited,
// repeated-equal and HEAD framing is honoured.
func TestH1AcceptedResponses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, method, body, answer string
		status                     int
		want                       string
	}{
		{"1xx then 200", "GET", "", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok"},
		{"equal Content-Lengths", "GET", "", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 200, "ok"},
		{"close-delimited", "GET", "", "HTTP/1.1 200 OK\r\n\r\nuntil close", 200, "until close"},
		{"HTTP/1.0", "GET", "", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok"},
		{"no reason phrase", "GET", "", "HTTP/1.1 204\r\n\r\n", 204, ""},
		{"HEAD with length", "HEAD", "", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 200, ""},
		{"304 with length", "GET", "", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", 304, ""},
		{"chunked with trailer", "GET", "", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 7\r\n\r\n", 200, "ok"},
		{"answer before body", "POST", strings.Repeat("b", 60<<10), "HTTP/1.1 413 Content Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig", 413, "big"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readRequestHead(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, tc.answer)
				if tc.body != "" {
					// Close with the body unread: the kernel resets the
					// connection while the client is still writing.
					_ = c.(*net.TCPConn).SetLinger(0)
				}
			})
			rt := newClientTransport(t, TransportOptions{})
			res, body, err := roundTrip(t, rt, tc.method, backend+"/", tc.body)
			if err != nil {
				if tc.name == "answer before body" {
					// The reset may also discard the answer before it is read.
					t.Skipf("answer lost to the reset: %v", err)
				}
				t.Fatal(err)
			}
			if res.StatusCode != tc.status || body != tc.want {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, body, tc.status, tc.want)
			}
			if tc.name == "chunked with trailer" {
				if got := res.Trailer.Get("X-Sum"); got != "7" {
					t.Errorf("trailer X-Sum = %q", got)
				}
				if len(res.TransferEncoding) != 1 || res.ContentLength != -1 {
					t.Errorf("TransferEncoding %v, ContentLength %d", res.TransferEncoding, res.ContentLength)
				}
			}
			if tc.method == "HEAD" && res.ContentLength != 1000 {
				t.Errorf("HEAD ContentLength = %d", res.ContentLength)
			}
		})
	}
}

// TestH1Truncation: a body that ends early is io.ErrUnexpectedEOF, never a
// clean end.
func TestH1Truncation(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]string{
		"content-length": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"chunked":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"trailer":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-A: 1\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readRequestHead(br); err == nil {
					_, _ = io.WriteString(c, answer)
				}
			})
			_, _, err := roundTrip(t, newClientTransport(t, TransportOptions{}), "GET", backend+"/", "")
			if err != nil && clientUnderTest == ClientStd {
				return // net/http words a cut trailer its own way
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// TestH1KeepAlive: sequential requests share one connection; a body closed
// unread, or Connection: close from either side, costs the connection.
func TestH1KeepAlive(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 256<<10)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/big":
			_, _ = io.WriteString(w, big)
			return
		case "/chunked":
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, "ok")
	}))
	conns := connCounter(s)
	s.Start()
	t.Cleanup(s.Close)
	rt := newClientTransport(t, TransportOptions{})

	for i := range 20 {
		path := "/"
		if i%2 == 1 {
			path = "/chunked"
		}
		if _, _, err := roundTrip(t, rt, "GET", s.URL+path, ""); err != nil {
			t.Fatal(err)
		}
		if _, _, err := roundTrip(t, rt, "POST", s.URL+path, "payload"); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 40 sequential requests, want 1", n)
	}

	// An unread body: the connection is closed, not reused.
	req, _ := http.NewRequestWithContext(ctxTimeout(t), "GET", s.URL+"/big", nil)
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if _, _, err := roundTrip(t, rt, "GET", s.URL+"/", ""); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections after an unread body, want 2", n)
	}

	// Connection: close from the endpoint.
	res, _, err = roundTrip(t, rt, "GET", s.URL+"/close", "")
	if err != nil || !res.Close {
		t.Fatalf("err %v, res.Close %v", err, res != nil && res.Close)
	}
	if _, _, err := roundTrip(t, rt, "GET", s.URL+"/", ""); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections after Connection: close, want 3", n)
	}

	// Connection: close from the request.
	req, _ = http.NewRequestWithContext(ctxTimeout(t), "GET", s.URL+"/", nil)
	req.Close = true
	if res, err = rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if _, _, err := roundTrip(t, rt, "GET", s.URL+"/", ""); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("%d connections after a request with Connection: close, want 4", n)
	}
}

// TestH1IdleTimeoutExpiry: an endpoint that closes idle connections before
// the gateway does causes no failure, not even for requests that cannot be
// repeated.
func TestH1IdleTimeoutExpiry(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}))
	s.Config.IdleTimeout = 20 * time.Millisecond
	s.Start()
	t.Cleanup(s.Close)
	rt := newClientTransport(t, TransportOptions{})
	for i := range 8 {
		res, body, err := roundTrip(t, rt, "POST", s.URL+"/", "n="+strconv.Itoa(i))
		if err != nil || res.StatusCode != 200 || body != "n="+strconv.Itoa(i) {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(40 * time.Millisecond)
	}
}

// TestH1StaleConnectionRetried: a pooled connection the endpoint drops
// without answering is replaced once, transparently, for a request that
// can be repeated; a POST that was written is not repeated.
func TestH1StaleConnectionRetried(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		// Answer one request per connection, then read the next and drop
		// the connection without a word, as an endpoint restarting would.
		req, err := readRequestHead(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		served.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if req, err = readRequestHead(br); err == nil {
			_, _ = io.Copy(io.Discard, req.Body)
		}
	})
	rt := newClientTransport(t, TransportOptions{})
	for i := range 5 {
		if _, body, err := roundTrip(t, rt, "GET", backend+"/", ""); err != nil || body != "ok" {
			t.Fatalf("GET %d: %q %v", i, body, err)
		}
	}
	if n := served.Load(); n != 5 {
		t.Errorf("served %d", n)
	}
	_, _, err := roundTrip(t, rt, "POST", backend+"/", "once")
	if err == nil {
		t.Fatal("a POST written to a dropped connection was repeated")
	}
	if isConnectFailure(err) {
		t.Errorf("%v: classified as a connect failure although the request was written", err)
	}
}

// TestH1ConnectFailureClassified: a refused connection reads as a connect
// failure to the retry logic, as net/http's does.
func TestH1ConnectFailureClassified(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = roundTrip(t, newClientTransport(t, TransportOptions{}), "POST", "http://"+addr+"/", "x")
	if err == nil || !isConnectFailure(err) {
		t.Fatalf("err = %v, want a connect failure", err)
	}
}

// TestH1PoolLimits: idle connections stay within MaxIdleConnsPerHost and
// open ones within MaxConnsPerHost; requests beyond wait, none fails.
func TestH1PoolLimits(t *testing.T) {
	t.Parallel()
	var cur, peak atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			if n := cur.Add(1); n > peak.Load() {
				peak.Store(n)
			}
		case http.StateClosed, http.StateHijacked:
			cur.Add(-1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	rt := newClientTransport(t, TransportOptions{MaxConnsPerHost: 3, MaxIdleConnsPerHost: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			if _, _, err := roundTrip(t, rt, "GET", s.URL+"/", ""); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d connections open at once, limit 3", p)
	}
	if c, ok := rt.(*h1Client); ok {
		open, idle := c.host(strings.TrimPrefix(s.URL, "http://")).openConns()
		if idle > 2 || open != idle {
			t.Errorf("open %d, idle %d: want at most 2, all idle", open, idle)
		}
	}
}

// TestH1WaiterGivesUp: a request waiting for a connection slot ends with
// its context.
func TestH1WaiterGivesUp(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	rt := newClientTransport(t, TransportOptions{MaxConnsPerHost: 1})
	go func() {
		req, _ := http.NewRequestWithContext(ctxTimeout(t), "GET", s.URL+"/", nil)
		if res, err := rt.RoundTrip(req); err == nil {
			res.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// TestH1ContextEndsRequest: a context that ends interrupts the wait for
// headers and the body read, with the context's cause, and the connection
// is not reused.
func TestH1ContextEndsRequest(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "start")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}))
	t.Cleanup(s.Close)
	rt := newClientTransport(t, TransportOptions{})
	for _, path := range []string{"/headers", "/body"} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("gave up")
		time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
		start := time.Now()
		res, err := rt.RoundTrip(req)
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: err %v after %v", path, err, time.Since(start))
		}
		if clientUnderTest == ClientNative && !errors.Is(err, cause) {
			t.Errorf("%s: err = %v, want the context's cause", path, err)
		}
	}
}

// TestH1Fallback: requests the native client does not cover still work.
func TestH1Fallback(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d %v", n, r.TransferEncoding)
	}))
	t.Cleanup(s.Close)
	rt := newClientTransport(t, TransportOptions{})
	// A body of unknown length goes chunked through net/http.
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "streamed")
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(ctxTimeout(t), "POST", s.URL+"/", pr)
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "8 [chunked]" {
		t.Errorf("chunked upload: %q", b)
	}
	// A body above the native limit.
	_, body, err := roundTrip(t, rt, "PUT", s.URL+"/", strings.Repeat("z", maxNativeRequestBody+1))
	if err != nil || body != strconv.Itoa(maxNativeRequestBody+1)+" []" {
		t.Errorf("large body: %q %v", body, err)
	}
	if c, ok := rt.(*h1Client); ok {
		if c.covers(req) {
			t.Error("a body of unknown length is covered")
		}
	}
}

// TestH1Concurrent runs mixed requests from many goroutines; run with -race.
func TestH1Concurrent(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("chunked") != "" {
			_, _ = w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			_, _ = w.Write(b[len(b)/2:])
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	rt := newClientTransport(t, TransportOptions{MaxIdleConnsPerHost: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				want := strings.Repeat(strconv.Itoa(g), i*37+1)
				q := ""
				if i%3 == 0 {
					q = "?chunked=1"
				}
				_, body, err := roundTrip(t, rt, "POST", s.URL+"/"+q, want)
				if err != nil || body != want {
					t.Errorf("goroutine %d request %d: %v (len %d, want %d)", g, i, err, len(body), len(want))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestAddrText: the reused address text is exactly netip's formatting.
func TestAddrText(t *testing.T) {
	t.Parallel()
	for _, ra := range []string{"192.0.2.1:5000", "10.0.0.255:1", "192.0.2.1", "[::1]:80", "[::ffff:192.0.2.7]:80",
		"[fe80::1%eth0]:80", "2001:db8::1", "0.0.0.0:0"} {
		peer, ok := forwarded.PeerAddr(ra)
		if !ok {
			t.Fatalf("%q not parsed", ra)
		}
		if got, want := addrText(ra, peer), peer.String(); got != want {
			t.Errorf("addrText(%q) = %q, want %q", ra, got, want)
		}
	}
}
