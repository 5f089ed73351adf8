package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestStreamingThroughGateway(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGateway(t, `
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: echo
    match: {path: "/{rest...}"}
    service: echo
`)

	t.Run("server-sent events arrive one by one", func(t *testing.T) {
		resp, err := http.Get(g.base + "/sse?n=3&interval=400ms")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		start := time.Now()
		var arrivals []time.Duration
		for len(arrivals) < 3 {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("after %d events: %v", len(arrivals), err)
			}
			if strings.HasPrefix(line, "data: ") {
				arrivals = append(arrivals, time.Since(start))
			}
		}
		if arrivals[0] > 300*time.Millisecond || arrivals[1] < 300*time.Millisecond {
			t.Fatalf("events were buffered, not streamed: arrivals %v", arrivals)
		}
	})

	t.Run("websocket echo and close 1001 on shutdown", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.base, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		typ, msg, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText || string(msg) != "ping" {
			t.Fatalf("echo: %v %q %v", typ, msg, err)
		}
		go func() { _ = g.Shutdown(context.Background()) }()
		_, _, err = c.Read(ctx)
		if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
			t.Fatalf("read after shutdown: %v (close status %d), want 1001", err, code)
		}
		select {
		case <-g.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("shutdown did not finish after closing the websocket")
		}
	})
}

// TestTruncatedUpstreamBody: a backend that promises more bytes than it sends
// must not look like a complete response to the client.
func TestTruncatedUpstreamBody(t *testing.T) {
	t.Parallel()
	be := newHijackBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part-of-it")
	g := startGateway(t, `
services:
`+serviceYAML("short", be)+`
routes:
  - name: short
    match: {path: /short}
    service: short
`)
	// The connection is cut either before the response head was flushed (the
	// client sees no response) or during the body (a read error).
	resp, err := http.Get(g.base + "/short")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a truncated upstream body reached the client as a complete response")
	}
	waitFor(t, 3*time.Second, "the aborted request to be logged", func() bool {
		return strings.Contains(g.access.String(), `"route":"short"`)
	})
}
