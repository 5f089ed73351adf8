package discovery

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsZone is a DNS server on one loopback port, UDP and TCP, answering
// from records a test changes while a provider runs. It follows CNAME
// chains and puts SRV targets' addresses in the additional section, like
// a recursive resolver, unless told otherwise.
type dnsZone struct {
	addr string

	mu       sync.Mutex
	rrs      []dns.RR
	rcode    int  // when not 0, the answer to every query (SERVFAIL, REFUSED)
	silent   bool // no answer at all
	truncUDP bool // UDP answers are empty and truncated
	noExtra  bool // no additional section
	noChase  bool // CNAMEs are answered, not followed
	log      []dnsQuery
}

type dnsQuery struct {
	name  string
	qtype uint16
	net   string
	at    time.Time
}

func startDNSZone(t *testing.T, records ...string) *dnsZone {
	t.Helper()
	z := &dnsZone{}
	z.set(t, records...)
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// UDP and TCP must share the port: a resolver is one host:port.
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("no port free for both UDP and TCP: %v", err)
	}
	z.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return z
}

// set replaces the zone's records, given in zone file syntax.
func (z *dnsZone) set(t *testing.T, records ...string) {
	t.Helper()
	rrs := make([]dns.RR, len(records))
	for i, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		rrs[i] = rr
	}
	z.mu.Lock()
	z.rrs = rrs
	z.mu.Unlock()
}

func (z *dnsZone) with(f func(z *dnsZone)) {
	z.mu.Lock()
	defer z.mu.Unlock()
	f(z)
}

// queries returns the queries received for name and qtype (0: any).
func (z *dnsZone) queries(name string, qtype uint16) []dnsQuery {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []dnsQuery
	for _, q := range z.log {
		if q.name == name && (qtype == 0 || q.qtype == qtype) {
			out = append(out, q)
		}
	}
	return out
}

func (z *dnsZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	network := w.RemoteAddr().Network()
	z.log = append(z.log, dnsQuery{name: strings.ToLower(q.Name), qtype: q.Qtype, net: network, at: time.Now()})
	if z.silent {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	if z.rcode != 0 {
		m.Rcode = z.rcode
		_ = w.WriteMsg(m)
		return
	}
	m.Answer = z.answer(q.Name, q.Qtype)
	if len(m.Answer) == 0 {
		if len(z.answer(q.Name, dns.TypeANY)) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. admin.test. 1 60 60 60 3600")
		m.Ns = []dns.RR{soa}
	}
	if q.Qtype == dns.TypeSRV && !z.noExtra {
		for _, rr := range m.Answer {
			if s, ok := rr.(*dns.SRV); ok {
				m.Extra = append(m.Extra, z.answer(s.Target, dns.TypeA)...)
				m.Extra = append(m.Extra, z.answer(s.Target, dns.TypeAAAA)...)
			}
		}
	}
	if z.truncUDP && network == "udp" {
		m.Truncated, m.Answer, m.Extra = true, nil, nil
	}
	_ = w.WriteMsg(m)
}

// answer returns name's records of type qtype (any type for TypeANY),
// preceded by the CNAMEs leading to them.
func (z *dnsZone) answer(name string, qtype uint16) []dns.RR {
	var out []dns.RR
	for range 12 {
		var alias *dns.CNAME
		n := len(out)
		for _, rr := range z.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			if h.Rrtype == qtype || qtype == dns.TypeANY {
				out = append(out, dns.Copy(rr))
			} else if cn, ok := rr.(*dns.CNAME); ok {
				alias = cn
			}
		}
		if len(out) > n || alias == nil {
			break
		}
		out = append(out, dns.Copy(alias))
		if z.noChase {
			break
		}
		name = alias.Target
	}
	return out
}

// dnsEvent is one call to a sink: an Update, or a Fail when err is set.
type dnsEvent struct {
	eps []Endpoint
	err error
}

// dnsSink records the calls a provider makes.
type dnsSink struct {
	mu     sync.Mutex
	events []dnsEvent
}

func (s *dnsSink) Update(eps []Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, dnsEvent{eps: eps})
}

func (s *dnsSink) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, dnsEvent{err: err})
}

