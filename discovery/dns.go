package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNS discovery defaults, used when a DNSConfig field is zero.
const (
	DefaultDNSInterval    = 30 * time.Second
	DefaultDNSMinInterval = time.Second
	DefaultDNSTimeout     = 5 * time.Second
)

// MetaDNSTarget is the Meta key of an endpoint found through an SRV record:
// the record's target host name, without the trailing dot.
const MetaDNSTarget = "dns_target"

const (
	// maxCNAMEs bounds a chain of aliases, as resolvers do, so an alias
	// loop ends.
	maxCNAMEs = 8
	// ednsSize is the UDP payload size advertised to resolvers (the DNS
	// flag day 2020 value): a few dozen records fit without a TCP retry,
	// and nothing depends on IP fragmentation.
	ednsSize = 1232
	// resolvConfPath holds the system's resolvers, search domains and ndots.
	resolvConfPath = "/etc/resolv.conf"
)

// DNSConfig configures NewDNS.
type DNSConfig struct {
	// Name is the name to resolve, e.g. "orders.shop.svc.cluster.local" or
	// "_http._tcp.orders.shop.svc.cluster.local". A relative name with
	// fewer dots than resolv.conf's ndots is also tried with its search
	// domains, like the system resolver does. Required.
	Name string
	// Type is "A" (A and AAAA records), "AAAA" (AAAA records only) or
	// "SRV" (SRV records: their targets' addresses, ports, priorities and
	// weights). If empty, SRV when Name starts with "_", A otherwise.
	Type string
	// Port is the endpoints' port for A and AAAA records, 1 to 65535.
	// Required for them; SRV records carry their own ports.
	Port int
	// Scheme is the endpoints' scheme: http, https or h2c. Default http.
	Scheme string
	// Resolvers are DNS servers as host:port (a bare IP address means port
	// 53), tried in order. If empty, the nameservers of /etc/resolv.conf
	// are used (127.0.0.1 and ::1 when it lists none).
	Resolvers []string
	// Interval is the longest time between resolutions; a shorter record
	// TTL brings the next one forward. Default 30s.
	Interval time.Duration
	// MinInterval is the shortest time between resolutions, whatever the
	// TTLs say, and the first retry delay after a failure. Default 1s (or
	// Interval, when that is shorter).
	MinInterval time.Duration
	// Timeout bounds one resolution, all its queries and resolvers
	// included. Default 5s.
	Timeout time.Duration
	// Metadata is copied into every endpoint's Meta (e.g. version: v1).
	Metadata map[string]string
	// Logger receives failures and recoveries. If nil, slog.Default() is
	// used.
	Logger *slog.Logger
}

// dnsProvider resolves a name into endpoints; see NewDNS.
type dnsProvider struct {
	name      string // as configured, for logs
	qtype     uint16 // dns.TypeA (A and AAAA), dns.TypeAAAA or dns.TypeSRV
	port      uint16 // A and AAAA only
	scheme    string
	names     []string // fully qualified names to try, in order
	resolvers []string // host:port
	interval  time.Duration
	minWait   time.Duration
	timeout   time.Duration
	meta      map[string]string
	log       *slog.Logger
}

var _ Provider = (*dnsProvider)(nil)

// NewDNS returns a provider that resolves cfg.Name and pushes the
// addresses found as endpoints. It resolves again when the records' TTL
// runs out (within MinInterval and Interval) and pushes a set only when it
// changed, or after a failure so the sink learns the failure is over.
//
// An answer without records (NXDOMAIN, or a name without records of the
// type) is a valid empty set: the service has no instances. A query that
// fails on every resolver (timeout, network error, SERVFAIL, REFUSED)
// fails the whole resolution: the sink is told, the last set stays, and
// retries back off exponentially from MinInterval up to Interval. With
// search domains, a name that fails fails the resolution too: a later
// candidate never stands in for one that could not be asked.
//
// For SRV records only those of the lowest priority number are used
// (RFC 2782), unless none of their targets resolves; then the next
// priority's are. Each endpoint's weight is the record's (0 counts as 1)
// and its Meta names the target under MetaDNSTarget.
func NewDNS(cfg DNSConfig) (Provider, error) {
	return newDNS(cfg, resolvConfPath)
}

