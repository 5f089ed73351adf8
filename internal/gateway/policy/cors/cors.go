// Package cors is the cors policy: cross-origin resource sharing per route.
// The gateway answers preflight requests itself (204, never forwarded) and
// owns the CORS headers of actual responses: it sets them for allowed
// origins and removes any the service sent, so the service cannot widen
// what the route allows. Every response of a CORS route carries
// "Vary: Origin", so caches keep answers for different origins apart.
package cors

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/problem"
)

// ErrWildcardCredentials is returned by New for origin "*" combined with
// credentials, which browsers refuse and which would expose every user's
// data to any site if reflected instead.
var ErrWildcardCredentials = errors.New("cors: origin \"*\" cannot be combined with allow_credentials")

// ErrRejected is set as the exchange's Err of a refused preflight.
var ErrRejected = &classError{}

type classError struct{}

func (*classError) Error() string      { return "CORS preflight refused" }
func (*classError) ErrorClass() string { return "cors_rejected" }

// Config is a route's CORS policy.
type Config struct {
	// AllowOrigins are exact origins, "scheme://*.domain" wildcards or "*".
	AllowOrigins []string
	// AllowMethods are the methods allowed cross-origin. Empty means
	// RouteMethods, or GET, HEAD and POST when that is empty too.
	AllowMethods []string
	// AllowHeaders are the request headers allowed; "*" allows any.
	AllowHeaders []string
	// ExposeHeaders are the response headers scripts may read.
	ExposeHeaders []string
	// AllowCredentials lets browsers send cookies and authorization.
	AllowCredentials bool
	// MaxAge is how long a preflight answer may be cached; 0 sends none.
	MaxAge time.Duration
	// RouteMethods are the methods the route matches (empty: any). An
	// OPTIONS request that is not a preflight is answered 405 when the
	// route does not match OPTIONS itself.
	RouteMethods []string
	// OnRejected, if set, is called for every refused preflight.
	OnRejected func()
}

type policy struct {
	next        http.Handler
	any         bool
	patterns    []originPattern
	methods     []string
	methodsHdr  string
	headers     map[string]bool // lower-case names
	anyHeader   bool
	headersHdr  string
	exposeHdr   string
	credentials bool
	maxAge      string
	optionsOK   bool
	allowHdr    string
	onRejected  func()
}

// New compiles cfg into a handler around next.
func New(next http.Handler, cfg Config) (http.Handler, error) {
	p := &policy{next: next, credentials: cfg.AllowCredentials, onRejected: cfg.OnRejected, headers: map[string]bool{}}
	if len(cfg.AllowOrigins) == 0 {
		return nil, errors.New("cors: allow_origins is required")
	}
	for _, o := range cfg.AllowOrigins {
		if o == "*" {
			if cfg.AllowCredentials {
				return nil, ErrWildcardCredentials
			}
			p.any = true
			continue
		}
		pat, err := parsePattern(o)
		if err != nil {
			return nil, err
		}
		p.patterns = append(p.patterns, pat)
	}
	p.methods = cfg.AllowMethods
	if len(p.methods) == 0 {
		p.methods = cfg.RouteMethods
	}
	if len(p.methods) == 0 {
		p.methods = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	}
	p.methods = upper(p.methods)
	p.methodsHdr = strings.Join(p.methods, ", ")
	var names []string
	for _, h := range cfg.AllowHeaders {
		if h == "*" {
			p.anyHeader = true
			continue
		}
		p.headers[strings.ToLower(h)] = true
		names = append(names, http.CanonicalHeaderKey(h))
	}
	p.headersHdr = strings.Join(names, ", ")
	p.exposeHdr = strings.Join(cfg.ExposeHeaders, ", ")
	if cfg.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(int64(cfg.MaxAge/time.Second), 10)
	}
	rm := upper(cfg.RouteMethods)
	p.optionsOK = len(rm) == 0 || slices.Contains(rm, http.MethodOptions)
	p.allowHdr = strings.Join(rm, ", ")
	return p, nil
}

func upper(ms []string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.ToUpper(m)
	}
	return out
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin, or
// "" when it is not allowed.
func (p *policy) allowOrigin(origin string) string {
	if p.any {
		return "*"
	}
	lower := origin
	for i := 0; i < len(origin); i++ {
		if c := origin[i]; c >= 'A' && c <= 'Z' {
			lower = strings.ToLower(origin)
			break
		}
	}
	for i := range p.patterns {
		if p.patterns[i].match(lower) {
			return origin
		}
	}
	return ""
}

func addVary(h http.Header, v string) {
	for _, have := range h["Vary"] {
		if strings.EqualFold(have, v) {
			return
		}
	}
	h["Vary"] = append(h["Vary"], v)
}