func (s *dnsSink) snapshot() []dnsEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// waitFor polls until cond holds for the events recorded, and returns
// them; it fails the test after d.
func (s *dnsSink) waitFor(t *testing.T, d time.Duration, what string, cond func([]dnsEvent) bool) []dnsEvent {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ev := s.snapshot()
		if cond(ev) {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; events: %v", what, d, describeDNS(ev))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitUpdate waits until the latest dnsEvent is an Update with the given
// URLs, in that order, and returns its endpoints.
func (s *dnsSink) waitUpdate(t *testing.T, urls ...string) []Endpoint {
	t.Helper()
	ev := s.waitFor(t, 5*time.Second, "update to "+strings.Join(urls, " "), func(ev []dnsEvent) bool {
		return len(ev) > 0 && ev[len(ev)-1].err == nil && slices.Equal(dnsURLs(ev[len(ev)-1].eps), urls)
	})
	return ev[len(ev)-1].eps
}

func dnsURLs(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.URL.String()
	}
	return out
}

func describeDNS(ev []dnsEvent) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		if e.err != nil {
			out[i] = "fail(" + e.err.Error() + ")"
		} else {
			out[i] = "update[" + strings.Join(dnsURLs(e.eps), " ") + "]"
		}
	}
	return out
}

// writeResolvConf writes a resolv.conf with the given content and returns its
// path, so the host's search domains stay out of the tests.
func writeResolvConf(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runDNS runs a provider configured by cfg until the test ends, and checks
// Run then returns nil.
func runDNS(t *testing.T, cfg DNSConfig, conf string) *dnsSink {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if conf == "" {
		conf = writeResolvConf(t, "")
	}
	p, err := newDNS(cfg, conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sink := &dnsSink{}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after ctx ended, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after ctx ended")
		}
	})
	return sink
}

// fastDNS is a configuration that resolves often, for tests that change the
// zone.
func fastDNS(z *dnsZone, name string, port int) DNSConfig {
	return DNSConfig{Name: name, Port: port, Resolvers: []string{z.addr},
		Interval: 100 * time.Millisecond, MinInterval: 20 * time.Millisecond, Timeout: time.Second}
}

func TestDNSARecordsFollowTheZone(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t, "orders.test. 1 IN A 127.0.0.2", "orders.test. 1 IN A 127.0.0.1")
	cfg := fastDNS(z, "orders.test", 8080)
	cfg.Metadata = map[string]string{"version": "v1"}
	s := runDNS(t, cfg, "")
	eps := s.waitUpdate(t, "http://127.0.0.1:8080", "http://127.0.0.2:8080")
	for _, e := range eps {
		if e.Weight != 1 || e.Meta["version"] != "v1" || len(e.Meta) != 1 {
			t.Errorf("endpoint %s: weight %d meta %v, want 1 and the configured metadata", e.URL, e.Weight, e.Meta)
		}
	}
	eps[0].Meta["version"] = "changed by the sink"
	if cfg.Metadata["version"] != "v1" {
		t.Fatal("endpoints share the configured metadata map")
	}

	z.set(t, "orders.test. 1 IN A 127.0.0.2", "orders.test. 1 IN A 127.0.0.3")
	s.waitUpdate(t, "http://127.0.0.2:8080", "http://127.0.0.3:8080")

	// Resolutions of an unchanged set push nothing.
	n := len(s.snapshot())
	q := len(z.queries("orders.test.", dns.TypeA))
	waitDNS(t, 5*time.Second, func() bool { return len(z.queries("orders.test.", dns.TypeA)) >= q+3 })
	if ev := s.snapshot(); len(ev) != n {
		t.Errorf("unchanged set pushed again: %v", describeDNS(ev[n:]))
	}
}

func TestDNSAAAA(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t,
		"dual.test. 30 IN A 127.0.0.1", "dual.test. 30 IN AAAA ::1",
		"v6.test. 30 IN AAAA ::1")
	for _, tc := range []struct {
		name, typ, host string
		want            []string
	}{
		{"a and aaaa", "", "dual.test", []string{"h2c://127.0.0.1:9000", "h2c://[::1]:9000"}},
		{"aaaa only", "AAAA", "dual.test", []string{"h2c://[::1]:9000"}},
		{"a without a records", "A", "v6.test", []string{"h2c://[::1]:9000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fastDNS(z, tc.host, 9000)
			cfg.Type, cfg.Scheme = tc.typ, "h2c"
			runDNS(t, cfg, "").waitUpdate(t, tc.want...)
		})
	}
}

