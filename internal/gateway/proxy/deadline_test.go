package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestDeadlineHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		d    time.Duration
		isOK bool
	}{
		{"1500", 1500 * time.Millisecond, true}, {"0", 0, false}, {"-1", 0, false}, {"1.5", 0, false},
		{"", 0, false}, {"1234567890123", 0, false},
	} {
		if d, ok := ParseRequestTimeout(tc.in); ok != tc.isOK || d != tc.d {
			t.Errorf("ParseRequestTimeout(%q) = %v, %v", tc.in, d, ok)
		}
	}
	for _, tc := range []struct {
		in   string
		d    time.Duration
		isOK bool
	}{
		{"100m", 100 * time.Millisecond, true}, {"2S", 2 * time.Second, true}, {"1H", time.Hour, true},
		{"5u", 5 * time.Microsecond, true}, {"99999999n", 99999999, true}, {"123456789m", 0, false},
		{"10", 0, false}, {"m", 0, false}, {"0m", 0, false}, {"1x", 0, false}, {"-1S", 0, false},
	} {
		if d, ok := ParseGRPCTimeout(tc.in); ok != tc.isOK || d != tc.d {
			t.Errorf("ParseGRPCTimeout(%q) = %v, %v", tc.in, d, ok)
		}
	}
	for d, want := range map[time.Duration]string{
		1500 * time.Microsecond: "2m", 0: "1m", 30 * time.Second: "30000m", 200 * time.Hour: "720000S",
	} {
		if got := FormatGRPCTimeout(d); got != want {
			t.Errorf("FormatGRPCTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestDeadlinePropagation: the endpoint learns the attempt's deadline; a
// sooner one from the client is kept; gRPC requests get grpc-timeout.
func TestDeadlinePropagation(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 4)
	be := newHeaderBackend(t, seen)
	g := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, be), Timeout: 3 * time.Second, PropagateDeadline: true}, nil)
	do(t, g, "GET", "", nil)
	h := <-seen
	if d, ok := ParseRequestTimeout(h.Get(HeaderRequestTimeout)); !ok || d > 3*time.Second || d < 2*time.Second {
		t.Errorf("X-Request-Timeout = %q", h.Get(HeaderRequestTimeout))
	}
	if h.Get("Grpc-Timeout") != "" {
		t.Error("grpc-timeout on a plain HTTP request")
	}
	do(t, g, "POST", "x", http.Header{HeaderRequestTimeout: {"250"}, "Content-Type": {"application/grpc"}, "Grpc-Timeout": {"100m"}})
	h = <-seen
	if h.Get(HeaderRequestTimeout) != "250" || h.Get("Grpc-Timeout") != "100m" {
		t.Errorf("client deadline not kept: %q, %q", h.Get(HeaderRequestTimeout), h.Get("Grpc-Timeout"))
	}
	off := startGateway(t, newTestProxy(t), Target{Pool: retryPool(t, be), Timeout: 3 * time.Second}, nil)
	do(t, off, "GET", "", http.Header{HeaderRequestTimeout: {"99999"}})
	if h = <-seen; h.Get(HeaderRequestTimeout) != "99999" {
		t.Errorf("propagation off changed the header to %q", h.Get(HeaderRequestTimeout))
	}
}

func newHeaderBackend(t testing.TB, seen chan<- http.Header) string {
	s := newCountingBackend(t, 200, 0)
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
	return s.URL
}

func FuzzParseTimeouts(f *testing.F) {
	for _, s := range []string{"100", "100m", "1S", "99999999H", "", "0", "1x", "-5m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := ParseRequestTimeout(s); ok && d <= 0 {
			t.Fatalf("ParseRequestTimeout(%q) = %v", s, d)
		}
		if d, ok := ParseGRPCTimeout(s); ok {
			if d <= 0 {
				t.Fatalf("ParseGRPCTimeout(%q) = %v", s, d)
			}
			if back, ok := ParseGRPCTimeout(FormatGRPCTimeout(d)); !ok || back < d {
				t.Fatalf("format of %v parses to %v, %v", d, back, ok)
			}
		}
	})
}
