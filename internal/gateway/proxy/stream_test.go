package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// steppedBackend writes one piece, flushes, and waits for the test before
// writing the next, so a test can prove pieces arrive one by one.
func steppedBackend(t testing.TB, contentType string, pieces []string) (*httptest.Server, chan struct{}) {
	t.Helper()
	next := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		for i, p := range pieces {
			if i > 0 {
				select {
				case <-next:
				case <-time.After(testTimeout):
					return
				}
			}
			fmt.Fprint(w, p)
			http.NewResponseController(w).Flush()
		}
	}))
	t.Cleanup(s.Close)
	return s, next
}

func TestServerSentEventsArriveOneByOne(t *testing.T) {
	t.Parallel()
	backend, next := steppedBackend(t, "text/event-stream", []string{"data: one\n\n", "data: two\n\n"})
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL), Timeout: time.Second}, nil)
	res, err := testClient(t).Get(g.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	// The backend holds the second event until the first has been read
	// through the gateway.
	if ev := readEvent(t, br); ev != "data: one" {
		t.Fatalf("first event %q", ev)
	}
	close(next)
	if ev := readEvent(t, br); ev != "data: two" {
		t.Fatalf("second event %q", ev)
	}
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, line)
	}
}

func TestChunkedResponseStreams(t *testing.T) {
	t.Parallel()
	backend, next := steppedBackend(t, "application/x-ndjson", []string{`{"n":1}` + "\n", `{"n":2}` + "\n"})
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	res, err := testClient(t).Get(g.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ContentLength != -1 {
		t.Fatalf("ContentLength %d, want a chunked response", res.ContentLength)
	}
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != `{"n":1}`+"\n" {
		t.Fatalf("first chunk %q %v", line, err)
	}
	close(next)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != `{"n":2}`+"\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
}

// TestTruncatedUpstreamBodyAbortsClient pins down that a response whose body
// ends before its announced end is cut at the client too, instead of
// looking complete.
func TestTruncatedUpstreamBodyAbortsClient(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"content-length": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nonly twenty bytes...",
		"chunked":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n5\r\nhello\r\n",
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := readRequestHead(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, answer)
				// Close without finishing the body.
			})
			pool := newPool(t, TransportOptions{}, backend)
			g := startGateway(t, newTestProxy(t), Target{Pool: pool}, nil)
			// The abort may come before the buffered headers were flushed
			// (the client sees no response at all) or during the body.
			res, err := testClient(t).Get(g.URL + "/t")
			if err == nil {
				body, rerr := io.ReadAll(res.Body)
				res.Body.Close()
				if rerr == nil {
					t.Fatalf("client read a clean response %q; want an error", body)
				}
			}
			ex := g.lastExchange(t)
			if ex.Err == nil {
				t.Error("Err not recorded")
			}
			if n := pool.Endpoints()[0].InFlight(); n != 0 {
				t.Errorf("in flight %d", n)
			}
		})
	}
}

func TestUnexpectedSwitchingProtocolsIs502(t *testing.T) {
	t.Parallel()
	backend := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequestHead(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		_, _ = io.Copy(io.Discard, br)
	})
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend), WebSocket: true}, nil)
	res, body := get(t, testClient(t), g.URL+"/", nil)
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d %s", res.StatusCode, body)
	}
	problemBody(t, res, body)
	if ex := g.lastExchange(t); !errors.Is(ex.Err, ErrUnexpectedUpgrade) {
		t.Fatalf("Err = %v", ex.Err)
	}
}

func TestUpgrades(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t)
	cases := []struct {
		name      string
		websocket bool
		upgrade   string
		status    int
		// forwarded reports whether the endpoint saw the Upgrade header.
		forwarded bool
	}{
		{"h2c upgrade stripped", true, "h2c", 200, false},
		{"unknown protocol stripped", true, "foo/1", 200, false},
		{"websocket refused when disabled", false, "websocket", 400, false},
		{"non-printable refused", true, "websocket\xff", 400, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL), WebSocket: tc.websocket}, nil)
			conn, err := net.Dial("tcp", g.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(testTimeout))
			fmt.Fprintf(conn, "GET /u HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: %s\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", tc.upgrade)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				problemBody(t, res, string(body))
				return
			}
			if got := res.Header.Get("Got-Upgrade") + res.Header.Get("Got-Connection"); (got != "") != tc.forwarded {
				t.Fatalf("endpoint saw Upgrade/Connection %q", got)
			}
		})
	}
}
