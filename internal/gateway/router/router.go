package router

import (
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// Errors New wraps; callers tell them apart with errors.Is.
var (
	// ErrInvalidRoute means a route's pattern, host, method or header
	// predicate is not valid.
	ErrInvalidRoute = errors.New("invalid route")
	// ErrAmbiguousRoutes means two routes have the same hosts, pattern shape,
	// methods and header predicates, so the second could never be chosen.
	ErrAmbiguousRoutes = errors.New("ambiguous routes")
)

// HeaderMatch is one header predicate of a route. Exactly one of Equals,
// Present and Regex is set. A header sent more than once matches Equals or
// Regex if any of its values does.
type HeaderMatch struct {
	// Name is the header name. New canonicalizes it (http.CanonicalHeaderKey).
	Name string
	// Equals requires a value equal to this string.
	Equals *string
	// Present requires the header to be present (true) or absent (false).
	Present *bool
	// Regex requires a value this expression matches. It is evaluated only
	// for routes whose host, path and method already matched.
	Regex *regexp.Regexp
}

func (m *HeaderMatch) match(vals []string) bool {
	switch {
	case m.Present != nil:
		return (len(vals) > 0) == *m.Present
	case m.Equals != nil:
		for _, v := range vals {
			if v == *m.Equals {
				return true
			}
		}
	case m.Regex != nil:
		for _, v := range vals {
			if m.Regex.MatchString(v) {
				return true
			}
		}
	}
	return false
}

// key identifies the predicate for duplicate detection.
func (m *HeaderMatch) key() string {
	switch {
	case m.Present != nil:
		return fmt.Sprintf("%s\x00present\x00%t", m.Name, *m.Present)
	case m.Equals != nil:
		return m.Name + "\x00equals\x00" + *m.Equals
	}
	return m.Name + "\x00regex\x00" + m.Regex.String()
}

// Route is what New needs to know of one route.
type Route struct {
	// Name is returned in Match.Name and used in error messages.
	Name string
	// Hosts are exact names ("api.example.com") or wildcards
	// ("*.example.com"), matched without case, port or trailing dot. An IPv6
	// literal is written in brackets. Empty matches any host.
	Hosts []string
	// Path is the pattern: static segments, "{name}" parameters (one
	// non-empty segment) and an optional last "{name...}" that captures the
	// rest of the path. Required.
	Path string
	// Methods are the HTTP methods the route answers, compared exactly after
	// New upper-cases them. A route with GET also answers HEAD. Empty
	// matches any method.
	Methods []string
	// Headers are predicates every one of which must hold.
	Headers []HeaderMatch
	// Value is opaque to the router and returned in Match.Value; the gateway
	// stores the route's index in its snapshot.
	Value int
}

// Result is the outcome of a Lookup.
type Result uint8

const (
	// NotFound means no route matches the host and path, or every route
	// that does has a header predicate that fails.
	NotFound Result = iota
	// Found means Match names the route to use.
	Found
	// MethodNotAllowed means routes match the host, path and headers but
	// none answers the method; Match.Allow lists the methods that would.
	MethodNotAllowed
)

func (r Result) String() string {
	switch r {
	case Found:
		return "found"
	case MethodNotAllowed:
		return "method not allowed"
	}
	return "not found"
}

// Match describes the route a Lookup chose.
type Match struct {
	// Value is the chosen route's Route.Value.
	Value int
	// Name is the chosen route's Route.Name.
	Name string
	// Pattern is the chosen route's Route.Path.
	Pattern string
	// Allow is set for MethodNotAllowed: the allowed methods, sorted and
	// separated by ", ", ready for the Allow header.
	Allow string
}

// Standard methods have fixed bits so that Lookup finds them with a switch.
var stdMethods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

const (
	bitGET  = 1 << 0
	bitHEAD = 1 << 1
)

// Router matches requests to routes. It is immutable after New and safe for
// concurrent use.
type Router struct {
	routes  []Route
	exact   map[string]*node // root per exact host
	wild    map[string]*node // root per wildcard suffix ("example.com" for "*.example.com")
	any     *node            // root of the routes without hosts; nil if none
	custom  map[string]uint64
	methods [64]string // method name per bit
	allow   map[uint64]string
}

// New builds a Router. It returns an error wrapping ErrInvalidRoute for a
// route that is not valid and ErrAmbiguousRoutes for two routes that could
// never be told apart.
func New(routes []Route) (*Router, error) {
	rt := &Router{
		routes: append([]Route(nil), routes...),
		exact:  map[string]*node{},
		wild:   map[string]*node{},
		custom: map[string]uint64{},
		allow:  map[uint64]string{},
	}
	copy(rt.methods[:], stdMethods[:])
	for i := range rt.routes {
		if err := rt.add(i); err != nil {
			name := rt.routes[i].Name
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return nil, fmt.Errorf("route %q: %w", name, err)
		}
	}
	for _, root := range rt.roots() {
		root.finish()
	}
	return rt, nil
}

func (rt *Router) roots() []*node {
	var roots []*node
	for _, n := range rt.exact {
		roots = append(roots, n)
	}
	for _, n := range rt.wild {
		roots = append(roots, n)
	}
	if rt.any != nil {
		roots = append(roots, rt.any)
	}
	return roots
}

func (rt *Router) add(i int) error {
	r := &rt.routes[i]
	segs, err := parsePattern(r.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRoute, err)
	}
	c := &cand{value: r.Value, name: r.Name, pattern: r.Path, params: paramNames(segs), order: i}
	if c.methods, err = rt.methodBits(r.Methods); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRoute, err)
	}
	if c.headers, err = checkHeaders(r.Headers); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRoute, err)
	}
	r.Headers = c.headers
	c.key = candKey(c)
	rt.cacheAllow(c.methods)

	roots, err := rt.rootsFor(r.Hosts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRoute, err)
	}
	for _, root := range roots {
		l := root.insert(segs, c)
		for _, o := range l.cands[:len(l.cands)-1] {
			if o.key == c.key {
				return fmt.Errorf("%w: same hosts, path, methods and headers as route %q (%s)", ErrAmbiguousRoutes, o.name, o.pattern)
			}
		}
		var union uint64
		for _, o := range l.cands {
			union |= o.methods
		}
		rt.cacheAllow(union)
	}
	return nil
}

