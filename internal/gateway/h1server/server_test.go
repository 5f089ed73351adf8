package h1server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testTimeout = 10 * time.Second

// served records which server answered: this one or net/http.
func served(w http.ResponseWriter) string {
	if _, ok := w.(*response); ok {
		return "h1server"
	}
	return "net/http"
}

func start(t *testing.T, h http.HandlerFunc) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second}
	s := &Server{Handler: h, Fallback: fb}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-errc; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, ln.Addr().String()
}

// rawConn sends raw bytes and reads responses with net/http's parser.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) read(method string) (*http.Response, string) {
	c.t.Helper()
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return res, string(b)
}

func (c *rawConn) closed() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.br.ReadByte()
	return err == io.EOF
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Served-By", served(w))
	fmt.Fprintf(w, "%s %s %s host=%s body=%s", r.Method, r.RequestURI, r.Proto, r.Host, b)
}

func TestKeepAliveAndPipelining(t *testing.T) {
	_, addr := start(t, echo)
	c := dial(t, addr)
	c.send("GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
	res, body := c.read("GET")
	if body != "GET /a?x=1 HTTP/1.1 host=h body=" || res.Header.Get("X-Served-By") != "h1server" {
		t.Fatalf("%q %v", body, res.Header)
	}
	if res.ContentLength != int64(len(body)) || res.Header.Get("Date") == "" || res.Header.Get("Content-Type") == "" {
		t.Fatalf("framing %d, header %v", res.ContentLength, res.Header)
	}
	c.send("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("POST"); body != "POST /b HTTP/1.1 host=h body=abc" {
		t.Fatalf("pipelined POST: %q", body)
	}
	if _, body := c.read("GET"); body != "GET /c HTTP/1.1 host=h body=" {
		t.Fatalf("pipelined GET: %q", body)
	}
}

func TestHandOver(t *testing.T) {
	_, addr := start(t, echo)
	for name, tc := range map[string]struct{ req, want, by string }{
		"chunked body": {"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /p HTTP/1.1 host=h body=abc", "net/http"},
		"expect":       {"PUT /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", "PUT /p HTTP/1.1 host=h body=ok", "net/http"},
		"large head":   {"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 6000) + "\r\n\r\n", "GET /big HTTP/1.1 host=h body=", "net/http"},
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			// A first request this server reads, then one it hands over,
			// then one more: net/http serves the rest of the connection.
			c.send("GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
			if res, _ := c.read("GET"); res.Header.Get("X-Served-By") != "h1server" {
				t.Fatalf("first request served by %s", res.Header.Get("X-Served-By"))
			}
			c.send(tc.req)
			res, body := c.read("GET")
			if res.StatusCode == http.StatusContinue {
				res, body = c.read("GET")
			}
			if body != tc.want || res.Header.Get("X-Served-By") != tc.by {
				t.Fatalf("got %d %q by %s", res.StatusCode, body, res.Header.Get("X-Served-By"))
			}
			c.send("GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
			if res, body := c.read("GET"); body != "GET /after HTTP/1.1 host=h body=" || res.Header.Get("X-Served-By") != "net/http" {
				t.Fatalf("after: %q by %s", body, res.Header.Get("X-Served-By"))
			}
		})
	}
}

// Malformed requests are net/http's to refuse, with its status codes.
func TestMalformedRefusedByNetHTTP(t *testing.T) {
	_, addr := start(t, echo)
	for _, req := range []string{
		"GET / HTTP/1.1\r\n\r\n", // no Host
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		c := dial(t, addr)
		c.send(req)
		res, _ := c.read("GET")
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", req, res.StatusCode)
		}
	}
}

func TestResponseFraming(t *testing.T) {
	big := strings.Repeat("x", 3*bufSize)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			fmt.Fprint(w, big)
		case "/declared":
			w.Header().Set("Content-Length", "5")
			fmt.Fprint(w, "12345")
		case "/flush":
			fmt.Fprint(w, "a")
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "b")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			fmt.Fprint(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			fmt.Fprint(w, "ignored")
		case "/hints":
			w.Header().Set("Link", "</s.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			fmt.Fprint(w, "final")
		case "/split":
			w.Header().Set("X-Evil", "a\r\nX-Injected: 1")
			w.Header()["Bad Name"] = []string{"v"}
		case "/badtrailer":
			w.Header().Set("Trailer", "X-Good, X Bad")
			fmt.Fprint(w, "t")
			w.Header().Set("X-Good", "1")
			w.Header()["X Bad"] = []string{"2"}
			w.Header()[http.TrailerPrefix+"Also Bad"] = []string{"3"}
		}
	})
	c := dial(t, addr)
	check := func(method, path string, wantBody string, f func(*http.Response)) {
		t.Helper()
		c.send(method + " " + path + " HTTP/1.1\r\nHost: h\r\n\r\n")
		res, body := c.read(method)
		if res.StatusCode == http.StatusEarlyHints {
			res, body = c.read(method)
		}
		if body != wantBody {
			t.Fatalf("%s %s: body %q", method, path, body)
		}
		f(res)
	}
	check("GET", "/big", big, func(res *http.Response) {
		if len(res.TransferEncoding) != 1 {
			t.Errorf("/big not chunked: %v", res.TransferEncoding)
		}
	})
	check("GET", "/declared", "12345", func(res *http.Response) {
		if res.ContentLength != 5 {
			t.Errorf("/declared: %d", res.ContentLength)
		}
	})
	check("HEAD", "/declared", "", func(res *http.Response) {
		if res.ContentLength != 5 {
			t.Errorf("HEAD /declared: %d", res.ContentLength)
		}
	})
	check("GET", "/flush", "ab", func(res *http.Response) {
		if len(res.TransferEncoding) != 1 {
			t.Errorf("/flush not chunked")
		}
	})
	check("GET", "/trailer", "body", func(res *http.Response) {
		if res.Trailer.Get("X-Sum") != "42" || res.Trailer.Get("X-Late") != "late" {
			t.Errorf("trailers %v", res.Trailer)
		}
	})
	check("GET", "/nocontent", "", func(res *http.Response) {
		if res.StatusCode != http.StatusNoContent {
			t.Errorf("status %d", res.StatusCode)
		}
	})
	check("GET", "/hints", "final", func(res *http.Response) {
		if res.Header.Get("Link") != "" {
			t.Errorf("final response kept the hint's header")
		}
	})
	check("GET", "/badtrailer", "t", func(res *http.Response) {
		// The client lists the announced names; only the valid one has a
		// value, and the response parsed.
		if res.Trailer.Get("X-Good") != "1" || len(res.Trailer["X Bad"]) != 0 || len(res.Trailer["Also Bad"]) != 0 {
			t.Errorf("trailers %v", res.Trailer)
		}
	})
	check("GET", "/split", "", func(res *http.Response) {
		if res.Header.Get("X-Injected") != "" || res.Header.Get("X-Evil") != "a  X-Injected: 1" {
			t.Errorf("header split: %v", res.Header)
		}
	})
}

