// Package forwarded decides who the client of a request is and gives each
// request its id.
//
// A request reaches the gateway either straight from the client or through
// proxies in front of it (load balancers, CDNs). Only proxies the operator
// lists as trusted may tell the gateway who the client is, through
// X-Forwarded-For; anything else a peer claims about the client is ignored.
package forwarded

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ErrBadTrusted is returned by NewTrusted for an entry that is neither an
// address nor a CIDR prefix.
var ErrBadTrusted = errors.New("not an IP address or CIDR prefix")

// Trusted is the set of peers whose forwarding headers the gateway believes.
// A nil *Trusted trusts nobody. It is immutable and safe for concurrent use.
type Trusted struct {
	prefixes []netip.Prefix
}

// NewTrusted builds the trusted set from addresses ("10.0.0.7", "::1") and
// CIDR prefixes ("10.0.0.0/8", "2001:db8::/32"). IPv4-mapped IPv6 forms
// ("::ffff:10.0.0.7", "::ffff:10.0.0.0/104") are stored as IPv4, so a peer
// matches whichever way its socket reports it. Host bits set in a prefix are
// ignored. An empty list yields a set that trusts nobody.
func NewTrusted(cidrs []string) (*Trusted, error) {
	t := &Trusted{prefixes: make([]netip.Prefix, 0, len(cidrs))}
	for _, s := range cidrs {
		p, err := parsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, ErrBadTrusted
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, ErrBadTrusted
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%w: an IPv4-mapped prefix needs at least 96 bits", ErrBadTrusted)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Contains reports whether a belongs to the trusted set. It is false for a
// nil set and for the zero Addr.
func (t *Trusted) Contains(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Len returns the number of entries in the set.
func (t *Trusted) Len() int {
	if t == nil {
		return 0
	}
	return len(t.prefixes)
}

// PeerAddr parses a net/http RemoteAddr ("192.0.2.1:5000", "[2001:db8::1]:5000")
// into the peer's address, IPv4-mapped addresses unmapped and zones dropped.
func PeerAddr(remoteAddr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return clean(ap.Addr()), true
	}
	// Some listeners (and tests) report a bare address.
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return clean(a), true
	}
	return netip.Addr{}, false
}

func clean(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	return a
}

// ClientIP returns the address of the client that sent the request.
//
// It is the peer's address unless the peer is trusted. Then X-Forwarded-For
// (every header line, each a comma list) is walked from right to left,
// skipping trusted hops: the first untrusted address is the client. A
// malformed entry stops the walk and the last good address is returned, so
// garbage injected by a client can never be chosen. If every hop is trusted,
// the leftmost one is the client. It returns the zero Addr only when
// remoteAddr cannot be parsed.
//
// ClientIP does not allocate when the request carries no X-Forwarded-For.
func ClientIP(t *Trusted, remoteAddr string, h http.Header) netip.Addr {
	peer, ok := PeerAddr(remoteAddr)
	if !ok || !t.Contains(peer) {
		return peer
	}
	client := peer
	lines := h["X-Forwarded-For"]
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for end := len(line); end >= 0; {
			start := strings.LastIndexByte(line[:end], ',') + 1
			item := strings.TrimSpace(line[start:end])
			end = start - 1
			if item == "" {
				// Empty list elements are allowed by the list syntax.
				continue
			}
			a, ok := parseHop(item)
			if !ok {
				return client
			}
			client = a
			if !t.Contains(a) {
				return a
			}
		}
	}
	return client
}

// parseHop parses one X-Forwarded-For element: an address, optionally with a
// port ("192.0.2.1:443", "[2001:db8::1]:443") as some proxies send it.
// Zoned addresses are rejected: a zone means nothing beyond the hop that
// reported it.
func parseHop(s string) (netip.Addr, bool) {
	if s == "" || strings.IndexByte(s, '%') >= 0 {
		return netip.Addr{}, false
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 || !validPort(s[end+1:]) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if i := strings.IndexByte(s, ':'); i >= 0 && strings.LastIndexByte(s, ':') == i {
		// One colon: an IPv4 address with a port.
		if !validPort(s[i:]) {
			return netip.Addr{}, false
		}
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// validPort accepts "" or ":" followed by one to five digits.
func validPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 || len(s) > 6 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