func TestDNSSRV(t *testing.T) {
	t.Parallel()
	records := []string{
		"_http._tcp.orders.test. 30 IN SRV 10 5 8081 a.orders.test.",
		"_http._tcp.orders.test. 30 IN SRV 10 0 8082 b.orders.test.",
		"a.orders.test. 30 IN A 127.0.0.1",
		"b.orders.test. 30 IN A 127.0.0.2",
		"b.orders.test. 30 IN AAAA ::1",
	}
	want := []string{"http://127.0.0.1:8081", "http://127.0.0.2:8082", "http://[::1]:8082"}
	for _, tc := range []struct {
		name    string
		noExtra bool
	}{{"targets in the additional section", false}, {"targets queried", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			z := startDNSZone(t, records...)
			z.with(func(z *dnsZone) { z.noExtra = tc.noExtra })
			eps := runDNS(t, fastDNS(z, "_http._tcp.orders.test", 0), "").waitUpdate(t, want...)
			for i, w := range []struct {
				weight int
				target string
			}{{5, "a.orders.test"}, {1, "b.orders.test"}, {1, "b.orders.test"}} {
				if eps[i].Weight != w.weight || eps[i].Meta[MetaDNSTarget] != w.target {
					t.Errorf("%s: weight %d target %q, want %d %q", eps[i].URL, eps[i].Weight, eps[i].Meta[MetaDNSTarget], w.weight, w.target)
				}
			}
			queried := len(z.queries("a.orders.test.", 0)) > 0
			if queried != tc.noExtra {
				t.Errorf("target queried: %v, want %v", queried, tc.noExtra)
			}
		})
	}
}

func TestDNSSRVPriority(t *testing.T) {
	t.Parallel()
	srv := []string{
		"_svc._tcp.p.test. 30 IN SRV 20 1 9090 backup.p.test.",
		"_svc._tcp.p.test. 30 IN SRV 10 1 8080 primary.p.test.",
		"backup.p.test. 30 IN A 127.0.0.2",
	}
	z := startDNSZone(t, append(srv, "primary.p.test. 30 IN A 127.0.0.1")...)
	s := runDNS(t, fastDNS(z, "_svc._tcp.p.test", 0), "")
	s.waitUpdate(t, "http://127.0.0.1:8080")
	// The primary target no longer resolves: the next priority serves.
	z.set(t, srv...)
	s.waitUpdate(t, "http://127.0.0.2:9090")
	z.set(t, append(srv, "primary.p.test. 30 IN A 127.0.0.1")...)
	s.waitUpdate(t, "http://127.0.0.1:8080")
	// Target "." says there is no service at that priority.
	z.set(t, "_svc._tcp.p.test. 30 IN SRV 10 1 8080 .")
	s.waitUpdate(t)
	// ...and is pushed once.
	n := len(s.snapshot())
	q := len(z.queries("_svc._tcp.p.test.", dns.TypeSRV))
	waitDNS(t, 5*time.Second, func() bool { return len(z.queries("_svc._tcp.p.test.", dns.TypeSRV)) >= q+3 })
	if ev := s.snapshot(); len(ev) != n {
		t.Errorf("unchanged empty set pushed again: %v", describeDNS(ev[n:]))
	}
}

// TestDNSTTL: the next resolution comes when the records' TTL runs out,
// within MinInterval and Interval.
func TestDNSTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		ttl      string
		interval time.Duration
		lo, hi   time.Duration
	}{
		{"ttl 1", "1", 0, 900 * time.Millisecond, 2500 * time.Millisecond},
		{"interval caps ttl 3600", "3600", 200 * time.Millisecond, 150 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			z := startDNSZone(t, "ttl.test. "+tc.ttl+" IN A 127.0.0.1")
			runDNS(t, DNSConfig{Name: "ttl.test", Port: 80, Resolvers: []string{z.addr}, Interval: tc.interval}, "")
			var q []dnsQuery
			waitDNS(t, 8*time.Second, func() bool {
				q = z.queries("ttl.test.", dns.TypeA)
				return len(q) >= 4
			})
			for i := 1; i < len(q); i++ {
				if gap := q[i].at.Sub(q[i-1].at); gap < tc.lo || gap > tc.hi {
					t.Errorf("resolution %d came %v after the previous one, want %v to %v", i, gap, tc.lo, tc.hi)
				}
			}
		})
	}
}

