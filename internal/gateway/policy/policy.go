// Package policy compiles a route's policies into one http.Handler chain.
//
// A policy is one per-route concern (body limit, header rules, and later
// authentication, rate limiting, CORS, IP filters) applied as http.Handler
// middleware. Policies are listed in a table of Factories, in chain order.
// When a snapshot is built, Chain asks every factory of the table whether the
// route uses its policy and wraps the route's handler accordingly; requests
// then run the compiled chain and nothing is assembled per request.
//
// Each built-in policy lives in its own subpackage (policy/bodylimit,
// policy/headers); this package only holds the table and the wiring between
// route configuration and those subpackages. See docs/policies.md.
package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy/auth"
	"github.com/portico-dev/portico/internal/gateway/policy/ratelimit"
)

// Middleware wraps next with one policy.
type Middleware func(next http.Handler) http.Handler

// Env holds what policies share across routes and snapshots. Factories
// receive it at build time; the zero value is usable.
type Env struct {
	// Logger receives the policies' own log lines. If nil, they are
	// discarded.
	Logger *slog.Logger
	// RequestIDHeader is the header the gateway writes the request id in.
	// Request header rules may not name it. If empty, X-Request-Id.
	RequestIDHeader string
	// Auth supplies the consumers, JWT verifiers and introspection clients
	// of the snapshot being built; its caches outlive reloads. If nil, a
	// route with auth is rejected.
	Auth *auth.Providers
	// RateLimit holds the rate-limit stores, which live in the gateway
	// Server and not in a snapshot, so counters survive reloads. If nil, a
	// route with rate_limit is rejected.
	RateLimit *ratelimit.Shared
	// IPFilterDenied, if set, counts requests refused by ip_filter, by
	// route.
	IPFilterDenied *prometheus.CounterVec
	// CORSRejected, if set, counts refused CORS preflights, by route.
	CORSRejected *prometheus.CounterVec
}

// Factory builds one policy for a route.
type Factory struct {
	// Name identifies the policy in errors and docs, e.g. "body_limit".
	// Names are unique within a table.
	Name string
	// Build returns the policy's middleware for route, or nil when the
	// route does not use this policy. It validates the route's settings for
	// the policy; an error rejects the whole snapshot. Build runs once per
	// route and snapshot, never per request.
	Build func(env Env, route *config.Route) (Middleware, error)
}

// Chain compiles route's policies around next using table, whose first
// entry is the outermost policy. It returns next itself when the route uses
// no policy. Every error names the route and the policy.
func Chain(table []Factory, env Env, route *config.Route, next http.Handler) (http.Handler, error) {
	if route == nil {
		return nil, errors.New("policy chain: route is nil")
	}
	if next == nil {
		return nil, fmt.Errorf("policy chain of route %q: next handler is nil", route.Name)
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	mws := make([]Middleware, 0, len(table))
	names := make([]string, 0, len(table))
	for i, f := range table {
		if f.Name == "" || f.Build == nil {
			return nil, fmt.Errorf("policy table entry %d (%q) needs a name and a Build function", i, f.Name)
		}
		for _, seen := range names {
			if seen == f.Name {
				return nil, fmt.Errorf("policy table names %q twice", f.Name)
			}
		}
		names = append(names, f.Name)
		mw, err := f.Build(env, route)
		if err != nil {
			return nil, fmt.Errorf("route %q: policy %s: %w", route.Name, f.Name, err)
		}
		if mw != nil {
			mws = append(mws, mw)
		}
	}
	h := next
	for i := len(mws) - 1; i >= 0; i-- {
		if h = mws[i](h); h == nil {
			return nil, fmt.Errorf("route %q: a policy returned a nil handler", route.Name)
		}
	}
	return h, nil
}