// rootsFor returns the tree roots a route with these hosts goes into,
// creating them as needed.
func (rt *Router) rootsFor(hosts []string) ([]*node, error) {
	if len(hosts) == 0 {
		if rt.any == nil {
			rt.any = &node{}
		}
		return []*node{rt.any}, nil
	}
	var roots []*node
	seen := map[*node]bool{}
	for _, h := range hosts {
		key, wildcard, err := parseHost(h)
		if err != nil {
			return nil, err
		}
		m := rt.exact
		if wildcard {
			m = rt.wild
		}
		n := m[key]
		if n == nil {
			n = &node{}
			m[key] = n
		}
		if !seen[n] {
			seen[n] = true
			roots = append(roots, n)
		}
	}
	return roots, nil
}

// methodBits returns the bit set of methods, assigning bits to methods beyond
// the standard ones. GET brings HEAD.
func (rt *Router) methodBits(methods []string) (uint64, error) {
	var set uint64
	for _, m := range methods {
		m = strings.ToUpper(m)
		if !isToken(m) {
			return 0, fmt.Errorf("method %q is not a valid token", m)
		}
		b := rt.methodBit(m)
		if b == 0 {
			n := len(stdMethods) + len(rt.custom)
			if n == 64 {
				return 0, fmt.Errorf("more than %d distinct methods", 64)
			}
			b = 1 << n
			rt.custom[m] = b
			rt.methods[n] = m
		}
		set |= b
	}
	if set&bitGET != 0 {
		set |= bitHEAD
	}
	return set, nil
}

