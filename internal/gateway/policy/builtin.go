package policy

import (
	"errors"
	"net/http"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy/auth"
	"github.com/portico-dev/portico/internal/gateway/policy/authz"
	"github.com/portico-dev/portico/internal/gateway/policy/bodylimit"
	"github.com/portico-dev/portico/internal/gateway/policy/headers"
)

// Builtin returns the table of built-in policies in chain order, outermost
// first. Each call returns a new slice, so a caller may extend or reorder
// its copy.
//
// Header rules are split in two: response rules run outermost, so they also
// apply to answers written by other policies (a 413 from body_limit, later a
// 401 or 429); request rules run innermost, so the other policies see the
// request as the client sent it and only the upstream sees the rewritten
// headers.
//
// A route's rate_limit is split in two as well: limits and quotas keyed
// only by client_ip and headers run before auth, so a flood of bad
// credentials is throttled before any credential is checked; those keyed
// by consumer or api_key need the identity auth records and run after
// authorize.
func Builtin() []Factory {
	return []Factory{
		{Name: "response_headers", Build: buildResponseHeaders},
		{Name: "cors", Build: buildCORS},
		{Name: "ip_filter", Build: buildIPFilter},
		{Name: "rate_limit_pre_auth", Build: buildRateLimitPreAuth},
		{Name: "auth", Build: buildAuth},
		{Name: "authorize", Build: buildAuthorize},
		{Name: "rate_limit", Build: buildRateLimitPostAuth},
		{Name: "body_limit", Build: buildBodyLimit},
		{Name: "request_headers", Build: buildRequestHeaders},
	}
}

func buildBodyLimit(_ Env, route *config.Route) (Middleware, error) {
	limit := int64(route.MaxBodyBytes)
	if limit <= 0 {
		return nil, nil
	}
	return func(next http.Handler) http.Handler { return bodylimit.New(next, limit) }, nil
}

func buildRequestHeaders(env Env, route *config.Route) (Middleware, error) {
	if route.Headers == nil {
		return nil, nil
	}
	ops, err := headers.CompileRequest(route.Headers.Request, env.RequestIDHeader)
	if err != nil || ops.Empty() {
		return nil, err
	}
	return func(next http.Handler) http.Handler { return headers.NewRequest(next, ops) }, nil
}

func buildResponseHeaders(_ Env, route *config.Route) (Middleware, error) {
	if route.Headers == nil {
		return nil, nil
	}
	ops, err := headers.CompileResponse(route.Headers.Response)
	if err != nil || ops.Empty() {
		return nil, err
	}
	return func(next http.Handler) http.Handler { return headers.NewResponse(next, ops) }, nil
}

func buildAuth(env Env, route *config.Route) (Middleware, error) {
	if route.Auth == nil {
		return nil, nil
	}
	p, err := auth.Compile(env.Auth, route.Auth)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler { return auth.New(next, p) }, nil
}

func buildAuthorize(_ Env, route *config.Route) (Middleware, error) {
	if route.Authorize == nil {
		return nil, nil
	}
	if route.Auth == nil {
		return nil, errors.New("authorize needs auth on the same route")
	}
	rules := authz.Compile(route.Authorize, auth.Challenges(route.Auth, ""))
	return func(next http.Handler) http.Handler { return authz.New(next, rules) }, nil
}