func TestHTTP10AndConnectionClose(t *testing.T) {
	_, addr := start(t, echo)
	c := dial(t, addr)
	c.send("GET / HTTP/1.0\r\n\r\n")
	if res, body := c.read("GET"); body != "GET / HTTP/1.0 host= body=" || !res.Close {
		t.Fatalf("%q close=%v", body, res.Close)
	}
	if !c.closed() {
		t.Fatal("HTTP/1.0 connection left open")
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	c.read("GET")
	c.send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if _, body := c.read("GET"); body != "GET /again HTTP/1.0 host= body=" {
		t.Fatalf("keep-alive 1.0: %q", body)
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	if res, _ := c.read("GET"); !res.Close || !c.closed() {
		t.Fatal("Connection: close not honoured")
	}
}

func TestUnreadBody(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ignored the body") })
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("POST")
	if _, body := c.read("GET"); body != "ignored the body" {
		t.Fatalf("after a drained body: %q", body)
	}
	c = dial(t, addr)
	c.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", maxDiscard+1))
	c.read("POST")
	if !c.closed() {
		t.Fatal("connection with a large unread body left open")
	}
}

// A client that goes away is noticed through Err (a look at the socket)
// and through Done (a watcher).
func TestClientGoneCancels(t *testing.T) {
	for _, how := range []string{"err", "done"} {
		t.Run(how, func(t *testing.T) {
			canceled := make(chan error, 1)
			arrived := make(chan struct{})
			_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				ctx := r.Context()
				deadline := time.After(testTimeout)
				if how == "done" {
					select {
					case <-ctx.Done():
					case <-deadline:
					}
				} else {
					for ctx.Err() == nil {
						select {
						case <-deadline:
							canceled <- nil
							return
						case <-time.After(5 * time.Millisecond):
						}
					}
				}
				canceled <- ctx.Err()
			})
			c := dial(t, addr)
			c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			<-arrived
			c.nc.Close()
			if err := <-canceled; err != context.Canceled {
				t.Fatalf("context error %v", err)
			}
		})
	}
}