// newDNS is NewDNS reading resolvers, search domains and ndots from the
// resolv.conf file at path.
func newDNS(cfg DNSConfig, path string) (*dnsProvider, error) {
	if err := checkDNSName(cfg.Name); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	p := &dnsProvider{name: cfg.Name, scheme: cmp.Or(cfg.Scheme, "http"), log: cfg.Logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	switch strings.ToUpper(cfg.Type) {
	case "":
		p.qtype = dns.TypeA
		if strings.HasPrefix(cfg.Name, "_") {
			p.qtype = dns.TypeSRV
		}
	case "A":
		p.qtype = dns.TypeA
	case "AAAA":
		p.qtype = dns.TypeAAAA
	case "SRV":
		p.qtype = dns.TypeSRV
	default:
		return nil, fmt.Errorf("type %q: want A, AAAA or SRV", cfg.Type)
	}
	switch p.scheme {
	case "http", "https", "h2c":
	default:
		return nil, fmt.Errorf("scheme %q: want http, https or h2c", cfg.Scheme)
	}
	switch {
	case p.qtype == dns.TypeSRV && cfg.Port != 0:
		return nil, errors.New("port: must not be set for SRV records, which carry their ports")
	case p.qtype != dns.TypeSRV && (cfg.Port < 1 || cfg.Port > 65535):
		return nil, fmt.Errorf("port %d: required for A and AAAA records, 1 to 65535", cfg.Port)
	}
	p.port = uint16(cfg.Port)
	if err := p.setIntervals(cfg); err != nil {
		return nil, err
	}
	rc, rcErr := dns.ClientConfigFromFile(path)
	if len(cfg.Resolvers) == 0 {
		if rcErr != nil {
			return nil, fmt.Errorf("resolvers: none set and %s unreadable: %w", path, rcErr)
		}
		for _, s := range rc.Servers {
			p.resolvers = append(p.resolvers, net.JoinHostPort(s, rc.Port))
		}
		if len(p.resolvers) == 0 {
			p.resolvers = []string{"127.0.0.1:53", "[::1]:53"}
		}
	}
	for _, s := range cfg.Resolvers {
		addr, err := resolverAddr(s)
		if err != nil {
			return nil, fmt.Errorf("resolvers: %w", err)
		}
		p.resolvers = append(p.resolvers, addr)
	}
	ndots, search := 1, []string(nil)
	if rcErr == nil {
		ndots, search = rc.Ndots, rc.Search
	}
	p.names = searchList(cfg.Name, ndots, search)
	if len(cfg.Metadata) > 0 {
		p.meta = maps.Clone(cfg.Metadata)
	}
	return p, nil
}

func (p *dnsProvider) setIntervals(cfg DNSConfig) error {
	if cfg.Interval < 0 || cfg.MinInterval < 0 || cfg.Timeout < 0 {
		return errors.New("interval, min_interval and timeout must not be negative")
	}
	p.interval = cmp.Or(cfg.Interval, DefaultDNSInterval)
	p.minWait = cmp.Or(cfg.MinInterval, min(DefaultDNSMinInterval, p.interval))
	if p.minWait > p.interval {
		return fmt.Errorf("min_interval %v is longer than interval %v", p.minWait, p.interval)
	}
	p.timeout = cmp.Or(cfg.Timeout, DefaultDNSTimeout)
	return nil
}

// checkDNSName accepts host names: labels of letters, digits, '-' and '_'
// (as in SRV names), optionally with a trailing dot. IP addresses are not
// names.
func checkDNSName(s string) error {
	n := strings.TrimSuffix(s, ".")
	switch {
	case s == "":
		return errors.New("required")
	case n == "":
		return errors.New(`"." is not a service name`)
	case len(n) > 253:
		return fmt.Errorf("%.20q...: longer than 253 characters", s)
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return fmt.Errorf("%q is an IP address, not a name (list it as a static endpoint)", s)
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q: labels must be 1 to 63 characters", s)
		}
		for i := range len(label) {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q: character %q is not allowed in a DNS name", s, c)
			}
		}
	}
	return nil
}