func TestDNSNXDOMAINIsAnEmptySet(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t, "other.test. 30 IN A 127.0.0.9")
	s := runDNS(t, fastDNS(z, "gone.test", 80), "")
	if eps := s.waitUpdate(t); eps == nil {
		t.Error("empty set pushed as nil")
	}
	z.set(t, "gone.test. 1 IN A 127.0.0.1")
	s.waitUpdate(t, "http://127.0.0.1:80")
	z.set(t, "other.test. 30 IN A 127.0.0.9")
	s.waitUpdate(t)
	for _, e := range s.snapshot() {
		if e.err != nil {
			t.Fatalf("NXDOMAIN reported as a failure: %v", e.err)
		}
	}
}

// TestDNSFailureKeepsTheLastSet: a server that fails or does not answer
// makes the provider report a failure and push nothing; once it answers
// again an Update clears the failure, even with an unchanged set.
func TestDNSFailureKeepsTheLastSet(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t, "flaky.test. 1 IN A 127.0.0.1")
	cfg := fastDNS(z, "flaky.test", 80)
	cfg.Timeout = 300 * time.Millisecond
	s := runDNS(t, cfg, "")
	s.waitUpdate(t, "http://127.0.0.1:80")
	for _, tc := range []struct {
		name string
		set  func(z *dnsZone)
	}{
		{"SERVFAIL", func(z *dnsZone) { z.rcode = dns.RcodeServerFailure }},
		{"REFUSED", func(z *dnsZone) { z.rcode = dns.RcodeRefused }},
		{"no answer", func(z *dnsZone) { z.silent = true }},
	} {
		n := len(s.snapshot())
		z.with(tc.set)
		s.waitFor(t, 5*time.Second, tc.name+" failure", func(ev []dnsEvent) bool {
			return len(ev) > n && ev[len(ev)-1].err != nil
		})
		z.with(func(z *dnsZone) { z.rcode, z.silent = 0, false })
		ev := s.waitFor(t, 5*time.Second, "recovery after "+tc.name, func(ev []dnsEvent) bool {
			return ev[len(ev)-1].err == nil
		})
		for _, e := range ev[n:] {
			if e.err == nil && !slices.Equal(dnsURLs(e.eps), []string{"http://127.0.0.1:80"}) {
				t.Errorf("%s: pushed %v, want the last set kept", tc.name, dnsURLs(e.eps))
			}
		}
		if !strings.Contains(ev[n].err.Error(), "flaky.test.") {
			t.Errorf("failure %q does not name the query", ev[n].err)
		}
	}
}

func TestDNSFailureBacksOff(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t)
	z.with(func(z *dnsZone) { z.rcode = dns.RcodeServerFailure })
	s := runDNS(t, DNSConfig{Name: "down.test", Port: 80, Resolvers: []string{z.addr},
		Interval: 400 * time.Millisecond, MinInterval: 25 * time.Millisecond}, "")
	// Retries after 25, 50, 100, 200, 400, 400 ms...: about 7 failures in
	// 1.2s, where retrying every MinInterval would make 48.
	time.Sleep(1200 * time.Millisecond)
	ev := s.snapshot()
	for _, e := range ev {
		if e.err == nil {
			t.Fatalf("update pushed while the server fails: %v", dnsURLs(e.eps))
		}
	}
	if len(ev) < 3 || len(ev) > 12 {
		t.Errorf("%d failures in 1.2s, want about 7", len(ev))
	}
}

func TestDNSTruncatedAnswerRetriesOverTCP(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t, "big.test. 30 IN A 127.0.0.1", "big.test. 30 IN A 127.0.0.2")
	z.with(func(z *dnsZone) { z.truncUDP = true })
	runDNS(t, fastDNS(z, "big.test", 80), "").waitUpdate(t, "http://127.0.0.1:80", "http://127.0.0.2:80")
	nets := map[string]bool{}
	for _, q := range z.queries("big.test.", dns.TypeA) {
		nets[q.net] = true
	}
	if !nets["udp"] || !nets["tcp"] {
		t.Errorf("queries over %v, want UDP then TCP", nets)
	}
}

