// Package ipfilter is the ip_filter policy: per-route allow and deny lists
// of client IP ranges. The client IP is the one the gateway entry derived
// through the configured trusted proxies (exchange.ClientIP), never a
// header the client could set.
package ipfilter

import (
	"errors"
	"net/http"
	"net/netip"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/problem"
)

// ErrEmpty is returned by New for a filter with neither list.
var ErrEmpty = errors.New("ip filter: set at least one of allow and deny")

// ErrDenied is set as the exchange's Err of a refused request.
var ErrDenied = &deniedError{}

type deniedError struct{}

func (*deniedError) Error() string      { return "client IP not allowed" }
func (*deniedError) ErrorClass() string { return "ip_denied" }

// Filter is a compiled pair of lists. Deny wins over Allow; an empty Allow
// allows every address Deny does not list.
type Filter struct {
	allow, deny []netip.Prefix
}

// NewFilter compiles the lists; IPv4-mapped IPv6 prefixes must already be
// unmapped (config.ParseCIDR does that).
func NewFilter(allow, deny []netip.Prefix) (*Filter, error) {
	if len(allow) == 0 && len(deny) == 0 {
		return nil, ErrEmpty
	}
	for _, p := range append(append([]netip.Prefix(nil), allow...), deny...) {
		if !p.IsValid() {
			return nil, errors.New("ip filter: invalid prefix")
		}
	}
	return &Filter{allow: masked(allow), deny: masked(deny)}, nil
}

func masked(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Masked()
	}
	return out
}

// Allowed reports whether ip may pass. An invalid (unknown) address passes
// only a filter without an allow list.
func (f *Filter) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return len(f.allow) == 0
	}
	if contains(f.deny, ip) {
		return false
	}
	return len(f.allow) == 0 || contains(f.allow, ip)
}

func contains(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// OnDenied is called for every refused request, e.g. to count it.
type OnDenied func()

// New returns a handler that answers 403 problem+json to clients f does not
// allow and passes the others to next.
func New(next http.Handler, f *Filter, onDenied OnDenied) http.Handler {
	return &handler{next: next, f: f, onDenied: onDenied}
}

type handler struct {
	next     http.Handler
	f        *Filter
	onDenied OnDenied
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange.From(r.Context())
	var ip netip.Addr
	if x != nil {
		ip = x.ClientIP
	}
	if h.f.Allowed(ip) {
		h.next.ServeHTTP(w, r)
		return
	}
	if h.onDenied != nil {
		h.onDenied()
	}
	var id string
	if x != nil {
		x.Err = ErrDenied
		id = x.ID
	}
	problem.Write(w, problem.Details{Status: http.StatusForbidden, Detail: "requests from this client address are not allowed on this route", RequestID: id})
}
