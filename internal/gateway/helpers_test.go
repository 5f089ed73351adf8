package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// syncBuffer is a goroutine-safe buffer for capturing the access log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the complete lines written so far.
func (s *syncBuffer) lines() []string {
	out := strings.Split(strings.TrimRight(s.String(), "\n"), "\n")
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

type testGateway struct {
	*Server
	path   string
	base   string
	admin  string
	access *syncBuffer
}

// writeConfig writes yaml to dir/portico.yaml and returns its path.
func writeConfig(t testing.TB, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "portico.yaml")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// baseConfig is prepended to every test configuration: loopback listeners on
// free ports, a short drain, the access log on.
const baseConfig = `
listeners:
  - name: public
    address: "127.0.0.1:0"
admin:
  address: "127.0.0.1:0"
shutdown:
  drain_timeout: 5s
`

// startGateway starts a gateway from baseConfig+yaml and stops it when the
// test ends.
func startGateway(t testing.TB, yaml string, opts ...Option) *testGateway {
	t.Helper()
	return startGatewayRaw(t, baseConfig+yaml, opts...)
}

// startGatewayRaw starts a gateway from a whole configuration file.
func startGatewayRaw(t testing.TB, yaml string, opts ...Option) *testGateway {
	t.Helper()
	path := writeConfig(t, t.TempDir(), yaml)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	access := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	all := append([]Option{WithLogger(logger), WithConfigPath(path), WithAccessLogOutput(access)}, opts...)
	s, err := New(cfg, all...)
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &testGateway{Server: s, path: path, base: "http://" + s.Addr("public"), admin: "http://" + s.AdminAddr(), access: access}
}

// rewrite replaces the gateway's configuration file.
func (g *testGateway) rewrite(t testing.TB, yaml string) {
	t.Helper()
	writeConfig(t, filepath.Dir(g.path), baseConfig+yaml)
}

func get(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp, string(b)
}

func decodeJSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func httpClient() *http.Client { return &http.Client{Timeout: 5 * time.Second} }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// newHijackBackend serves raw bytes on every connection and closes it; it
// returns the backend's URL.
func newHijackBackend(t testing.TB, raw string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(conn)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(conn, raw)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}
