package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// These tests hold for both the direct path (the native client, where the
// proxy relays without ReverseProxy) and ReverseProxy (the net/http client):
// TestMain runs them with each.

func TestDirectPathTaken(t *testing.T) {
	t.Parallel()
	pool := newPool(t, TransportOptions{}, "http://127.0.0.1:1")
	h, err := newTestProxy(t).Handler(Target{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	hd := h.(*handler)
	a := &attempt{ep: pool.Endpoints()[0]}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	got := hd.directClient(a, r) != nil
	if want := clientUnderTest == ClientNative; got != want {
		t.Fatalf("direct path for a plain GET with the %s client: %v", clientUnderTest, got)
	}
	for name, r := range map[string]*http.Request{
		"expect": withHeader(httptest.NewRequest(http.MethodPut, "/", strings.NewReader("x")), "Expect", "100-continue"),
		"chunked": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
			r.ContentLength = -1
			return r
		}(),
		"large": httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", maxNativeRequestBody+1))),
	} {
		if hd.directClient(a, r) != nil {
			t.Errorf("%s: direct path taken", name)
		}
	}
	if hd.directClient(&attempt{ep: pool.Endpoints()[0], websocket: true}, httptest.NewRequest(http.MethodGet, "/", nil)) != nil {
		t.Error("WebSocket handshake: direct path taken")
	}
}

func withHeader(r *http.Request, k, v string) *http.Request {
	r.Header.Set(k, v)
	return r
}

func TestHopByHopHeadersRemovedBothWays(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got []string
		for _, k := range []string{"Keep-Alive", "X-Listed", "Proxy-Authorization", "Te", "X-Kept"} {
			got = append(got, k+"="+strings.Join(r.Header[k], ","))
		}
		w.Header().Set("Got", strings.Join(got, ";"))
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "leak")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Upstream", "kept")
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(backend.Close)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	res, body := get(t, testClient(t), g.URL+"/", http.Header{
		"Connection":          {"X-Listed, keep-alive, TE"},
		"X-Listed":            {"hop"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Authorization": {"Basic c2VjcmV0"},
		"Te":                  {"trailers, deflate"},
		"X-Kept":              {"yes"},
	})
	if body != "ok" {
		t.Fatalf("body %q", body)
	}
	want := "Keep-Alive=;X-Listed=;Proxy-Authorization=;Te=trailers;X-Kept=yes"
	if got := res.Header.Get("Got"); got != want {
		t.Errorf("endpoint saw %q, want %q", got, want)
	}
	for _, k := range []string{"X-Secret-Hop", "Keep-Alive"} {
		if v, ok := res.Header[k]; ok {
			t.Errorf("client got hop-by-hop %s: %q", k, v)
		}
	}
	if res.Header.Get("X-Upstream") != "kept" {
		t.Errorf("X-Upstream = %q", res.Header.Get("X-Upstream"))
	}
}

func TestInterimResponsesRelayed(t *testing.T) {
	t.Parallel()
	backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequestHead(br); err != nil {
			return
		}
		fmt.Fprint(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok")
	})
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend)}, nil)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctxTimeout(t), trace), http.MethodGet, g.URL+"/", nil)
	res, err := testClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "ok" || res.Header.Get("X-Final") != "yes" {
		t.Fatalf("final response %d %q %v", res.StatusCode, b, res.Header)
	}
	if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
		t.Fatalf("interim responses %q", hints)
	}
	// The final response keeps the gateway's header and not the hint's.
	if res.Header.Get("X-Request-Id") == "" || res.Header.Get("Link") != "" {
		t.Fatalf("final headers %v", res.Header)
	}
}

func TestTrailersRelayed(t *testing.T) {
	t.Parallel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		fmt.Fprint(w, "part one,")
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "part two")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "unannounced")
	}))
	t.Cleanup(backend.Close)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	res, body := get(t, testClient(t), g.URL+"/", nil)
	if body != "part one,part two" {
		t.Fatalf("body %q", body)
	}
	if got := res.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("announced trailer %q (trailers %v)", got, res.Trailer)
	}
	if got := res.Trailer.Get("X-Late"); got != "unannounced" {
		t.Errorf("unannounced trailer %q (trailers %v)", got, res.Trailer)
	}
}

// A wait for headers, and a pause in a body, longer than the interval at
// which the direct path checks the client are neither cut nor slowed.
func TestLongWaitsOutlastWatchInterval(t *testing.T) {
	t.Parallel()
	pause := watchInterval + watchInterval/2
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-headers" {
			time.Sleep(pause)
			fmt.Fprint(w, "late")
			return
		}
		w.Header().Set("Content-Length", "8")
		fmt.Fprint(w, "half")
		w.(http.Flusher).Flush()
		time.Sleep(pause)
		fmt.Fprint(w, "done")
	}))
	t.Cleanup(backend.Close)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL), Timeout: 5 * time.Second}, nil)
	c := testClient(t)
	for path, want := range map[string]string{"/slow-headers": "late", "/slow-body": "halfdone"} {
		res, body := get(t, c, g.URL+path, nil)
		if res.StatusCode != http.StatusOK || body != want {
			t.Errorf("%s: %d %q", path, res.StatusCode, body)
		}
		if ex := g.lastExchange(t); ex.Err != nil {
			t.Errorf("%s: Err = %v", path, ex.Err)
		}
	}
}

// A client that goes away while the endpoint thinks makes the gateway close
// the upstream connection within about watchInterval.
func TestClientGoneClosesUpstream(t *testing.T) {
	t.Parallel()
	closedAfter := make(chan time.Duration, 1)
	arrived := make(chan time.Time, 1)
	backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequestHead(br); err != nil {
			return
		}
		arrived <- time.Now()
		start := time.Now()
		_, _ = br.ReadByte() // returns when the gateway closes the connection
		closedAfter <- time.Since(start)
	})
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend), Timeout: 8 * time.Second}, nil)
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
	if ex.Status != StatusClientClosedRequest {
		t.Fatalf("Status = %d (Err %v), want 499", ex.Status, ex.Err)
	}
	select {
	case d := <-closedAfter:
		if d > watchInterval+time.Second {
			t.Fatalf("upstream connection closed %v after the request arrived", d)
		}
	case <-time.After(testTimeout):
		t.Fatal("upstream connection never closed")
	}
}
