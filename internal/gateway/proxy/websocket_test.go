package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsEchoBackend echoes WebSocket messages and reports when its side of a
// connection ends.
func wsEchoBackend(t testing.TB) (*httptest.Server, chan error) {
	t.Helper()
	ended := make(chan error, 4)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				ended <- err
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				ended <- err
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s, ended
}

func TestWebSocketEchoAndGoingAway(t *testing.T) {
	t.Parallel()
	backend, ended := wsEchoBackend(t)
	p := newTestProxy(t)
	g := startGateway(t, p, Target{Pool: newPool(t, TransportOptions{}, backend.URL), WebSocket: true, Timeout: 50 * time.Millisecond}, nil)
	ctx := ctxTimeout(t)
	wsURL := "ws" + strings.TrimPrefix(g.URL, "http") + "/ws"

	c, res, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if res.StatusCode != http.StatusSwitchingProtocols || len(res.Header.Values("X-Request-Id")) != 1 {
		t.Fatalf("handshake %d, X-Request-Id %q", res.StatusCode, res.Header.Values("X-Request-Id"))
	}
	// Outlive the route timeout: it bounds only the handshake.
	time.Sleep(100 * time.Millisecond)
	for _, msg := range []string{"hello", strings.Repeat("x", 30000)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
		}
	}
	if n := p.Upgraded(); n != 1 {
		t.Fatalf("Upgraded() = %d", n)
	}

	if n := p.CloseUpgraded(ctx); n != 1 {
		t.Fatalf("CloseUpgraded closed %d connections, want 1", n)
	}
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("client read error %v (close status %d), want 1001", err, got)
	}
	select {
	case <-ended:
	case <-time.After(testTimeout):
		t.Fatal("upstream side of the connection was not closed")
	}
	ex := g.lastExchange(t)
	if ex.Status != http.StatusSwitchingProtocols || ex.Endpoint == "" {
		t.Fatalf("exchange Status=%d Endpoint=%q", ex.Status, ex.Endpoint)
	}
	if n := p.Upgraded(); n != 0 {
		t.Fatalf("Upgraded() = %d after close", n)
	}

	// After CloseUpgraded new handshakes are refused.
	_, res, err = websocket.Dial(ctx, wsURL, nil)
	if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("handshake after CloseUpgraded: %v, %v", err, res)
	}
}

func TestWebSocketClientCloseEndsBothSides(t *testing.T) {
	t.Parallel()
	backend, ended := wsEchoBackend(t)
	p := newTestProxy(t)
	g := startGateway(t, p, Target{Pool: newPool(t, TransportOptions{}, backend.URL), WebSocket: true}, nil)
	ctx := ctxTimeout(t)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("backend saw %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("backend did not see the close")
	}
	g.lastExchange(t)
	if n := p.Upgraded(); n != 0 {
		t.Fatalf("Upgraded() = %d", n)
	}
}

func TestCloseUpgradedWithNoConnections(t *testing.T) {
	t.Parallel()
	if n := newTestProxy(t).CloseUpgraded(context.Background()); n != 0 {
		t.Fatal(n)
	}
}

func TestCloseFrame(t *testing.T) {
	t.Parallel()
	want := []byte{0x88, 12, 0x03, 0xe9, 'g', 'o', 'i', 'n', 'g', ' ', 'a', 'w', 'a', 'y'}
	if got := closeFrame(CloseGoingAway, "going away"); !bytes.Equal(got, want) {
		t.Fatalf("% x", got)
	}
}

func TestFrameScanner(t *testing.T) {
	t.Parallel()
	frame := func(op byte, masked bool, n int) []byte {
		b := []byte{0x80 | op}
		m := byte(0)
		if masked {
			m = 0x80
		}
		switch {
		case n < 126:
			b = append(b, m|byte(n))
		case n < 1<<16:
			b = append(b, m|126, byte(n>>8), byte(n))
		default:
			b = append(b, m|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
		if masked {
			b = append(b, 1, 2, 3, 4)
		}
		return append(b, make([]byte, n)...)
	}
	stream := bytes.Join([][]byte{frame(1, false, 5), frame(2, false, 300), frame(2, true, 70000), frame(9, false, 0), frame(8, false, 2)}, nil)
	for _, step := range []int{1, 3, 7, 1000, len(stream)} {
		var s frameScanner
		bounds := 0
		for i := 0; i < len(stream); i += step {
			s.scan(stream[i:min(i+step, len(stream))])
			if s.atBoundary() {
				bounds++
			}
		}
		if !s.atBoundary() || !s.closeSent {
			t.Fatalf("step %d: boundary=%v close=%v", step, s.atBoundary(), s.closeSent)
		}
		if step == 1 && bounds != 5 {
			t.Fatalf("byte by byte: %d boundaries, want 5", bounds)
		}
	}
	var s frameScanner
	s.scan(frame(1, false, 10)[:5])
	if s.atBoundary() {
		t.Fatal("boundary inside a payload")
	}
}

// TestGoAwayNeverSplitsAFrame pins down that the close frame is not written
// while the endpoint is in the middle of a frame: the connection is closed
// without it instead of corrupting the stream.
func TestGoAwayNeverSplitsAFrame(t *testing.T) {
	t.Parallel()
	for _, partial := range []bool{false, true} {
		client, server := net.Pipe()
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(client)
			got <- b
		}()
		tc := &trackedConn{Conn: server, set: &connSet{conns: map[*trackedConn]struct{}{}}}
		msg := []byte{0x81, 5, 'h', 'e', 'l', 'l', 'o'}
		if partial {
			msg = msg[:4]
		}
		if _, err := tc.Write(msg); err != nil {
			t.Fatal(err)
		}
		tc.goAway(time.Now().Add(testTimeout))
		if _, err := tc.Write([]byte{0x81, 0}); err == nil {
			t.Fatal("write after goAway succeeded")
		}
		b := <-got
		wantFrame := !partial
		if hasClose := bytes.HasSuffix(b, closeFrame(CloseGoingAway, "going away")); hasClose != wantFrame {
			t.Fatalf("partial=%v: stream % x", partial, b)
		}
	}
}
