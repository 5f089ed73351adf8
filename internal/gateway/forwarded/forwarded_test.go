package forwarded

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func mustTrusted(t testing.TB, cidrs ...string) *Trusted {
	t.Helper()
	tr, err := NewTrusted(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestNewTrusted(t *testing.T) {
	t.Parallel()
	tr := mustTrusted(t, "10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", "::1", "::ffff:172.16.0.0/108", "198.51.100.77/24")
	cases := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true}, // mapped peer matches the IPv4 prefix
		{"11.0.0.1", false},
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"2001:db8:1::5", true},
		{"2001:db9::5", false},
		{"::1", true},
		{"172.16.3.4", true}, // mapped prefix stored as 172.16.0.0/12
		{"172.32.0.1", false},
		{"198.51.100.1", true}, // host bits in the prefix are ignored
		{"fe80::1%eth0", false},
	}
	for _, tc := range cases {
		if got := tr.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if tr.Contains(netip.Addr{}) {
		t.Error("zero Addr must not be trusted")
	}
	if tr.Len() != 6 {
		t.Errorf("Len = %d", tr.Len())
	}
}

func TestNewTrustedErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "foo", "10.0.0.0/33", "10.0.0.1/", "fe80::1%eth0", "::ffff:10.0.0.0/80", "10.0.0.0/8/8"} {
		if _, err := NewTrusted([]string{bad}); !errors.Is(err, ErrBadTrusted) {
			t.Errorf("NewTrusted(%q) err = %v, want ErrBadTrusted", bad, err)
		} else if !strings.Contains(err.Error(), "trusted proxy") {
			t.Errorf("error %q does not name the entry", err)
		}
	}
}

func TestNilTrustedTrustsNothing(t *testing.T) {
	t.Parallel()
	var tr *Trusted
	if tr.Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("nil Trusted trusted an address")
	}
	if tr.Len() != 0 {
		t.Fatal("nil Len")
	}
	h := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	if got := ClientIP(nil, "127.0.0.1:1234", h); got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("ClientIP with nil Trusted = %v", got)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	tr := mustTrusted(t, "10.0.0.0/8", "2001:db8::/32")
	cases := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client, no header", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer spoofing XFF is ignored", "203.0.113.5:4000", []string{"1.2.3.4"}, "203.0.113.5"},
		{"untrusted peer spoofing a trusted hop", "203.0.113.5:4000", []string{"10.0.0.1"}, "203.0.113.5"},
		{"trusted peer, one hop", "10.0.0.2:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted peer, chain with trusted hops", "10.0.0.2:4000", []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"client-supplied prefix is not believed", "10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.7"}, "198.51.100.7"},
		{"several header lines", "10.0.0.2:4000", []string{"6.6.6.6", "198.51.100.7", "10.1.1.1, 10.2.2.2"}, "198.51.100.7"},
		{"all hops trusted gives the leftmost", "10.0.0.2:4000", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"trusted peer without header", "10.0.0.2:4000", nil, "10.0.0.2"},
		{"IPv6 peer and hops", "[2001:db8::1]:4000", []string{"2001:db8::2, 2a00:1450::1, 2001:db8::3"}, "2a00:1450::1"},
		{"bracketed IPv6 with port", "[2001:db8::1]:4000", []string{"[2a00:1450::9]:443"}, "2a00:1450::9"},
		{"IPv4 with port", "10.0.0.2:4000", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:4000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"garbage stops the walk at the last good hop", "10.0.0.2:4000", []string{"198.51.100.7, garbage, 10.1.1.1"}, "10.1.1.1"},
		{"garbage right after the peer", "10.0.0.2:4000", []string{"1.2.3.4, <script>"}, "10.0.0.2"},
		{"unknown token", "10.0.0.2:4000", []string{"unknown"}, "10.0.0.2"},
		{"zoned hop is malformed", "10.0.0.2:4000", []string{"fe80::1%eth0"}, "10.0.0.2"},
		{"bad port", "10.0.0.2:4000", []string{"198.51.100.7:99999x"}, "10.0.0.2"},
		{"empty elements are skipped", "10.0.0.2:4000", []string{"198.51.100.7,, ,"}, "198.51.100.7"},
		{"empty line", "10.0.0.2:4000", []string{""}, "10.0.0.2"},
		{"unparsable remote", "not-an-addr", []string{"198.51.100.7"}, "invalid IP"},
		{"bare remote address", "10.0.0.2", []string{"198.51.100.7"}, "198.51.100.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.xff != nil {
				h["X-Forwarded-For"] = tc.xff
			}
			if got := ClientIP(tr, tc.remote, h).String(); got != tc.want {
				t.Errorf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientIPManyLines(t *testing.T) {
	t.Parallel()
	tr := mustTrusted(t, "10.0.0.0/8")
	lines := make([]string, 0, 200)
	lines = append(lines, "198.51.100.7")
	for range 199 {
		lines = append(lines, "10.0.0.1, 10.0.0.2")
	}
	h := http.Header{"X-Forwarded-For": lines}
	if got := ClientIP(tr, "10.0.0.9:1", h); got != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("got %v", got)
	}
}

