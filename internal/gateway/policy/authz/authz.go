// Package authz is the authorization policy: it checks that the consumer
// the auth policy recorded holds what the route requires (scopes, roles,
// claim values, consumers) and refuses the request otherwise.
//
// An anonymous request (a route with optional auth and no credential) is
// refused with 401 and the route's challenges, since credentials could
// change the answer; an authenticated consumer that lacks something is
// refused with 403 and a problem+json detail naming the first missing
// requirement. Details name only what the configuration requires, never
// what the consumer's credential holds.
package authz

import (
	"net/http"
	"slices"
	"strings"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/problem"
)

// Error classes the access log records for refused requests.
const (
	ClassForbidden       = "forbidden"
	ClassUnauthenticated = "unauthenticated"
)

// Error is why a request was refused.
type Error struct {
	Class string
	Msg   string
}

func (e *Error) Error() string      { return e.Msg }
func (e *Error) ErrorClass() string { return e.Class }

var errAnonymous = &Error{ClassUnauthenticated, "anonymous request on a route that requires authorization"}

// Rules are the compiled requirements of one route.
type Rules struct {
	scopes, roles req
	claims        []claimReq
	consumers     []ConsumerRef
	challenges    []string
}

// ConsumerRef names one consumer in authorize.consumers: a consumer of the
// configuration (Issuer empty) or the subject of a JWT issuer or
// introspection provider, named by its configuration name.
type ConsumerRef struct {
	Issuer string
	ID     string
}

// ParseConsumerRef reads an authorize.consumers entry: "ID" for a consumer
// of auth.consumers, "ISSUER:ID" for a token subject vouched for by the JWT
// issuer or introspection provider named ISSUER. Only the first ':'
// separates, so a subject may contain more.
func ParseConsumerRef(s string) ConsumerRef {
	if iss, id, ok := strings.Cut(s, ":"); ok {
		return ConsumerRef{Issuer: iss, ID: id}
	}
	return ConsumerRef{ID: s}
}

func (ref ConsumerRef) matches(c *exchange.Consumer) bool {
	return c.ID == ref.ID && c.Issuer == ref.Issuer
}

type req struct {
	kind         string // "scope" or "role"
	allOf, anyOf []string
	anyDetail    string
}

type claimReq struct {
	name   string
	anyOf  []string
	detail string
}

// Compile builds the rules of a, answering anonymous requests with
// challenges in WWW-Authenticate.
func Compile(a *config.Authorize, challenges []string) *Rules {
	r := &Rules{challenges: challenges}
	for _, s := range a.Consumers {
		r.consumers = append(r.consumers, ParseConsumerRef(s))
	}
	if s := a.Scopes; s != nil {
		r.scopes = newReq("scope", s)
	}
	if s := a.Roles; s != nil {
		r.roles = newReq("role", s)
	}
	for _, c := range a.Claims {
		r.claims = append(r.claims, claimReq{name: c.Name, anyOf: c.AnyOf,
			detail: "claim " + quote(c.Name) + " must be one of " + quoteList(c.AnyOf)})
	}
	return r
}

func newReq(kind string, s *config.Requirement) req {
	q := req{kind: kind, allOf: s.AllOf, anyOf: s.AnyOf}
	if len(s.AnyOf) > 0 {
		q.anyDetail = "missing " + kind + ": one of " + quoteList(s.AnyOf) + " is required"
	}
	return q
}

// Check returns "" when c satisfies the rules, or a detail naming the
// first requirement it misses.
func (r *Rules) Check(c *exchange.Consumer) string {
	if d := r.scopes.check(c.Scopes); d != "" {
		return d
	}
	if d := r.roles.check(c.Roles); d != "" {
		return d
	}
	for _, cr := range r.claims {
		vals := c.Claims[cr.name]
		if !slices.ContainsFunc(vals, func(v string) bool { return slices.Contains(cr.anyOf, v) }) {
			return cr.detail
		}
	}
	if len(r.consumers) > 0 && !slices.ContainsFunc(r.consumers, func(ref ConsumerRef) bool { return ref.matches(c) }) {
		return "this consumer is not allowed on this route"
	}
	return ""
}

func (q *req) check(have []string) string {
	for _, s := range q.allOf {
		if !slices.Contains(have, s) {
			return "missing " + q.kind + " " + quote(s)
		}
	}
	if len(q.anyOf) > 0 && !slices.ContainsFunc(have, func(s string) bool { return slices.Contains(q.anyOf, s) }) {
		return q.anyDetail
	}
	return ""
}

// New returns the handler that authorizes requests before next.
func New(next http.Handler, r *Rules) http.Handler { return &handler{next: next, r: r} }

type handler struct {
	next http.Handler
	r    *Rules
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange.From(r.Context())
	var c *exchange.Consumer
	if x != nil {
		c = x.Consumer
	}
	if c == nil {
		d := problem.Details{Status: http.StatusUnauthorized, Detail: "this route needs credentials"}
		if x != nil {
			x.Err, d.RequestID = errAnonymous, x.ID
		}
		if len(h.r.challenges) > 0 {
			w.Header()["Www-Authenticate"] = h.r.challenges
		}
		problem.Write(w, d)
		return
	}
	if detail := h.r.Check(c); detail != "" {
		x.Err = &Error{ClassForbidden, detail}
		problem.Write(w, problem.Details{Status: http.StatusForbidden, Detail: detail, RequestID: x.ID})
		return
	}
	h.next.ServeHTTP(w, r)
}

func quote(s string) string { return `"` + s + `"` }

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return strings.Join(q, ", ")
}
