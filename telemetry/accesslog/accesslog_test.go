package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// syncBuffer is a bytes.Buffer safe to read while the writer goroutine writes.
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

func newLogger(t *testing.T, opts Options) *Logger {
	t.Helper()
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func sampleExchange() *exchange.Exchange {
	return &exchange.Exchange{
		Start:            time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600)),
		ID:               "req-1",
		ClientIP:         netip.MustParseAddr("203.0.113.7"),
		Path:             "/users/42",
		Route:            "users",
		Service:          "users-svc",
		Endpoint:         "10.0.0.5:8080",
		Status:           200,
		BytesIn:          12,
		BytesOut:         345,
		UpstreamStart:    time.Date(2026, 3, 4, 4, 6, 7, 200000000, time.UTC),
		UpstreamDuration: 1500 * time.Microsecond,
	}
}

func TestFormatLine(t *testing.T) {
	l := newLogger(t, Options{Output: io.Discard, RedactQuery: []string{"token"}})
	x := sampleExchange()
	now := x.Start.Add(2*time.Millisecond + 345678*time.Nanosecond)

	tests := []struct {
		name  string
		edit  func(x *exchange.Exchange)
		query string
		want  string
	}{
		{
			name:  "proxied request",
			query: "a=1&token=s3cret",
			want: `{"time":"2026-03-04T04:06:07.123456789Z","request_id":"req-1","route":"users","service":"users-svc",` +
				`"endpoint":"10.0.0.5:8080","method":"GET","path":"/users/42?a=1&token=REDACTED","status":200,` +
				`"bytes_in":12,"bytes_out":345,"duration_ms":2.346,"upstream_ms":1.500,"client_ip":"203.0.113.7",` +
				`"proto":"HTTP/1.1"}` + "\n",
		},
		{
			name: "no route, no upstream, error",
			edit: func(x *exchange.Exchange) {
				x.Route, x.Service, x.Endpoint = "", "", ""
				x.UpstreamStart, x.UpstreamDuration = time.Time{}, 0
				x.Status = 413
				x.Err = fmt.Errorf("read body: %w", &http.MaxBytesError{Limit: 10})
			},
			want: `{"time":"2026-03-04T04:06:07.123456789Z","request_id":"req-1","route":"","service":"",` +
				`"endpoint":"","method":"GET","path":"/users/42","status":413,` +
				`"bytes_in":12,"bytes_out":345,"duration_ms":2.346,"client_ip":"203.0.113.7",` +
				`"proto":"HTTP/1.1","error":"body_too_large"}` + "\n",
		},
		{
			name: "grpc",
			edit: func(x *exchange.Exchange) {
				x.GRPCStatus = "14"
				x.ClientIP = netip.Addr{}
			},
			want: `{"time":"2026-03-04T04:06:07.123456789Z","request_id":"req-1","route":"users","service":"users-svc",` +
				`"endpoint":"10.0.0.5:8080","method":"GET","path":"/users/42","status":200,` +
				`"bytes_in":12,"bytes_out":345,"duration_ms":2.346,"upstream_ms":1.500,"client_ip":"",` +
				`"proto":"HTTP/1.1","grpc_status":"14"}` + "\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := *x
			if tc.edit != nil {
				tc.edit(&x)
			}
			got := string(l.format(&line{}, &x, "GET", tc.query, "HTTP/1.1", now))
			if got != tc.want {
				t.Errorf("line:\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("line is not valid JSON: %s", got)
			}
		})
	}
}

func TestLogWritesOneLinePerRequest(t *testing.T) {
	var out syncBuffer
	l := newLogger(t, Options{Output: &out})
	for i := range 100 {
		x := sampleExchange()
		x.ID = fmt.Sprintf("req-%d", i)
		l.Log(x, "POST", "", "HTTP/2.0")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 100 {
		t.Fatalf("got %d lines, want 100", len(lines))
	}
	for i, ln := range lines {
		var v struct {
			RequestID string  `json:"request_id"`
			Method    string  `json:"method"`
			Duration  float64 `json:"duration_ms"`
		}
		if err := json.Unmarshal([]byte(ln), &v); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, ln)
		}
		if want := fmt.Sprintf("req-%d", i); v.RequestID != want || v.Method != "POST" || v.Duration <= 0 {
			t.Errorf("line %d = %+v, want request_id %s, method POST, positive duration", i, v, want)
		}
	}
}

func TestFieldOrder(t *testing.T) {
	l := newLogger(t, Options{Output: io.Discard})
	x := sampleExchange()
	x.GRPCStatus = "0"
	x.Err = context.Canceled
	b := l.format(&line{}, x, "GET", "q=1", "HTTP/2.0", time.Now())
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
	}
	want := "time request_id route service endpoint method path status bytes_in bytes_out duration_ms upstream_ms client_ip proto grpc_status error"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys:\n got %s\nwant %s", got, want)
	}
}