// resolverAddr checks a resolver address, host:port or an IP address
// (port 53).
func resolverAddr(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port must be 1 to 65535", s)
	}
	if host == "" {
		return "", fmt.Errorf("%q: host is empty", s)
	}
	return s, nil
}

// searchList returns the fully qualified names to try for name, in order:
// with fewer than ndots dots, name under each search domain and then name
// itself; otherwise (or when name ends with a dot) name alone.
func searchList(name string, ndots int, search []string) []string {
	fq := dns.Fqdn(name)
	if dns.IsFqdn(name) || strings.Count(name, ".") >= ndots {
		return []string{fq}
	}
	var out []string
	for _, d := range search {
		d = strings.TrimSuffix(d, ".")
		if d == "" {
			continue
		}
		c := dns.Fqdn(name + "." + d)
		if _, ok := dns.IsDomainName(c); ok && len(c) <= 254 && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return append(out, fq)
}

// Kind implements Provider.
func (p *dnsProvider) Kind() string { return "dns" }

// Run implements Provider.
func (p *dnsProvider) Run(ctx context.Context, sink Sink) error {
	var (
		last    []found // nil until the first push
		failing bool
		backoff = p.minWait
	)
	for {
		set, next, err := p.resolve(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			next, backoff = backoff, min(2*backoff, p.interval)
			p.log.Warn("dns discovery failed; the last endpoint set stays", "name", p.name,
				"type", dns.TypeToString[p.qtype], "error", err, "retry_in", next)
			failing = true
			sink.Fail(err)
		} else {
			backoff = p.minWait
			if failing {
				p.log.Info("dns discovery recovered", "name", p.name, "endpoints", len(set))
			}
			if last == nil || failing || !slices.Equal(set, last) {
				sink.Update(p.endpoints(set))
				last = set
			}
			failing = false
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// found is one endpoint found: its address, weight and the SRV target it
// came from. Sets of them compare with ==, element by element.
type found struct {
	addr   netip.AddrPort
	weight int
	target string
}

// endpoints turns a set found into the endpoints pushed to the sink.
func (p *dnsProvider) endpoints(set []found) []Endpoint {
	eps := make([]Endpoint, len(set))
	for i, f := range set {
		eps[i] = Endpoint{URL: &url.URL{Scheme: p.scheme, Host: f.addr.String()}, Weight: f.weight}
		if len(p.meta) > 0 || f.target != "" {
			eps[i].Meta = maps.Clone(p.meta)
			if eps[i].Meta == nil {
				eps[i].Meta = make(map[string]string, 1)
			}
			if f.target != "" {
				eps[i].Meta[MetaDNSTarget] = f.target
			}
		}
	}
	return eps
}

// resolve runs one resolution: the first name of the search list with
// records answers. It returns the set, sorted, deduplicated and never nil
// (Run tells an empty set from none pushed yet), and when to resolve again.
func (p *dnsProvider) resolve(ctx context.Context) ([]found, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	l := &lookup{p: p, ctx: ctx, ttl: math.MaxUint32, failed: map[string]bool{}}
	set := []found{}
	for _, name := range p.names {
		fs, ok, err := l.name(name)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			set = append(set, fs...)
			break
		}
	}
	return normalize(set), l.next(), nil
}

// normalize sorts a set by address, port, weight (highest first) and
// target, and keeps the first endpoint of each address and port.
func normalize(set []found) []found {
	slices.SortFunc(set, func(a, b found) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(b.weight, a.weight), strings.Compare(a.target, b.target))
	})
	return slices.CompactFunc(set, func(a, b found) bool { return a.addr == b.addr })
}

// lookup is the state of one resolution.
type lookup struct {
	p      *dnsProvider
	ctx    context.Context // carries the resolution's deadline
	ttl    uint32          // the smallest TTL of the records used
	failed map[string]bool // resolvers that did not answer; asked last
}

// next returns the time until the next resolution: the smallest TTL,
// within the provider's bounds.
func (l *lookup) next() time.Duration {
	if l.ttl == math.MaxUint32 {
		return l.p.interval
	}
	return min(max(time.Duration(l.ttl)*time.Second, l.p.minWait), l.p.interval)
}

func (l *lookup) useTTL(ttl uint32) { l.ttl = min(l.ttl, ttl) }

// name resolves one candidate name; ok reports whether it has records.
func (l *lookup) name(name string) (set []found, ok bool, err error) {
	if l.p.qtype == dns.TypeSRV {
		return l.srv(name)
	}
	addrs, err := l.addrs(name, l.p.qtype == dns.TypeA)
	for _, a := range addrs {
		set = append(set, found{addr: netip.AddrPortFrom(a, l.p.port), weight: 1})
	}
	return set, len(addrs) > 0, err
}

// addrs returns the AAAA addresses of name and, when v4 is set, its A
// addresses, following aliases.
func (l *lookup) addrs(name string, v4 bool) ([]netip.Addr, error) {
	types := []uint16{dns.TypeA, dns.TypeAAAA}
	if !v4 {
		types = types[1:]
	}
	var out []netip.Addr
	for _, t := range types {
		rrs, _, err := l.records(name, t)
		if err != nil {
			return nil, err
		}
		out = appendAddrs(out, rrs)
	}
	return out, nil
}

// srv resolves the SRV records of name into endpoints: the lowest priority
// that has a resolvable target wins.
func (l *lookup) srv(name string) ([]found, bool, error) {
	rrs, reply, err := l.records(name, dns.TypeSRV)
	if err != nil {
		return nil, false, err
	}
	var srvs []*dns.SRV
	for _, rr := range rrs {
		if s, ok := rr.(*dns.SRV); ok {
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, false, nil
	}
	slices.SortStableFunc(srvs, func(a, b *dns.SRV) int { return cmp.Compare(a.Priority, b.Priority) })
	resolved := map[string][]netip.Addr{}
	for start := 0; start < len(srvs); {
		end := start + 1
		for end < len(srvs) && srvs[end].Priority == srvs[start].Priority {
			end++
		}
		var set []found
		for _, s := range srvs[start:end] {
			// Target "." says the service is decidedly not available
			// there (RFC 2782); port 0 cannot be connected to.
			if s.Target == "." || s.Port == 0 {
				continue
			}
			addrs, ok := resolved[s.Target]
			if !ok {
				if addrs, err = l.target(s.Target, reply.Extra); err != nil {
					return nil, true, err
				}
				resolved[s.Target] = addrs
			}
			for _, a := range addrs {
				set = append(set, found{addr: netip.AddrPortFrom(a, s.Port), weight: max(int(s.Weight), 1),
					target: strings.TrimSuffix(s.Target, ".")})
			}
		}
		if len(set) > 0 {
			return set, true, nil
		}
		start = end
	}
	return nil, true, nil
}

// target returns the addresses of an SRV target: from the reply's
// additional section when the server put them there, else by querying.
func (l *lookup) target(name string, extra []dns.RR) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		c, err := chase(extra, name, t)
		if err != nil {
			break
		}
		if len(c.rrs) > 0 {
			l.useTTL(c.ttl)
			out = appendAddrs(out, c.rrs)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	return l.addrs(name, true)
}

// records returns name's records of type qtype and the reply they came
// in, following aliases, also across queries when the server left the
// end of a chain out of its answer.
func (l *lookup) records(name string, qtype uint16) ([]dns.RR, *dns.Msg, error) {
	hops := 0
	for {
		r, err := l.exchange(name, qtype)
		if err != nil {
			return nil, nil, err
		}
		c, err := chase(r.Answer, name, qtype)
		if err == nil && hops+c.hops > maxCNAMEs {
			err = errTooManyCNAMEs
		}
		if err != nil {
			return nil, nil, fmt.Errorf("resolve %s: %w", name, err)
		}
		if c.ttl != math.MaxUint32 {
			l.useTTL(c.ttl)
		}
		if len(c.rrs) > 0 || c.hops == 0 || r.Rcode != dns.RcodeSuccess {
			if len(c.rrs) == 0 {
				if ttl, ok := negativeTTL(r); ok {
					l.useTTL(ttl)
				}
			}
			return c.rrs, r, nil
		}
		hops += c.hops
		name = c.end
	}
}

var errTooManyCNAMEs = fmt.Errorf("more than %d CNAME records in a chain", maxCNAMEs)

// chain is what chase found.
type chain struct {
	rrs  []dns.RR // the records of the type asked for at the end of the chain
	end  string   // the name the chain ends at
	hops int      // aliases followed
	ttl  uint32   // the smallest TTL of the aliases and records; MaxUint32 if none
}

// chase follows name's CNAME records in rrs and returns the records of
// type qtype at the end of the chain.
func chase(rrs []dns.RR, name string, qtype uint16) (chain, error) {
	c := chain{end: name, ttl: math.MaxUint32}
	for {
		var alias *dns.CNAME
		for _, rr := range rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, c.end) {
				continue
			}
			if h.Rrtype == qtype {
				c.rrs = append(c.rrs, rr)
				c.ttl = min(c.ttl, h.Ttl)
			} else if cn, ok := rr.(*dns.CNAME); ok && alias == nil {
				alias = cn
			}
		}
		if len(c.rrs) > 0 || alias == nil {
			return c, nil
		}
		if c.hops == maxCNAMEs {
			return c, errTooManyCNAMEs
		}
		c.hops++
		c.ttl = min(c.ttl, alias.Hdr.Ttl)
		c.end = alias.Target
	}
}