func TestPanicClosesConnection(t *testing.T) {
	var n atomic.Int64
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		fmt.Fprint(w, "ok")
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if !c.closed() {
		t.Fatal("connection open after a panic")
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "ok" {
		t.Fatalf("after a panic: %q", body)
	}
}

func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "done")
	})
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	if !idle.closed() {
		t.Fatal("idle connection not closed at shutdown")
	}
	close(release)
	res, body := busy.read("GET")
	if body != "done" || !res.Close {
		t.Fatalf("in-flight request: %q close=%v", body, res.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestContextHoldsOneValue(t *testing.T) {
	type key struct{}
	got := make(chan string, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		h, ok := r.Context().(interface{ HoldValue(key, val any) bool })
		switch {
		case !ok:
			got <- "no HoldValue"
		case !h.HoldValue(key{}, "v"):
			got <- "first HoldValue refused"
		case h.HoldValue(key{}, "w"):
			got <- "second HoldValue accepted"
		default:
			v, _ := r.Context().Value(key{}).(string)
			got <- v
		}
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	if v := <-got; v != "v" {
		t.Fatal(v)
	}
}

// A long request whose context is watched outlives the connection's idle
// and header timeouts.
func TestWatchOutlivesIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			fmt.Fprint(w, "canceled")
		case <-time.After(400 * time.Millisecond):
			fmt.Fprint(w, "finished")
		}
	})
	s := &Server{Handler: h, Fallback: &http.Server{Handler: h, ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond}}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	c := dial(t, ln.Addr().String())
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "finished" {
		t.Fatalf("long request: %q", body)
	}
}

// An idle connection is closed after the idle timeout — no sooner than
// seven eighths of it, however many requests moved its deadline lazily.
func TestIdleTimeoutCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const idle = 400 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	s := &Server{Handler: h, Fallback: &http.Server{Handler: h, ReadHeaderTimeout: time.Second, IdleTimeout: idle}}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	c := dial(t, ln.Addr().String())
	for range 20 {
		c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		c.read("GET")
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if !c.closed() {
		t.Fatal("idle connection not closed")
	}
	if d := time.Since(start); d < idle*7/8-20*time.Millisecond || d > idle+time.Second {
		t.Fatalf("closed after %v idle, want about %v", d, idle)
	}
}

// flakyListener fails its first Accept with a temporary error, as a
// listener out of file descriptors does.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

type temporaryError struct{}

func (temporaryError) Error() string   { return "accept: too many open files" }
func (temporaryError) Temporary() bool { return true }
func (temporaryError) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, temporaryError{}
	}
	return l.Listener.Accept()
}

// A temporary accept error does not stop the server.
func TestTemporaryAcceptErrorRetried(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner}
	s := &Server{Handler: http.HandlerFunc(echo), Fallback: &http.Server{Handler: http.HandlerFunc(echo)}}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close(); <-errc })
	c := dial(t, inner.Addr().String())
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("GET"); body != "GET / HTTP/1.1 host=h body=" {
		t.Fatalf("after a temporary accept error: %q", body)
	}
}