func (rt *Router) methodBit(m string) uint64 {
	switch m {
	case "GET":
		return bitGET
	case "HEAD":
		return bitHEAD
	case "POST":
		return 1 << 2
	case "PUT":
		return 1 << 3
	case "PATCH":
		return 1 << 4
	case "DELETE":
		return 1 << 5
	case "OPTIONS":
		return 1 << 6
	case "CONNECT":
		return 1 << 7
	case "TRACE":
		return 1 << 8
	}
	return rt.custom[m]
}

// cacheAllow stores the Allow value of a set of methods while New runs:
// those of every route and of every leaf's routes together.
func (rt *Router) cacheAllow(set uint64) {
	if _, ok := rt.allow[set]; !ok && set != 0 {
		rt.allow[set] = rt.formatAllow(set)
	}
}

// allowString returns the Allow value for a set of methods. Sets New did not
// see, which only a 405 across several patterns produces, are built on the
// spot; the Router is never written to after New.
func (rt *Router) allowString(set uint64) string {
	if s, ok := rt.allow[set]; ok {
		return s
	}
	return rt.formatAllow(set)
}

func (rt *Router) formatAllow(set uint64) string {
	names := make([]string, 0, bits.OnesCount64(set))
	for b := set; b != 0; b &= b - 1 {
		names = append(names, rt.methods[bits.TrailingZeros64(b)])
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func checkHeaders(hms []HeaderMatch) ([]HeaderMatch, error) {
	if len(hms) == 0 {
		return nil, nil
	}
	out := make([]HeaderMatch, len(hms))
	for i, hm := range hms {
		if !isToken(hm.Name) {
			return nil, fmt.Errorf("header name %q is not a valid token", hm.Name)
		}
		n := 0
		for _, set := range []bool{hm.Equals != nil, hm.Present != nil, hm.Regex != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("header %q: exactly one of equals, present and regex must be set", hm.Name)
		}
		hm.Name = http.CanonicalHeaderKey(hm.Name)
		out[i] = hm
	}
	return out, nil
}

// candKey identifies a route's methods and header predicates regardless of
// their order.
func candKey(c *cand) string {
	keys := make([]string, len(c.headers))
	for i := range c.headers {
		keys[i] = c.headers[i].key()
	}
	sort.Strings(keys)
	return fmt.Sprintf("%x\x01%s", c.methods, strings.Join(keys, "\x01"))
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// Lookup finds the route for a request. host is the request's Host (port and
// case do not matter), path its canonical path (see CanonicalPath) and h its
// headers. params is reset and receives the chosen route's parameters; it may
// be nil. Lookup does not allocate, except to build the Allow value of a 405
// whose methods come from several patterns.
//
// Host groups are tried from the most to the least specific: the exact host,
// then wildcards from the longest suffix, then the routes without hosts. The
// first group that finds a route wins; a 405 is returned only if no group
// finds one.
func (rt *Router) Lookup(host, method, path string, h http.Header, params *exchange.Params) (Match, Result) {
	var local exchange.Params
	if params == nil {
		params = &local
	}
	params.Reset()
	if path == "" || path[0] != '/' {
		return Match{}, NotFound
	}
	s := search{h: h, method: rt.methodBit(method), params: params}
	host = canonicalHost(host)
	if root := rt.exact[host]; root != nil && rt.walk(root, path, &s) {
		return s.found()
	}
	if len(rt.wild) > 0 {
		for i := 1; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if root := rt.wild[host[i+1:]]; root != nil && rt.walk(root, path, &s) {
				return s.found()
			}
		}
	}
	if rt.any != nil && rt.walk(rt.any, path, &s) {
		return s.found()
	}
	if s.allow != 0 {
		return Match{Allow: rt.allowString(s.allow)}, MethodNotAllowed
	}
	return Match{}, NotFound
}

func (rt *Router) walk(root *node, path string, s *search) bool {
	if root.match(path, s) {
		return true
	}
	s.params.Reset()
	return false
}

func (s *search) found() (Match, Result) {
	return Match{Value: s.hit.value, Name: s.hit.name, Pattern: s.hit.pattern}, Found
}

// Routes returns the routes the Router was built from, with header names
// canonicalized.
func (rt *Router) Routes() []Route {
	return append([]Route(nil), rt.routes...)
}