func TestDNSCNAMEChain(t *testing.T) {
	t.Parallel()
	records := []string{
		"orders.test. 30 IN CNAME c1.test.",
		"c1.test. 30 IN CNAME c2.test.",
		"c2.test. 30 IN CNAME real.test.",
		"real.test. 30 IN A 127.0.0.7",
		"loop.test. 30 IN CNAME loop2.test.",
		"loop2.test. 30 IN CNAME loop.test.",
	}
	// l0 -> l1 -> ... -> l9 -> A: nine aliases from l0, eight from l1.
	for i := range 9 {
		records = append(records, "l"+string(rune('0'+i))+".test. 30 IN CNAME l"+string(rune('1'+i))+".test.")
	}
	records = append(records, "l9.test. 30 IN A 127.0.0.9")
	for _, chase := range []bool{true, false} {
		name := "followed by the server"
		if !chase {
			name = "followed by the provider"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			z := startDNSZone(t, records...)
			z.with(func(z *dnsZone) { z.noChase = !chase })
			runDNS(t, fastDNS(z, "orders.test", 80), "").waitUpdate(t, "http://127.0.0.7:80")
			runDNS(t, fastDNS(z, "l1.test", 80), "").waitUpdate(t, "http://127.0.0.9:80")
			for _, host := range []string{"loop.test", "l0.test"} {
				s := runDNS(t, fastDNS(z, host, 80), "")
				ev := s.waitFor(t, 5*time.Second, host+" failure", func(ev []dnsEvent) bool { return len(ev) > 0 })
				if ev[0].err == nil || !strings.Contains(ev[0].err.Error(), "CNAME") {
					t.Errorf("%s: first dnsEvent %v, want a CNAME chain failure", host, describeDNS(ev[:1]))
				}
			}
		})
	}
}

func TestDNSSearchDomains(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t, "orders.two.test. 30 IN A 127.0.0.1", "orders. 30 IN A 127.0.0.99")
	conf := writeResolvConf(t, "nameserver 192.0.2.1\nsearch one.test two.test\noptions ndots:2\n")
	runDNS(t, fastDNS(z, "orders", 80), conf).waitUpdate(t, "http://127.0.0.1:80")
	one, two := z.queries("orders.one.test.", dns.TypeA), z.queries("orders.two.test.", dns.TypeA)
	if len(one) == 0 || len(two) == 0 || one[0].at.After(two[0].at) {
		t.Errorf("search domains not tried in order: one.test %d, two.test %d", len(one), len(two))
	}
	if q := z.queries("orders.", 0); len(q) != 0 {
		t.Errorf("the bare name was queried although a search domain answered")
	}
	// A name with ndots dots is only tried as it is.
	runDNS(t, fastDNS(z, "orders.x", 80), writeResolvConf(t, "search one.test\noptions ndots:1\n")).waitUpdate(t)
	if q := z.queries("orders.x.one.test.", 0); len(q) != 0 {
		t.Error("search domain tried for a name with ndots dots")
	}
}

func TestDNSResolversInOrder(t *testing.T) {
	t.Parallel()
	z := startDNSZone(t, "orders.test. 30 IN A 127.0.0.1")
	dead := startDNSZone(t)
	dead.with(func(z *dnsZone) { z.silent = true })
	cfg := fastDNS(z, "orders.test", 80)
	cfg.Resolvers = []string{dead.addr, z.addr}
	cfg.Timeout = 2 * time.Second
	start := time.Now()
	s := runDNS(t, cfg, "")
	s.waitUpdate(t, "http://127.0.0.1:80")
	// The silent resolver costs its share of the timeout once per
	// resolution, then is asked last.
	if d := time.Since(start); d > 1900*time.Millisecond {
		t.Errorf("first set after %v, want the next resolver asked after the silent one's share", d)
	}
	if q := dead.queries("orders.test.", dns.TypeA); len(q) == 0 {
		t.Error("the first resolver was not asked first")
	}
	if q := dead.queries("orders.test.", dns.TypeAAAA); len(q) != 0 {
		t.Error("a resolver that did not answer was asked first again in the same resolution")
	}
	for _, e := range s.snapshot() {
		if e.err != nil {
			t.Errorf("failure with one resolver answering: %v", e.err)
		}
	}
}

