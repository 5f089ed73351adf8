package ipfilter

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	both, _ := NewFilter(prefixes("10.0.0.0/8", "2001:db8::/32"), prefixes("10.66.0.0/16", "10.1.2.3/32"))
	denyOnly, _ := NewFilter(nil, prefixes("192.0.2.0/24"))
	tests := []struct {
		f    *Filter
		ip   string
		want bool
	}{
		{both, "10.1.1.1", true},
		{both, "10.66.1.1", false}, // deny wins over allow
		{both, "10.1.2.3", false},
		{both, "::ffff:10.1.1.1", true}, // mapped addresses are compared unmapped
		{both, "::ffff:10.66.0.1", false},
		{both, "2001:db8::1", true},
		{both, "192.0.2.1", false}, // not in the allow list
		{both, "", false},          // unknown address, allow list present
		{denyOnly, "192.0.2.77", false},
		{denyOnly, "::ffff:192.0.2.77", false},
		{denyOnly, "198.51.100.1", true},
		{denyOnly, "", true},
	}
	for _, tc := range tests {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := tc.f.Allowed(ip); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if _, err := NewFilter(nil, nil); err != ErrEmpty {
		t.Errorf("empty filter: %v", err)
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	f, _ := NewFilter(nil, prefixes("192.0.2.0/24"))
	denied := 0
	reached := 0
	h := New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }), f, func() { denied++ })
	for _, tc := range []struct {
		ip   string
		code int
	}{{"192.0.2.5", 403}, {"198.51.100.5", 200}} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		// A forged X-Forwarded-For means nothing here: only the exchange's
		// client IP, derived by the entry through trusted proxies, counts.
		r.Header.Set("X-Forwarded-For", "198.51.100.5")
		x := &exchange.Exchange{ID: "id-1", ClientIP: netip.MustParseAddr(tc.ip)}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r.WithContext(exchange.NewContext(r.Context(), x)))
		if w.Code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.ip, w.Code, tc.code)
		}
		if tc.code == 403 && (w.Header().Get("Content-Type") != "application/problem+json" || x.Err != ErrDenied) {
			t.Errorf("%s: %v, err %v", tc.ip, w.Header(), x.Err)
		}
	}
	if denied != 1 || reached != 1 {
		t.Errorf("denied %d, reached %d", denied, reached)
	}
}

func BenchmarkAllowed(b *testing.B) {
	f, _ := NewFilter(prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), prefixes("10.66.0.0/16"))
	ip := netip.MustParseAddr("192.168.7.9")
	b.ReportAllocs()
	for b.Loop() {
		if !f.Allowed(ip) {
			b.Fatal("refused")
		}
	}
}
