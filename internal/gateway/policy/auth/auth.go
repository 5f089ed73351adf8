// Package auth is the authentication policy: it finds the credential a
// request carries (an API key, a bearer JWT or opaque token, basic-auth
// credentials), verifies it and records the consumer in the exchange, where
// authorization, rate limiting, the proxy's identity headers and the access
// log find it.
//
// A request without credential is refused with 401 and WWW-Authenticate
// challenges, or let through as anonymous on a route whose auth is optional.
// An invalid credential is always refused with 401. A request carrying more
// than one credential (two Authorization headers, a token in both the
// header and the query, an API key and a bearer token) is refused with 400:
// a gateway and an upstream that pick different ones could disagree about
// who is calling. The credential is removed from the upstream request unless
// the route forwards it.
package auth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/introspect"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/jwt"
	"github.com/portico-dev/portico/internal/problem"
)

// Error classes the access log records for refused requests.
const (
	ClassUnauthenticated = "unauthenticated"
	ClassBadCredentials  = "bad_credentials"
	ClassUnavailable     = "auth_unavailable"
	ClassBusy            = "auth_busy"
)

// Error is why the policy refused a request. Its class names it in the
// access log; it never holds the credential.
type Error struct {
	Class string
	Msg   string
}

func (e *Error) Error() string      { return e.Msg }
func (e *Error) ErrorClass() string { return e.Class }

var (
	errMissing     = &Error{ClassUnauthenticated, "no credential"}
	errInvalid     = &Error{ClassUnauthenticated, "invalid credential"}
	errAmbiguous   = &Error{ClassBadCredentials, "more than one credential"}
	errUnavailable = &Error{ClassUnavailable, "credential could not be checked"}
	errBusy        = &Error{ClassBusy, "too many credential checks in progress"}
)

// retryAfter is the Retry-After value of 503 answers: credential checks
// that could not run now may succeed a second later.
var retryAfter = []string{"1"}

// Policy is the compiled authentication of one route.
type Policy struct {
	apiKeyHeader string // canonical, or ""
	apiKeyQuery  string
	bearerQuery  string
	basic        bool
	optional     bool
	forward      bool

	store      *Store
	verifiers  []*jwt.Verifier
	introspect *introspect.Client

	missing   []string // WWW-Authenticate challenges
	invalid   []string
	ambiguous []string
}

// Compile builds a route's authentication from its configuration, drawing
// shared providers from p.
func Compile(p *Providers, ra *config.RouteAuth) (*Policy, error) {
	if p == nil {
		return nil, errors.New("authentication providers are not available")
	}
	pol := &Policy{basic: ra.Basic.IsEnabled(), optional: ra.Optional, forward: ra.ForwardCredentials, bearerQuery: ra.BearerQuery}
	if k := ra.APIKey; k != nil {
		pol.apiKeyQuery = k.Query
		if k.Header != "" {
			pol.apiKeyHeader = http.CanonicalHeaderKey(k.Header)
		}
		if pol.apiKeyHeader == "" && pol.apiKeyQuery == "" {
			pol.apiKeyHeader = config.DefaultAPIKeyHeader
		}
	}
	if ra.APIKey != nil || pol.basic {
		s, err := p.Consumers()
		if err != nil {
			return nil, err
		}
		pol.store = s
	}
	if j := ra.JWT; j != nil {
		names := j.Issuers
		if len(names) == 0 {
			for _, ic := range p.Config().JWTIssuers {
				names = append(names, ic.Name)
			}
		}
		if len(names) == 0 {
			return nil, errors.New("jwt: no JWT issuers are configured")
		}
		for _, n := range names {
			v, err := p.Verifier(n)
			if err != nil {
				return nil, err
			}
			pol.verifiers = append(pol.verifiers, v)
		}
	}
	if in := ra.Introspection; in != nil {
		name := in.Provider
		if name == "" && len(p.Config().Introspection) == 1 {
			name = p.Config().Introspection[0].Name
		}
		c, err := p.Introspector(name)
		if err != nil {
			return nil, err
		}
		pol.introspect = c
	}
	if pol.apiKeyHeader == "" && pol.apiKeyQuery == "" && !pol.bearer() && !pol.basic {
		return nil, errors.New("no authentication method: set api_key, jwt, introspection or basic")
	}
	pol.missing = Challenges(ra, "")
	pol.invalid = Challenges(ra, "invalid_token")
	pol.ambiguous = Challenges(ra, "invalid_request")
	return pol, nil
}