func TestNewDNS(t *testing.T) {
	t.Parallel()
	conf := writeResolvConf(t, "nameserver 192.0.2.1\nnameserver 2001:db8::1\n")
	ok := DNSConfig{Name: "orders.test", Port: 80}
	p, err := newDNS(ok, conf)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind() != "dns" || p.qtype != dns.TypeA || p.scheme != "http" || p.interval != DefaultDNSInterval ||
		p.minWait != DefaultDNSMinInterval || p.timeout != DefaultDNSTimeout {
		t.Errorf("defaults: %+v", p)
	}
	if !slices.Equal(p.resolvers, []string{"192.0.2.1:53", "[2001:db8::1]:53"}) {
		t.Errorf("resolvers from resolv.conf: %v", p.resolvers)
	}
	if p, _ := newDNS(DNSConfig{Name: "_http._tcp.orders"}, conf); p == nil || p.qtype != dns.TypeSRV {
		t.Error("a name starting with _ does not default to SRV")
	}
	if p, _ := newDNS(DNSConfig{Name: "x.test", Port: 80, Interval: 200 * time.Millisecond}, conf); p == nil || p.minWait != 200*time.Millisecond {
		t.Error("min interval not capped by a short interval")
	}
	if p, _ := newDNS(ok, writeResolvConf(t, "")); p == nil || !slices.Equal(p.resolvers, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Error("empty resolv.conf does not fall back to the local resolver")
	}
	if p, _ := newDNS(DNSConfig{Name: "x.test", Port: 80, Resolvers: []string{"10.0.0.1", "[::1]:5353"}}, "/nonexistent"); p == nil ||
		!slices.Equal(p.resolvers, []string{"10.0.0.1:53", "[::1]:5353"}) {
		t.Error("configured resolvers not used as given")
	}
	for _, tc := range []struct {
		name string
		cfg  DNSConfig
		conf string
		want string
	}{
		{"no name", DNSConfig{Port: 80}, conf, "name: required"},
		{"bad name", DNSConfig{Name: "orders test", Port: 80}, conf, "name:"},
		{"empty label", DNSConfig{Name: "orders..test", Port: 80}, conf, "name:"},
		{"ip", DNSConfig{Name: "10.0.0.1", Port: 80}, conf, "IP address"},
		{"root", DNSConfig{Name: ".", Port: 80}, conf, "name:"},
		{"type", DNSConfig{Name: "x.test", Type: "MX", Port: 80}, conf, "type"},
		{"no port", DNSConfig{Name: "x.test"}, conf, "port"},
		{"port range", DNSConfig{Name: "x.test", Port: 70000}, conf, "port"},
		{"port on srv", DNSConfig{Name: "x.test", Type: "srv", Port: 80}, conf, "port"},
		{"scheme", DNSConfig{Name: "x.test", Port: 80, Scheme: "ftp"}, conf, "scheme"},
		{"negative", DNSConfig{Name: "x.test", Port: 80, Timeout: -1}, conf, "timeout"},
		{"min over max", DNSConfig{Name: "x.test", Port: 80, Interval: time.Second, MinInterval: 2 * time.Second}, conf, "min_interval"},
		{"resolver", DNSConfig{Name: "x.test", Port: 80, Resolvers: []string{"dns.test"}}, conf, "resolvers"},
		{"resolver port", DNSConfig{Name: "x.test", Port: 80, Resolvers: []string{"10.0.0.1:0"}}, conf, "resolvers"},
		{"no resolv.conf", DNSConfig{Name: "x.test", Port: 80}, "/nonexistent", "resolvers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newDNS(tc.cfg, tc.conf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSearchList(t *testing.T) {
	t.Parallel()
	search := []string{"ns.svc.cluster.local", "svc.cluster.local.", "."}
	for _, tc := range []struct {
		name  string
		ndots int
		want  []string
	}{
		{"orders", 1, []string{"orders.ns.svc.cluster.local.", "orders.svc.cluster.local.", "orders."}},
		{"orders.ns", 1, []string{"orders.ns."}},
		{"orders.ns", 5, []string{"orders.ns.ns.svc.cluster.local.", "orders.ns.svc.cluster.local.", "orders.ns."}},
		{"orders.", 5, []string{"orders."}},
	} {
		if got := searchList(tc.name, tc.ndots, search); !slices.Equal(got, tc.want) {
			t.Errorf("searchList(%q, %d) = %v, want %v", tc.name, tc.ndots, got, tc.want)
		}
	}
}

func waitDNS(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