// negativeTTL returns how long a reply without records may be cached
// (RFC 2308): the smaller of its SOA record's TTL and minimum field.
func negativeTTL(r *dns.Msg) (uint32, bool) {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}

// appendAddrs appends the addresses of A and AAAA records to out, leaving
// out unspecified and multicast addresses, which name no endpoint.
func appendAddrs(out []netip.Addr, rrs []dns.RR) []netip.Addr {
	for _, rr := range rrs {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		}
		a, ok := netip.AddrFromSlice(ip)
		if a = a.Unmap(); ok && !a.IsUnspecified() && !a.IsMulticast() {
			out = append(out, a)
		}
	}
	return out
}

// exchange asks the resolvers in turn for name's records of type qtype
// until one answers (NOERROR or NXDOMAIN). Each gets an equal share of
// the time left; those that did not answer earlier in the resolution are
// asked last.
func (l *lookup) exchange(name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(ednsSize, false)
	servers := make([]string, 0, len(l.p.resolvers))
	for _, pass := range []bool{false, true} {
		for _, s := range l.p.resolvers {
			if l.failed[s] == pass {
				servers = append(servers, s)
			}
		}
	}
	var errs resolverErrors
	for i, srv := range servers {
		deadline, _ := l.ctx.Deadline()
		share := time.Until(deadline) / time.Duration(len(servers)-i)
		if share <= 0 || l.ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv, context.DeadlineExceeded))
			break
		}
		r, err := ask(l.ctx, srv, q, share)
		if err != nil {
			l.failed[srv] = true
		} else if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			err = errors.New(dns.RcodeToString[r.Rcode])
		} else if len(r.Question) != 1 || r.Question[0].Qtype != qtype || !strings.EqualFold(r.Question[0].Name, name) {
			err = errors.New("reply to another question")
		} else {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", srv, err))
	}
	return nil, fmt.Errorf("query %s %s: %w", dns.TypeToString[qtype], name, errs)
}

// ask sends q to one resolver over UDP, and over TCP when the answer was
// truncated, within d.
func ask(ctx context.Context, srv string, q *dns.Msg, d time.Duration) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c := dns.Client{Net: "udp", Timeout: d}
	r, _, err := c.ExchangeContext(ctx, q, srv)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, q, srv)
		if err == nil && r.Truncated {
			err = errors.New("truncated answer over TCP")
		}
	}
	return r, err
}

// resolverErrors are the failures of each resolver asked.
type resolverErrors []error

func (e resolverErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e resolverErrors) Unwrap() []error { return e }
