package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// sseEvents parses every event of r, as "type|id|data" strings.
func sseEvents(r io.Reader) ([]string, error) {
	p := newSSEReader(r)
	var out []string
	for {
		ev, err := p.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out, err
		}
		out = append(out, ev.Type+"|"+string(ev.ID)+"|"+string(ev.Data))
	}
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string
	}{
		{"registry event", "id: 7\nevent: put\ndata: {\"a\":1}\n\n", []string{`put|7|{"a":1}`}},
		{"CRLF", "id: 7\r\nevent: put\r\ndata: x\r\n\r\n", []string{"put|7|x"}},
		{"lone CR", "id: 7\revent: put\rdata: x\r\r", []string{"put|7|x"}},
		{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n", []string{"message||a\nb\nc"}},
		{"multi-line data", "data: a\ndata:b\ndata:  c\ndata\n\n", []string{"message||a\nb\n c\n"}},
		{"comments and keepalive", ": keepalive\n\n: x\ndata: y\n:z\n\n", []string{"message||y"}},
		{"field without colon", "event\ndata\n\n", []string{"message||"}},
		{"BOM at start", "\xef\xbb\xbfdata: x\n\n", []string{"message||x"}},
		{"BOM later is data", "data: x\n\n\xef\xbb\xbfdata: y\n\n", []string{"message||x"}},
		{"id persists", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", []string{"message|1|a", "message|1|b", "message||c"}},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []string{"message|1|a", "message|1|b"}},
		{"event without data is dropped", "event: put\nid: 3\n\ndata: x\n\n", []string{"message|3|x"}},
		{"unknown fields and retry ignored", "retry: 10\nfoo: bar\ndata: x\n\n", []string{"message||x"}},
		{"unterminated event dropped", "data: x\n\ndata: y\n", []string{"message||x"}},
		{"unterminated line dropped", "data: x\n\ndata: y", []string{"message||x"}},
		{"empty stream", "", nil},
		{"one space stripped only", "data:   x\n\n", []string{"message||  x"}},
		{"colon in value", "data: a: b\n\n", []string{"message||a: b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := sseEvents(r)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(got, "\x1e") != strings.Join(tc.want, "\x1e") {
					t.Fatalf("events %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestSSEReaderLimits(t *testing.T) {
	t.Parallel()
	long := "data: " + strings.Repeat("x", maxSSELine) + "\n\n"
	if _, err := sseEvents(strings.NewReader(long)); !errors.Is(err, errSSETooLong) {
		t.Fatalf("over-long line: %v", err)
	}
	var many strings.Builder
	for many.Len() <= 2*maxSSEData {
		many.WriteString("data: " + strings.Repeat("y", 1000) + "\n")
	}
	if _, err := sseEvents(strings.NewReader(many.String())); !errors.Is(err, errSSETooLong) {
		t.Fatalf("over-long event: %v", err)
	}
	readErr := errors.New("connection reset")
	if _, err := sseEvents(io.MultiReader(strings.NewReader("data: x\n"), iotest.ErrReader(readErr))); !errors.Is(err, readErr) {
		t.Fatalf("read error: %v", err)
	}
}

// A stream that goes silent (a connection cut without a FIN, say) is
// reconnected once it was idle for the client's idle timeout.
func TestClientWatchReconnectsSilentStream(t *testing.T) {
	t.Parallel()
	mem := NewMemory(MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })
	h, err := NewHandler(mem, HandlerOptions{KeepaliveInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var watches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/watch") {
			watches.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.idle = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mem.Register(ctx, Instance{Service: "orders", ID: "o-0", Address: "127.0.0.1:1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for watches.Load() < 3 {
		if ctx.Err() != nil {
			t.Fatal("the silent stream was not reconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := mem.Register(ctx, Instance{Service: "orders", ID: "o-1", Address: "127.0.0.1:1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Next(ctx); err != nil || ev.Revision != 2 {
		t.Fatalf("event after reconnections: %+v, %v", ev, err)
	}
}

// Answers that reconnecting cannot fix end the watch with a clear error.
func TestClientWatchProtocolErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contentType, body, want string
	}{
		{"malformed event", "text/event-stream", "id: 2\nevent: put\ndata: {not json\n\n", `decode event "2"`},
		{"not an event stream", "text/html", "<html></html>", "not text/event-stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", tc.contentType)
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(srv.URL, ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w, err := c.Watch(ctx, "orders", 1)
			if err == nil {
				defer w.Close()
				_, err = w.Next(ctx)
			}
			var pe *protocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) || calls.Load() != 1 {
				t.Fatalf("error %v after %d requests, want a protocol error containing %q and no retry", err, calls.Load(), tc.want)
			}
		})
	}
}

// FuzzSSE checks that the parser never panics, never yields data over its
// limit, and parses a stream the same whether it arrives at once or byte by
// byte.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		"id: 1\nevent: put\ndata: {\"type\":\"put\"}\n\n",
		"\xef\xbb\xbf: keepalive\r\n\r\ndata\r\ndata: a\rid: 2\x00\r\r",
		"event\nid\nretry: x\n:\n\n\n",
		"data: a\r",
		"\r\n\n\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		whole, err1 := sseEvents(bytes.NewReader(b))
		bytewise, err2 := sseEvents(iotest.OneByteReader(bytes.NewReader(b)))
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("errors differ: %v / %v", err1, err2)
		}
		if strings.Join(whole, "\x1e") != strings.Join(bytewise, "\x1e") {
			t.Fatalf("events differ: %q / %q", whole, bytewise)
		}
		for _, ev := range whole {
			if len(ev) > maxSSEData+2*maxSSELine {
				t.Fatalf("event of %d bytes", len(ev))
			}
		}
	})
}

func BenchmarkSSEReader(b *testing.B) {
	ev := "id: 123456\nevent: put\ndata: " +
		`{"type":"put","instance":{"id":"orders-7f9c-1","service":"orders","version":"v2","address":"10.0.3.17:8080","protocol":"http","zone":"eu-west-1a","status":"passing","ttl":"10s","registered_at":"2025-01-01T00:00:00Z","last_heartbeat":"2025-01-01T00:00:05Z","revision":123456},"revision":123456}` +
		"\n\n: keepalive\n\n"
	stream := []byte(strings.Repeat(ev, 1000))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	r := bytes.NewReader(stream)
	for b.Loop() {
		r.Reset(stream)
		p := newSSEReader(r)
		n := 0
		for {
			if _, err := p.next(); err != nil {
				break
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d events", n)
		}
	}
}