func (p *Policy) bearer() bool { return len(p.verifiers) > 0 || p.introspect != nil }

// Challenges returns the WWW-Authenticate values for a route's auth, with
// the RFC 6750 error code bearerError on the Bearer challenge when set.
func Challenges(ra *config.RouteAuth, bearerError string) []string {
	realm := ra.Realm
	if realm == "" {
		realm = config.DefaultRealm
	}
	var out []string
	if ra.JWT != nil || ra.Introspection != nil {
		c := `Bearer realm="` + realm + `"`
		if bearerError != "" {
			c += `, error="` + bearerError + `"`
		}
		out = append(out, c)
	}
	if ra.Basic.IsEnabled() {
		out = append(out, `Basic realm="`+realm+`", charset="UTF-8"`)
	}
	if ra.APIKey != nil {
		out = append(out, `ApiKey realm="`+realm+`"`)
	}
	return out[:len(out):len(out)]
}

// New returns the handler that authenticates requests before next.
func New(next http.Handler, p *Policy) http.Handler {
	return &handler{next: next, p: p}
}

type handler struct {
	next http.Handler
	p    *Policy
}

// credential kinds.
const (
	credNone = iota
	credAPIKey
	credBearer
	credBasic
)

// found is the credential a request carries and where it was.
type found struct {
	kind   int
	value  string
	header string // the header it came from, or ""
	query  string // the query parameter it came from, or ""
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange.From(r.Context())
	cred, ok := h.find(r)
	if x != nil && r.URL.RawQuery != "" {
		// Redact before anything else, so a refused request does not log
		// its credentials either.
		x.LogQuery = h.p.redactQuery(r.URL.RawQuery)
	}
	if !ok {
		h.refuse(w, x, http.StatusBadRequest, errAmbiguous, h.p.ambiguous, "send exactly one credential: one Authorization header, or one API key, in one place")
		return
	}
	if cred.kind == credNone {
		if !h.p.optional {
			h.refuse(w, x, http.StatusUnauthorized, errMissing, h.p.missing, "this route needs credentials")
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	c, err := h.verify(r, cred)
	switch {
	case errors.Is(err, ErrBusy), errors.Is(err, introspect.ErrBusy):
		w.Header()["Retry-After"] = retryAfter
		h.refuse(w, x, http.StatusServiceUnavailable, errBusy, nil, "too many credentials are being checked right now; try again shortly")
		return
	case errors.Is(err, jwt.ErrKeysUnavailable), errors.Is(err, introspect.ErrUnavailable):
		w.Header()["Retry-After"] = retryAfter
		h.refuse(w, x, http.StatusServiceUnavailable, errUnavailable, nil, "the credential cannot be checked right now; try again later")
		return
	case errors.Is(err, jwt.ErrExpired):
		h.refuse(w, x, http.StatusUnauthorized, errInvalid, h.p.invalid, "the token has expired")
		return
	case err != nil || c == nil:
		h.refuse(w, x, http.StatusUnauthorized, errInvalid, h.p.invalid, "the credential is not valid")
		return
	}
	if x != nil {
		x.Consumer = c
	}
	if !h.p.forward {
		r = strip(r, cred)
	}
	h.next.ServeHTTP(w, r)
}

// find returns the one credential r carries for this route; ok is false
// when it carries several.
func (h *handler) find(r *http.Request) (found, bool) {
	var got found
	n := 0
	take := func(f found) {
		n++
		got = f
	}
	if v := r.Header["Authorization"]; len(v) > 1 {
		return got, false
	} else if len(v) == 1 {
		scheme, rest, _ := strings.Cut(v[0], " ")
		switch {
		case h.p.bearer() && strings.EqualFold(scheme, "Bearer"):
			take(found{kind: credBearer, value: strings.TrimSpace(rest), header: "Authorization"})
		case h.p.basic && strings.EqualFold(scheme, "Basic"):
			take(found{kind: credBasic, value: strings.TrimSpace(rest), header: "Authorization"})
		}
	}
	if name := h.p.apiKeyHeader; name != "" {
		if v := r.Header[name]; len(v) > 1 {
			return got, false
		} else if len(v) == 1 {
			take(found{kind: credAPIKey, value: v[0], header: name})
		}
	}
	if q := r.URL.RawQuery; q != "" {
		for _, p := range [2]struct {
			name string
			kind int
		}{{h.p.apiKeyQuery, credAPIKey}, {h.p.bearerQuery, credBearer}} {
			if p.name == "" {
				continue
			}
			v, count := queryValue(q, p.name)
			if count > 1 {
				return got, false
			}
			if count == 1 {
				take(found{kind: p.kind, value: v, query: p.name})
			}
		}
	}
	return got, n <= 1
}

func (h *handler) verify(r *http.Request, cred found) (*exchange.Consumer, error) {
	if cred.value == "" {
		return nil, errInvalid
	}
	switch cred.kind {
	case credAPIKey:
		return h.p.store.APIKey(cred.value), nil
	case credBasic:
		b, err := base64.StdEncoding.DecodeString(cred.value)
		if err != nil {
			return nil, errInvalid
		}
		user, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return nil, errInvalid
		}
		return h.p.store.Basic(r.Context(), user, pass)
	}
	return h.bearerToken(r, cred.value)
}

// bearerToken verifies a bearer token: a token in JWS form goes to the
// route's JWT issuers, any other to its introspection provider.
func (h *handler) bearerToken(r *http.Request, tok string) (*exchange.Consumer, error) {
	if len(h.p.verifiers) == 0 || strings.Count(tok, ".") != 2 {
		if h.p.introspect == nil {
			return nil, errInvalid
		}
		return h.p.introspect.Introspect(r.Context(), tok)
	}
	if len(h.p.verifiers) == 1 {
		return h.p.verifiers[0].Verify(r.Context(), tok)
	}
	for _, v := range h.p.verifiers {
		if c, ok := v.Cached(tok); ok {
			return c, nil
		}
	}
	iss := jwt.PeekIssuer(tok)
	for _, v := range h.p.verifiers {
		if v.Issuer() == iss {
			return v.Verify(r.Context(), tok)
		}
	}
	return nil, errInvalid
}

func (h *handler) refuse(w http.ResponseWriter, x *exchange.Exchange, status int, err *Error, challenges []string, detail string) {
	d := problem.Details{Status: status, Detail: detail}
	if x != nil {
		x.Err = err
		d.RequestID = x.ID
	}
	if len(challenges) > 0 {
		w.Header()["Www-Authenticate"] = challenges
	}
	problem.Write(w, d)
}

// strip returns r without the credential: the header is removed in place
// (it is the request the proxy forwards); for a query parameter a copy of
// r with its own URL is returned.
func strip(r *http.Request, cred found) *http.Request {
	if cred.header != "" {
		delete(r.Header, cred.header)
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.RawQuery = removeQuery(r.URL.RawQuery, cred.query)
	r2.URL = &u
	return r2
}

// queryValue returns the decoded value of the parameter name in the raw
// query q and how many times the parameter occurs. Parameter names are
// compared after decoding, as url.ParseQuery would.
func queryValue(q, name string) (string, int) {
	var val string
	n := 0
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(pair, "=")
		if !keyIs(k, name) {
			continue
		}
		n++
		if dv, err := url.QueryUnescape(v); err == nil {
			val = dv
		} else {
			val = ""
		}
	}
	return val, n
}

func keyIs(k, name string) bool {
	if k == name {
		return true
	}
	if !strings.ContainsAny(k, "%+") {
		return false
	}
	dk, err := url.QueryUnescape(k)
	return err == nil && dk == name
}

// removeQuery returns q without the parameter name.
func removeQuery(q, name string) string {
	parts := strings.Split(q, "&")
	parts = slices.DeleteFunc(parts, func(p string) bool {
		k, _, _ := strings.Cut(p, "=")
		return keyIs(k, name)
	})
	return strings.Join(parts, "&")
}

// redactQuery returns q with the value of the parameter name replaced, for
// the access log.
func redactQuery(q, name string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if keyIs(k, name) {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// redactQuery returns q with the values of the route's credential
// parameters redacted, or "" when q holds none.
func (p *Policy) redactQuery(q string) string {
	out := ""
	for _, name := range [2]string{p.apiKeyQuery, p.bearerQuery} {
		if name == "" {
			continue
		}
		src := q
		if out != "" {
			src = out
		}
		if _, n := queryValue(src, name); n > 0 {
			out = redactQuery(src, name)
		}
	}
	return out
}