func TestClientIPNoXFFDoesNotAllocate(t *testing.T) {
	tr := mustTrusted(t, "10.0.0.0/8")
	h := http.Header{"Accept": {"*/*"}}
	for _, remote := range []string{"10.0.0.2:4000", "203.0.113.5:4000", "[2001:db8::1]:4000"} {
		if n := testing.AllocsPerRun(100, func() { ClientIP(tr, remote, h) }); n != 0 {
			t.Errorf("ClientIP(%s) allocates %v times", remote, n)
		}
	}
	h["X-Forwarded-For"] = []string{"198.51.100.7, 10.1.1.1"}
	if n := testing.AllocsPerRun(100, func() { ClientIP(tr, "10.0.0.2:4000", h) }); n != 0 {
		t.Errorf("ClientIP with XFF allocates %v times", n)
	}
}

func TestPeerAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1:80":         "192.0.2.1",
		"[2001:db8::1]:80":     "2001:db8::1",
		"[::ffff:192.0.2.1]:8": "192.0.2.1",
		"[fe80::1%eth0]:80":    "fe80::1",
		"192.0.2.1":            "192.0.2.1",
	} {
		a, ok := PeerAddr(in)
		if !ok || a.String() != want {
			t.Errorf("PeerAddr(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	if _, ok := PeerAddr("@"); ok {
		t.Error("PeerAddr(@) ok")
	}
}

func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "1.1.1.1, 10.0.0.1", "[2001:db8::1]:443", "::ffff:1.2.3.4", "a,b,,c", "[", "[]:", "1.2.3.4:", "fe80::1%x", ""} {
		f.Add(s)
	}
	tr := mustTrusted(f, "10.0.0.0/8", "2001:db8::/32")
	f.Fuzz(func(t *testing.T, xff string) {
		got := ClientIP(tr, "10.0.0.2:1", http.Header{"X-Forwarded-For": {xff}})
		if !got.IsValid() {
			t.Fatalf("invalid client for %q", xff)
		}
		if got.Is4In6() || got.Zone() != "" {
			t.Fatalf("client %v not normalized", got)
		}
		// The client is the peer or one of the header's elements.
		if got == netip.MustParseAddr("10.0.0.2") {
			return
		}
		for _, item := range strings.Split(xff, ",") {
			if a, ok := parseHop(strings.TrimSpace(item)); ok && a == got {
				return
			}
		}
		t.Fatalf("client %v is neither the peer nor an element of %q", got, xff)
	})
}

func BenchmarkClientIP(b *testing.B) {
	tr := mustTrusted(b, "10.0.0.0/8")
	b.Run("no-xff", func(b *testing.B) {
		h := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			ClientIP(tr, "10.0.0.2:4000", h)
		}
	})
	b.Run("xff-3-hops", func(b *testing.B) {
		h := http.Header{"X-Forwarded-For": {"198.51.100.7, 10.1.1.1, 10.2.2.2"}}
		b.ReportAllocs()
		for b.Loop() {
			ClientIP(tr, "10.0.0.2:4000", h)
		}
	})
}
