package discovery

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzDNSName checks that a name the configuration accepts, with each of
// its search domains, is a fully qualified name that packs into a query.
func FuzzDNSName(f *testing.F) {
	for _, s := range []string{"orders", "orders.shop.svc.cluster.local", "_http._tcp.orders.", "a..b", "10.0.0.1",
		"x\\046y", strings.Repeat("a", 64) + ".test", "ä.test", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkDNSName(s) != nil {
			return
		}
		for _, name := range searchList(s, 3, []string{"svc.cluster.local", "."}) {
			if !dns.IsFqdn(name) {
				t.Fatalf("%q: candidate %q is not fully qualified", s, name)
			}
			q := new(dns.Msg)
			q.SetQuestion(name, dns.TypeA)
			if _, err := q.Pack(); err != nil {
				t.Fatalf("%q: candidate %q does not pack: %v", s, name, err)
			}
		}
	})
}

// FuzzDNSReply feeds whatever a resolver may send to the code that reads
// replies: it must not panic, and alias chains stay bounded.
func FuzzDNSReply(f *testing.F) {
	seeds := [][]string{
		{"orders.test. 30 IN CNAME real.test.", "real.test. 30 IN A 127.0.0.1", "real.test. 30 IN AAAA ::1"},
		{"loop.test. 30 IN CNAME loop.test."},
		{"_s._tcp.test. 30 IN SRV 10 5 8080 a.test.", "a.test. 30 IN A 10.0.0.1"},
		{"test. 30 IN SOA ns.test. admin.test. 1 60 60 60 5"},
	}
	for _, rrs := range seeds {
		m := new(dns.Msg)
		m.SetQuestion("orders.test.", dns.TypeA)
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
			m.Ns = append(m.Ns, dns.Copy(rr))
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// An A record without data.
	f.Add([]byte("\x00\x01\x81\x80\x00\x00\x00\x01\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil {
			return
		}
		name := "a."
		if len(m.Question) > 0 {
			name = m.Question[0].Name
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
			for _, sec := range [][]dns.RR{m.Answer, m.Extra} {
				c, err := chase(sec, name, qt)
				if c.hops > maxCNAMEs {
					t.Fatalf("followed %d aliases", c.hops)
				}
				if err == nil && c.hops == 0 && c.end != name {
					t.Fatalf("chain moved to %q without an alias", c.end)
				}
				for _, a := range appendAddrs(nil, c.rrs) {
					if !a.IsValid() || a.IsUnspecified() || a.Is4In6() {
						t.Fatalf("address %v kept", a)
					}
				}
			}
		}
		negativeTTL(m)
	})
}
