// Package headers is the policy that applies a route's header rules (route
// field headers): it removes, sets and adds request headers before the
// request goes upstream, and response headers before the response goes to
// the client.
//
// Rules are validated and compiled once, when the snapshot is built. Names
// are canonicalized then; values are literal strings (no templating).
//
// The proxy writes X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host,
// Forwarded and the request id header after the policies have run, so a
// request rule could never change them. Such rules are rejected with
// ErrGatewayOwned rather than silently ignored.
package headers

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// Errors returned by CompileRequest and CompileResponse, wrapped with the
// rule they concern; test with errors.Is.
var (
	// ErrInvalidName is returned for a header name that is not an HTTP token.
	ErrInvalidName = errors.New("not a valid header name")
	// ErrInvalidValue is returned for a value holding CR, LF, NUL or another
	// control character, which could split or smuggle headers.
	ErrInvalidValue = errors.New("header value contains a control character")
	// ErrReserved is returned for setting or adding a hop-by-hop header,
	// Host or Content-Length: the HTTP layers own them.
	ErrReserved = errors.New("header is managed by the HTTP layer and cannot be set or added")
	// ErrGatewayOwned is returned for a request rule naming a forwarding or
	// request id header, which the proxy writes after the policies.
	ErrGatewayOwned = errors.New("header is written by the gateway after the policies, so a rule for it has no effect")
	// ErrDuplicate is returned when two names of one operation are the same
	// header once canonicalized, e.g. "x-id" and "X-Id".
	ErrDuplicate = errors.New("header named twice")
)

// DefaultRequestIDHeader is the request id header when none is configured.
const DefaultRequestIDHeader = "X-Request-Id"

// reserved headers may be removed but never set or added.
var reserved = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Host", "Content-Length",
}

// gatewayOwned request headers are written by the proxy after the policies.
var gatewayOwned = []string{
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", DefaultRequestIDHeader,
}

// Ops is one side (request or response) of a route's header rules, compiled.
// It is immutable and shared by all requests of the route.
type Ops struct {
	remove []string
	set    []field
	add    []field
}

// field is one canonical header name and its single value. values has
// length and capacity 1 and is shared by every request: appending to it
// reallocates, and no code in the gateway writes header values in place.
type field struct {
	name   string
	values []string
}

// CompileRequest validates and compiles the request side of a route's
// header rules. requestIDHeader is the header the gateway writes the
// request id in; if empty, DefaultRequestIDHeader.
func CompileRequest(cfg config.HeaderOps, requestIDHeader string) (*Ops, error) {
	owned := gatewayOwned
	if requestIDHeader != "" {
		owned = append(slices.Clip(owned), http.CanonicalHeaderKey(requestIDHeader))
	}
	return compile("headers.request", cfg, owned)
}

// CompileResponse validates and compiles the response side of a route's
// header rules.
func CompileResponse(cfg config.HeaderOps) (*Ops, error) {
	return compile("headers.response", cfg, nil)
}

func compile(side string, cfg config.HeaderOps, owned []string) (*Ops, error) {
	o := &Ops{}
	seen := make(map[string]bool, len(cfg.Remove))
	for _, raw := range cfg.Remove {
		name, err := checkName(raw, owned)
		if err == nil && seen[name] {
			err = ErrDuplicate
		}
		if err != nil {
			return nil, fmt.Errorf("%s.remove %q: %w", side, raw, err)
		}
		seen[name] = true
		o.remove = append(o.remove, name)
	}
	var err error
	if o.set, err = compileFields(side+".set", cfg.Set, owned); err != nil {
		return nil, err
	}
	if o.add, err = compileFields(side+".add", cfg.Add, owned); err != nil {
		return nil, err
	}
	return o, nil
}

// compileFields validates one set or add map and returns it sorted by name,
// so the order of operations does not depend on map iteration.
func compileFields(op string, m map[string]string, owned []string) ([]field, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fields := make([]field, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, raw := range keys {
		name, err := checkName(raw, owned)
		switch {
		case err != nil:
		case slices.Contains(reserved, name):
			err = ErrReserved
		case seen[name]:
			err = ErrDuplicate
		case !validValue(m[raw]):
			err = ErrInvalidValue
		}
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", op, raw, err)
		}
		seen[name] = true
		fields = append(fields, field{name: name, values: []string{m[raw]}})
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	return fields, nil
}

// checkName returns the canonical form of a rule's header name.
func checkName(raw string, owned []string) (string, error) {
	if !validName(raw) {
		return "", ErrInvalidName
	}
	name := http.CanonicalHeaderKey(raw)
	if slices.Contains(owned, name) {
		return "", ErrGatewayOwned
	}
	return name, nil
}

// validName reports whether s is an RFC 9110 token.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c < 0x80 && isTokenSymbol(c):
		default:
			return false
		}
	}
	return true
}

func isTokenSymbol(c byte) bool {
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validValue rejects control characters other than horizontal tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Empty reports whether o changes nothing.
func (o *Ops) Empty() bool {
	return o == nil || len(o.remove) == 0 && len(o.set) == 0 && len(o.add) == 0
}

// Apply changes h in place: it removes, then sets, then adds. Set values are
// shared, read-only slices, so h must not have its value slices modified in
// place afterwards (replacing or appending is fine).
func (o *Ops) Apply(h http.Header) {
	for _, name := range o.remove {
		delete(h, name)
	}
	for _, f := range o.set {
		h[f.name] = f.values
	}
	for _, f := range o.add {
		if v := h[f.name]; len(v) > 0 {
			h[f.name] = append(v, f.values[0])
		} else {
			h[f.name] = f.values
		}
	}
}

// unlist returns the Connection header values without the tokens that name a
// header o sets or adds.
func (o *Ops) unlist(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		var kept []string
		for _, tok := range strings.Split(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" || o.sets(tok) {
				continue
			}
			kept = append(kept, tok)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, ", "))
		}
	}
	return out
}

// sets reports whether o sets or adds the header named (in any case) name.
func (o *Ops) sets(name string) bool {
	for _, f := range o.set {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	for _, f := range o.add {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}