func (p *policy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origins := r.Header["Origin"]
	if r.Method == http.MethodOptions && len(r.Header["Access-Control-Request-Method"]) > 0 && len(origins) > 0 {
		p.preflight(w, r, origins)
		return
	}
	if r.Method == http.MethodOptions && !p.optionsOK {
		w.Header()["Allow"] = []string{p.allowHdr}
		p.problem(w, r, http.StatusMethodNotAllowed, "method OPTIONS is not allowed here", nil)
		return
	}
	allowed := ""
	if len(origins) == 1 {
		allowed = p.allowOrigin(origins[0])
	}
	cw := &writer{w: w, p: p, origin: allowed}
	p.next.ServeHTTP(cw, r)
	cw.apply()
}

func (p *policy) preflight(w http.ResponseWriter, r *http.Request, origins []string) {
	h := w.Header()
	addVary(h, "Origin")
	addVary(h, "Access-Control-Request-Method")
	addVary(h, "Access-Control-Request-Headers")
	allowed := ""
	if len(origins) == 1 {
		allowed = p.allowOrigin(origins[0])
	}
	if allowed == "" {
		p.reject(w, r, "origin is not allowed")
		return
	}
	method := r.Header.Get("Access-Control-Request-Method")
	if !slices.Contains(p.methods, method) {
		p.reject(w, r, "method is not allowed for cross-origin requests")
		return
	}
	requested := r.Header.Values("Access-Control-Request-Headers")
	for _, line := range requested {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "" && !p.anyHeader && !p.headers[name] {
				p.reject(w, r, "request header is not allowed for cross-origin requests")
				return
			}
		}
	}
	h["Access-Control-Allow-Origin"] = []string{allowed}
	if p.credentials {
		h["Access-Control-Allow-Credentials"] = []string{"true"}
	}
	h["Access-Control-Allow-Methods"] = []string{p.methodsHdr}
	switch {
	case p.anyHeader && len(requested) > 0:
		// "*" is a wildcard only without credentials; echoing what was
		// asked works in both cases.
		h["Access-Control-Allow-Headers"] = []string{strings.Join(requested, ", ")}
	case p.headersHdr != "":
		h["Access-Control-Allow-Headers"] = []string{p.headersHdr}
	}
	if p.maxAge != "" {
		h["Access-Control-Max-Age"] = []string{p.maxAge}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (p *policy) reject(w http.ResponseWriter, r *http.Request, detail string) {
	if p.onRejected != nil {
		p.onRejected()
	}
	p.problem(w, r, http.StatusForbidden, "CORS preflight refused: "+detail, ErrRejected)
}

func (p *policy) problem(w http.ResponseWriter, r *http.Request, status int, detail string, err error) {
	var id string
	if x := exchange.From(r.Context()); x != nil {
		id = x.ID
		if err != nil {
			x.Err = err
		}
	}
	problem.Write(w, problem.Details{Status: status, Detail: detail, RequestID: id})
}

// writer sets the CORS headers of an actual response just before its
// header is written, after removing any the service sent.
type writer struct {
	w      http.ResponseWriter
	p      *policy
	origin string
	done   bool
}

var (
	_ http.Flusher  = (*writer)(nil)
	_ http.Hijacker = (*writer)(nil)
)

// owned are the response headers the gateway decides on a CORS route.
var owned = []string{
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age",
}

func (cw *writer) apply() {
	if cw.done {
		return
	}
	cw.done = true
	h := cw.w.Header()
	for _, k := range owned {
		if _, ok := h[k]; ok {
			delete(h, k)
		}
	}
	addVary(h, "Origin")
	if cw.origin == "" {
		return
	}
	h["Access-Control-Allow-Origin"] = []string{cw.origin}
	if cw.p.credentials {
		h["Access-Control-Allow-Credentials"] = []string{"true"}
	}
	if cw.p.exposeHdr != "" {
		h["Access-Control-Expose-Headers"] = []string{cw.p.exposeHdr}
	}
}

func (cw *writer) Header() http.Header { return cw.w.Header() }

func (cw *writer) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		cw.apply()
	}
	cw.w.WriteHeader(code)
}

func (cw *writer) Write(b []byte) (int, error) {
	cw.apply()
	return cw.w.Write(b)
}

// Flush sends buffered data to the client, writing the header first.
func (cw *writer) Flush() { _ = cw.FlushError() }

// FlushError is Flush reporting the error, for http.ResponseController.
func (cw *writer) FlushError() error {
	cw.apply()
	return http.NewResponseController(cw.w).Flush()
}

// Hijack hands the connection over to the caller.
func (cw *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(cw.w).Hijack()
	if err == nil {
		cw.done = true
	}
	return conn, brw, err
}

// Unwrap returns the underlying ResponseWriter for http.ResponseController.
func (cw *writer) Unwrap() http.ResponseWriter { return cw.w }