func TestRedactQuery(t *testing.T) {
	l := newLogger(t, Options{Output: io.Discard, RedactQuery: []string{"token", "API_KEY", "pass word"}})
	tests := []struct {
		query, want string
	}{
		{"", "/p"},
		{"a=1", "/p?a=1"},
		{"token=abc", "/p?token=REDACTED"},
		{"TOKEN=abc&Api_Key=k", "/p?TOKEN=REDACTED&Api_Key=REDACTED"},
		{"token=a&token=b&x=token", "/p?token=REDACTED&token=REDACTED&x=token"},
		{"%74oken=abc", "/p?%74oken=REDACTED"},
		{"%54%4F%4b%45%6e=abc", "/p?%54%4F%4b%45%6e=REDACTED"},
		{"api%5Fkey=abc", "/p?api%5Fkey=REDACTED"},
		{"pass+word=x&pass%20word=y", "/p?pass+word=REDACTED&pass%20word=REDACTED"},
		{"token", "/p?token"},
		{"token=", "/p?token=REDACTED"},
		{"a=1;token=abc", "/p?a=1;token=REDACTED"},
		{"a=1&&token=x&", "/p?a=1&&token=REDACTED&"},
		{"tokens=kept&xtoken=1", "/p?tokens=kept&xtoken=1"},
		{"%zztoken=1&%7=2", "/p?%zztoken=1&%7=2"},
		{"token=a=b", "/p?token=REDACTED"},
		{`a="x"`, `/p?a=\"x\"`},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			x := &exchange.Exchange{Path: "/p"}
			b := l.format(&line{}, x, "GET", tc.query, "HTTP/1.1", time.Now())
			if !json.Valid(b) {
				t.Fatalf("invalid JSON: %s", b)
			}
			want := `"path":"` + tc.want + `"`
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("line %s\ndoes not contain %s", b, want)
			}
			if strings.Contains(string(b), "abc") {
				t.Errorf("secret leaked: %s", b)
			}
		})
	}
}

func TestRedactNothingByDefault(t *testing.T) {
	l := newLogger(t, Options{Output: io.Discard})
	b := l.format(&line{}, &exchange.Exchange{Path: "/"}, "GET", "token=abc", "HTTP/1.1", time.Now())
	if !bytes.Contains(b, []byte(`"path":"/?token=abc"`)) {
		t.Errorf("line %s", b)
	}
}

// hostile holds inputs a client controls that must never break a line.
var hostile = []string{
	"a\r\nb",
	"\n{\"injected\":true}\n",
	"nul\x00byte",
	`quote" and \backslash`,
	"\xff\xfe invalid \xc3",
	"\xe2\x80\xa8 line and paragraph \xe2\x80\xa9 separators",
	"del\x7f and \x1b[31mansi",
	"tab\there",
	"ünïcödé ✓ 🚀",
	strings.Repeat("A\r\n\"\xff", 2560),
}

func TestHostileValuesStayOneLine(t *testing.T) {
	var out syncBuffer
	l := newLogger(t, Options{Output: &out})
	for _, v := range hostile {
		x := sampleExchange()
		x.ID, x.Path, x.Route, x.Endpoint, x.GRPCStatus = v, v, v, v, v
		x.Err = errors.New(v)
		l.Log(x, v, v, v)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(hostile) {
		t.Fatalf("got %d lines for %d requests", len(lines), len(hostile))
	}
	for i, ln := range lines {
		if !json.Valid([]byte(ln)) {
			t.Fatalf("line %d is not valid JSON: %q", i, ln)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(ln), &v); err != nil {
			t.Fatal(err)
		}
		want := string([]rune(hostile[i])) // invalid bytes become U+FFFD
		for _, k := range []string{"request_id", "route", "endpoint", "method", "proto", "grpc_status"} {
			if v[k] != want {
				t.Errorf("line %d: %s = %q, want %q", i, k, v[k], want)
			}
		}
		if v["error"] != ClassOther {
			t.Errorf("line %d: error = %q, want the class, not the message", i, v["error"])
		}
	}
}

func FuzzAppendEscaped(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		if bytes.ContainsAny(b, "\r\n") {
			t.Fatalf("escaped %q contains a line break: %s", s, b)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("escaped %q: %v: %s", s, err, b)
		}
		if want := string([]rune(s)); got != want {
			t.Fatalf("round trip of %q = %q, want %q", s, got, want)
		}
	})
}

