package policy

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

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

func buildRateLimit(env Env, route *config.Route) (Middleware, error) {
	rl := route.RateLimit
	if rl == nil {
		return nil, nil
	}
	if env.RateLimit == nil {
		return nil, ErrNoRateLimitStores
	}
	// api_key parts read the key where the route's authentication does.
	var keyHeader, keyQuery string
	if route.Auth != nil && route.Auth.APIKey != nil {
		keyHeader, keyQuery = route.Auth.APIKey.Header, route.Auth.APIKey.Query
		if keyHeader == "" && keyQuery != "" {
			keyHeader = "-" // query only: no header carries the key
		}
	}
	cfg := ratelimit.Config{Route: route.Name, FailClosed: rl.FailClosed(), Headers: rl.HeadersEnabled()}
	bucket := func(b, name string) string {
		if b != "" {
			return b
		}
		return route.Name + "/" + name
	}
	for i, l := range rl.Limits {
		ks, err := ratelimit.ParseKey(l.Key, keyHeader, keyQuery)
		if err != nil {
			return nil, fmt.Errorf("rate_limit.limits[%d]: %w", i, err)
		}
		cfg.Rates = append(cfg.Rates, ratelimit.Rate{
			Name: l.Name, Bucket: bucket(l.Bucket, l.Name), Key: ks,
			Limit: ratelimit.Limit{Rate: l.Rate, Period: l.Per.D(), Burst: l.Burst},
			Redis: l.Store == "redis",
		})
	}
	for i, q := range rl.Quotas {
		ks, err := ratelimit.ParseKey(q.Key, keyHeader, keyQuery)
		if err != nil {
			return nil, fmt.Errorf("rate_limit.quotas[%d]: %w", i, err)
		}
		period, err := ratelimit.ParsePeriod(q.Period)
		if err != nil {
			return nil, fmt.Errorf("rate_limit.quotas[%d]: %w", i, err)
		}
		cfg.Quotas = append(cfg.Quotas, ratelimit.QuotaRule{
			Name: q.Name, Bucket: bucket(q.Bucket, q.Name), Key: ks, Limit: q.Limit, Period: period,
			Redis: q.Store != "local",
		})
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
