package policy

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy/cors"
	"github.com/portico-dev/portico/internal/gateway/policy/ipfilter"
	"github.com/portico-dev/portico/internal/gateway/policy/ratelimit"
)

// ErrNoRateLimitStores is returned for a route with rate_limit when Env
// carries no stores.
var ErrNoRateLimitStores = errors.New("rate_limit: the gateway has no rate-limit stores")

func buildCORS(env Env, route *config.Route) (Middleware, error) {
	c := route.CORS
	if c == nil {
		return nil, nil
	}
	cfg := cors.Config{
		AllowOrigins:     c.AllowOrigins,
		AllowMethods:     c.AllowMethods,
		AllowHeaders:     c.AllowHeaders,
		ExposeHeaders:    c.ExposeHeaders,
		AllowCredentials: c.AllowCredentials,
		MaxAge:           c.MaxAge.D(),
		RouteMethods:     route.Match.Methods,
	}
	if env.CORSRejected != nil {
		cfg.OnRejected = env.CORSRejected.WithLabelValues(route.Name).Inc
	}
	// Compile once here so a bad pattern rejects the snapshot.
	if _, err := cors.New(http.NotFoundHandler(), cfg); err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		h, _ := cors.New(next, cfg)
		return h
	}, nil
}

func buildIPFilter(env Env, route *config.Route) (Middleware, error) {
	f := route.IPFilter
	if f == nil {
		return nil, nil
	}
	parse := func(field string, list []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(list))
		for i, s := range list {
			p, err := config.ParseCIDR(s)
			if err != nil {
				return nil, fmt.Errorf("ip_filter.%s[%d]: %w", field, i, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	allow, err := parse("allow", f.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := parse("deny", f.Deny)
	if err != nil {
		return nil, err
	}
	filter, err := ipfilter.NewFilter(allow, deny)
	if err != nil {
		return nil, err
	}
	var onDenied ipfilter.OnDenied
	if env.IPFilterDenied != nil {
		onDenied = env.IPFilterDenied.WithLabelValues(route.Name).Inc
	}
	return func(next http.Handler) http.Handler { return ipfilter.New(next, filter, onDenied) }, nil
}

// ErrAPIKeyPartWithoutAPIKeyAuth is returned for a rate-limit key with an
// api_key part on a route whose auth does not accept API keys: no request
// of the route could ever fill the part.
var ErrAPIKeyPartWithoutAPIKeyAuth = errors.New("key part \"api_key\" needs auth.api_key on the route")

func buildRateLimitPreAuth(env Env, route *config.Route) (Middleware, error) {
	return buildRateLimit(env, route, true)
}

func buildRateLimitPostAuth(env Env, route *config.Route) (Middleware, error) {
	return buildRateLimit(env, route, false)
}

// buildRateLimit builds the limits and quotas of route that run before
// auth (pre) or after it: those whose key needs the identity auth records
// run after it, the others before.
func buildRateLimit(env Env, route *config.Route, pre bool) (Middleware, error) {
	rl := route.RateLimit
	if rl == nil {
		return nil, nil
	}
	if env.RateLimit == nil {
		return nil, ErrNoRateLimitStores
	}
	apiKeys := route.Auth != nil && route.Auth.APIKey != nil
	// Keys that need an identity run after auth; without auth on the route
	// there is no identity to wait for.
	phase := func(ks ratelimit.KeySpec) bool { return !ks.NeedsIdentity() || route.Auth == nil }
	parse := func(field string, i int, parts []string) (ratelimit.KeySpec, error) {
		ks, err := ratelimit.ParseKey(parts)
		if err == nil && !apiKeys && slices.Contains(parts, "api_key") {
			err = ErrAPIKeyPartWithoutAPIKeyAuth
		}
		if err != nil {
			return ks, fmt.Errorf("rate_limit.%s[%d]: %w", field, i, err)
		}
		return ks, nil
	}
	cfg := ratelimit.Config{Route: route.Name, FailClosed: rl.FailClosed(), Headers: rl.HeadersEnabled()}
	bucket := func(b, name string) string {
		if b != "" {
			return b
		}
		return route.Name + "/" + name
	}
	for i, l := range rl.Limits {
		ks, err := parse("limits", i, l.Key)
		if err != nil {
			return nil, err
		}
		if phase(ks) != pre {
			continue
		}
		cfg.Rates = append(cfg.Rates, ratelimit.Rate{
			Name: l.Name, Bucket: bucket(l.Bucket, l.Name), Key: ks,
			Limit: ratelimit.Limit{Rate: l.Rate, Period: l.Per.D(), Burst: l.Burst},
			Redis: l.Store == "redis",
		})
	}
	for i, q := range rl.Quotas {
		ks, err := parse("quotas", i, q.Key)
		if err != nil {
			return nil, err
		}
		period, err := ratelimit.ParsePeriod(q.Period)
		if err != nil {
			return nil, fmt.Errorf("rate_limit.quotas[%d]: %w", i, err)
		}
		if phase(ks) != pre {
			continue
		}
		cfg.Quotas = append(cfg.Quotas, ratelimit.QuotaRule{
			Name: q.Name, Bucket: bucket(q.Bucket, q.Name), Key: ks, Limit: q.Limit, Period: period,
			Redis: q.Store != "local",
		})
	}
	if len(cfg.Rates) == 0 && len(cfg.Quotas) == 0 {
		return nil, nil
	}
	// Compile once here so a bad setting rejects the snapshot.
	if _, err := ratelimit.New(http.NotFoundHandler(), cfg, env.RateLimit); err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		h, _ := ratelimit.New(next, cfg, env.RateLimit)
		return h
	}, nil
}