// blockingWriter blocks every Write until release is closed, and reports
// on entered when the first Write starts.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	buf     syncBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.buf.Write(p)
}

func TestDropsWhenOutputBlocks(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	var onDrop atomic.Int64
	l, err := New(Options{Output: w, BufferSize: 4, FlushInterval: time.Millisecond, OnDrop: func() { onDrop.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer goroutine never wrote")
	}

	const n = 100
	start := time.Now()
	for range n {
		l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Log blocked for %s behind a blocked output", d)
	}
	if got, want := l.Dropped(), uint64(n-4); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	if got := onDrop.Load(); got != int64(l.Dropped()) {
		t.Errorf("OnDrop called %d times, want %d", got, l.Dropped())
	}

	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(w.buf.String(), "\n"); got != 1+4 {
		t.Errorf("Close flushed %d lines, want %d", got, 1+4)
	}
}

func TestFlushInterval(t *testing.T) {
	var out syncBuffer
	l := newLogger(t, Options{Output: &out, FlushInterval: 10 * time.Millisecond})
	l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
	deadline := time.Now().Add(5 * time.Second)
	for out.String() == "" {
		if time.Now().After(deadline) {
			t.Fatal("line not written without Close")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseIdempotentAndLogAfterClose(t *testing.T) {
	var out syncBuffer
	var drops atomic.Int64
	l, err := New(Options{Output: &out, OnDrop: func() { drops.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
	if got := strings.Count(out.String(), "\n"); got != 1 {
		t.Errorf("got %d lines, want 1", got)
	}
	if drops.Load() != 0 || l.Dropped() != 0 {
		t.Errorf("a line logged after Close counted as a queue drop")
	}
}

// flakyWriter fails its first Write and succeeds afterwards.
type flakyWriter struct {
	calls int
	buf   syncBuffer
}

var errDiskFull = errors.New("disk full")

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls == 1 {
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

func TestWriteErrorDoesNotStopLogging(t *testing.T) {
	w := &flakyWriter{}
	l, err := New(Options{Output: w, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.Log(sampleExchange(), "GET", "", "HTTP/1.1")
		if w.buf.String() != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("logging did not recover after a write error")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := l.Close(); !errors.Is(err, errDiskFull) {
		t.Errorf("Close() = %v, want the first write error", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no output", Options{}},
		{"negative buffer", Options{Output: io.Discard, BufferSize: -1}},
		{"negative interval", Options{Output: io.Discard, FlushInterval: -time.Second}},
		{"empty redact name", Options{Output: io.Discard, RedactQuery: []string{""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := New(tc.opts); err == nil {
				_ = l.Close()
				t.Fatal("New accepted invalid options")
			}
		})
	}
}

type classed struct{}

func (classed) Error() string      { return "refused" }
func (classed) ErrorClass() string { return "upstream_refused" }

func TestErrorClass(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{context.Canceled, ClassClientGone},
		{fmt.Errorf("copy: %w", context.Canceled), ClassClientGone},
		{context.DeadlineExceeded, ClassTimeout},
		{&net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, ClassTimeout},
		{&http.MaxBytesError{Limit: 1}, ClassBodyTooLarge},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", classed{})), "upstream_refused"},
		{errors.Join(errors.New("x"), context.Canceled), ClassClientGone},
		{errors.Join(errors.New("x"), errors.New("y")), ClassOther},
		{io.ErrUnexpectedEOF, ClassOther},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := errorClass(tc.err, 0); got != tc.want {
				t.Errorf("errorClass(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestAppendMillis(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{-time.Second, "0.000"},
		{499, "0.000"},
		{500, "0.001"},
		{1234567, "1.235"},
		{1<<63 - 1, "9223372036854.776"},
		{12*time.Second + 3*time.Millisecond + 40*time.Microsecond, "12003.040"},
	}
	for _, tc := range tests {
		if got := string(appendMillis(nil, tc.d)); got != tc.want {
			t.Errorf("appendMillis(%d) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

func BenchmarkLog(b *testing.B) {
	l, err := New(Options{Output: io.Discard, RedactQuery: []string{"token", "api_key"}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	x := sampleExchange()
	x.Start = time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		l.Log(x, "GET", "page=2&token=abc&sort=name", "HTTP/1.1")
	}
	b.StopTimer()
	if d := l.Dropped(); d > 0 {
		b.Logf("dropped %d lines", d)
	}
}

func BenchmarkLogParallel(b *testing.B) {
	l, err := New(Options{Output: io.Discard, RedactQuery: []string{"token", "api_key"}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		x := sampleExchange()
		x.Start = time.Now()
		for pb.Next() {
			l.Log(x, "GET", "page=2&token=abc&sort=name", "HTTP/1.1")
		}
	})
}
