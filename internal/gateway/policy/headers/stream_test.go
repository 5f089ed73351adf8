package headers

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/config"
)

func responseOps(t *testing.T) *Ops {
	t.Helper()
	ops, err := CompileResponse(config.HeaderOps{Set: map[string]string{"X-Policy": "on"}})
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// TestFlushThroughWrapper streams two chunks and checks the client receives
// the first before the handler writes the second, both with a direct
// http.Flusher assertion and through http.ResponseController.
func TestFlushThroughWrapper(t *testing.T) {
	flushers := map[string]func(w http.ResponseWriter) error{
		"Flusher": func(w http.ResponseWriter) error {
			w.(http.Flusher).Flush()
			return nil
		},
		"ResponseController": func(w http.ResponseWriter) error {
			return http.NewResponseController(w).Flush()
		},
	}
	for name, flush := range flushers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			firstRead := make(chan struct{})
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "first\n")
				if err := flush(w); err != nil {
					t.Errorf("flush: %v", err)
					return
				}
				select {
				case <-firstRead:
				case <-time.After(5 * time.Second):
					t.Error("the first chunk did not reach the client before the handler finished")
					return
				}
				_, _ = io.WriteString(w, "second\n")
			})
			srv := httptest.NewServer(NewResponse(next, responseOps(t)))
			defer srv.Close()

			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("X-Policy"); got != "on" {
				t.Errorf("X-Policy = %q, want on", got)
			}
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first\n" {
				t.Fatalf("first chunk %q, %v", line, err)
			}
			close(firstRead)
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" {
				t.Fatalf("second chunk %q, %v", rest, err)
			}
		})
	}
}

// TestHijackThroughWrapper hijacks the connection through the wrapper, as
// the proxy does for WebSocket upgrades, and speaks raw HTTP on it.
func TestHijackThroughWrapper(t *testing.T) {
	hijackers := map[string]func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error){
		"Hijacker": func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			return w.(http.Hijacker).Hijack()
		},
		"ResponseController": func(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
			return http.NewResponseController(w).Hijack()
		},
	}
	for name, hijack := range hijackers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := hijack(w)
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				defer conn.Close()
				_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
				_ = brw.Flush()
				msg, _ := brw.ReadString('\n')
				_, _ = brw.WriteString("echo: " + msg)
				_ = brw.Flush()
			})
			srv := httptest.NewServer(NewResponse(next, responseOps(t)))
			defer srv.Close()

			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			_, _ = io.WriteString(conn, "ping\n")
			line, err := br.ReadString('\n')
			if err != nil || line != "echo: ping\n" {
				t.Fatalf("echo %q, %v", line, err)
			}
		})
	}
}

// TestUnwrapReachesDeadlines checks that optional methods the wrapper does
// not implement itself are still found by http.ResponseController.
func TestUnwrapReachesDeadlines(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through the wrapper: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex through the wrapper: %v", err)
		}
	})
	srv := httptest.NewServer(NewResponse(next, responseOps(t)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestFlushWithoutFlusher(t *testing.T) {
	// A writer that cannot flush reports http.ErrNotSupported through the
	// controller instead of panicking.
	var w struct{ http.ResponseWriter }
	w.ResponseWriter = httptest.NewRecorder()
	rw := &responseWriter{w: w, ops: responseOps(t)}
	if err := http.NewResponseController(rw).Flush(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Flush() = %v, want not supported", err)
	}
	if got := w.Header().Get("X-Policy"); got != "on" {
		t.Errorf("rules not applied before flushing: X-Policy = %q", got)
	}
}
