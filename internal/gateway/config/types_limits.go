package config

import (
	"strconv"
	"time"
)

// Defaults of rate limiting, IP filters and CORS, documented on the fields.
const (
	DefaultLocalMaxKeys     = 1_000_000
	DefaultRedisKeyPrefix   = "portico:"
	DefaultRedisTimeout     = 100 * time.Millisecond
	DefaultRedisBreakerCool = 2 * time.Second
	DefaultRateLimitPer     = time.Second
	DefaultRateLimitStore   = "local"
	DefaultQuotaStore       = "redis"
	DefaultRedisFailureMode = "open"
)

// RateLimits is the gateway-wide storage of rate-limit counters. It is
// static: a change needs a restart. Counters live in the running gateway,
// not in a snapshot, so a reload never resets them.
type RateLimits struct {
	// LocalMaxKeys bounds the number of keys the in-memory store holds.
	// Keys whose bucket is full again expire on their own; when the bound
	// is reached the least recently limited keys are evicted first.
	// Default 1000000.
	LocalMaxKeys int `yaml:"local_max_keys" json:"local_max_keys,omitempty"`
	// Redis is the store shared by every gateway replica, used by limits
	// and quotas with store "redis". Default: none.
	Redis *Redis `yaml:"redis" json:"redis,omitempty"`
}

// Redis is the connection to the Redis server that holds shared counters.
type Redis struct {
	// Address is host:port of the Redis server. Required.
	Address string `yaml:"address" json:"address"`
	// Username is the ACL user name. Default: none.
	Username string `yaml:"username" json:"username,omitempty"`
	// Password authenticates to Redis; write it as ${VAR}. Default: none.
	Password string `yaml:"password" json:"password,omitempty"`
	// DB is the database number. Default 0.
	DB int `yaml:"db" json:"db,omitempty"`
	// KeyPrefix starts every key the gateway writes. Default "portico:".
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix,omitempty"`
	// Timeout bounds connecting, one command and the wait for a pooled
	// connection, so an unreachable Redis adds at most this much to a
	// request before the failure mode applies. Default 100ms.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// PoolSize is the number of connections kept to Redis. Default: 10
	// per CPU.
	PoolSize int `yaml:"pool_size" json:"pool_size,omitempty"`
	// BreakerCooldown is how long Redis is left alone after it failed:
	// requests use the failure mode at once, without waiting for a timeout,
	// until one probe succeeds. Default 2s.
	BreakerCooldown Duration `yaml:"breaker_cooldown" json:"breaker_cooldown,omitempty"`
}

// RateLimit is a route's rate limits and quotas. Every limit and quota
// applies to each request; the first one exhausted answers 429.
type RateLimit struct {
	// Limits are short-window request rates (GCRA, see docs/security.md).
	Limits []Limit `yaml:"limits" json:"limits,omitempty"`
	// Quotas are long-window request counts per calendar day or month.
	Quotas []Quota `yaml:"quotas" json:"quotas,omitempty"`
	// OnRedisError is what happens when Redis cannot be reached: "open"
	// lets requests through under each limit's local fallback, "closed"
	// refuses them with 503. Default "open".
	OnRedisError string `yaml:"on_redis_error" json:"on_redis_error,omitempty"`
	// Headers adds RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
	// to every response. Default true.
	Headers *bool `yaml:"headers" json:"headers,omitempty"`
}

// Limit is one request rate: Rate requests per Per, with bursts of up to
// Burst requests.
type Limit struct {
	// Name identifies the limit in metrics and errors. Default "limit-N",
	// with N its index.
	Name string `yaml:"name" json:"name,omitempty"`
	// Key is what the limit counts by: any combination of "client_ip",
	// "consumer", "api_key" and "header:NAME". A request that lacks a part
	// (anonymous, no key, no header) is counted by its client IP instead.
	// Default [client_ip].
	Key []string `yaml:"key" json:"key,omitempty"`
	// Rate is the number of requests allowed per Per. Required.
	Rate int64 `yaml:"rate" json:"rate"`
	// Per is the window Rate is measured over. Default 1s.
	Per Duration `yaml:"per" json:"per,omitempty"`
	// Burst is how many requests may arrive at once. Default: Rate.
	Burst int64 `yaml:"burst" json:"burst,omitempty"`
	// Store is "local" (this gateway's memory) or "redis" (shared by
	// every replica; needs rate_limits.redis). Default "local".
	Store string `yaml:"store" json:"store,omitempty"`
	// Bucket names the counter; limits with the same bucket and key share
	// it, across routes too. Default: the route name and the limit name.
	Bucket string `yaml:"bucket" json:"bucket,omitempty"`
}

// Quota is a number of requests per calendar period (UTC).
type Quota struct {
	// Name identifies the quota in metrics and errors. Default "quota-N",
	// with N its index.
	Name string `yaml:"name" json:"name,omitempty"`
	// Key is what the quota counts by, as for limits. Default [consumer].
	Key []string `yaml:"key" json:"key,omitempty"`
	// Limit is the number of requests allowed per period. Required.
	Limit int64 `yaml:"limit" json:"limit"`
	// Period is "day" or "month", in UTC. Required.
	Period string `yaml:"period" json:"period"`
	// Store is "redis" or "local" (this gateway's memory, lost on
	// restart; for development). Default "redis".
	Store string `yaml:"store" json:"store,omitempty"`
	// Bucket names the counter; quotas with the same bucket and key share
	// it, across routes too. Default: the route name and the quota name.
	Bucket string `yaml:"bucket" json:"bucket,omitempty"`
}

// IPFilter is a route's client IP allow and deny lists.
type IPFilter struct {
	// Allow, when set, are the only CIDRs (or addresses) allowed.
	// Default: any address.
	Allow []string `yaml:"allow" json:"allow,omitempty"`
	// Deny are CIDRs (or addresses) refused with 403, even when Allow
	// also lists them. Default: none.
	Deny []string `yaml:"deny" json:"deny,omitempty"`
}

// CORS is a route's cross-origin resource sharing policy. Preflight
// requests are answered by the gateway and never reach the service.
type CORS struct {
	// AllowOrigins are the origins allowed: exact ("https://app.example.com"),
	// with a wildcard first label ("https://*.example.com", any subdomain)
	// or "*" for any origin (not with AllowCredentials). Required.
	AllowOrigins []string `yaml:"allow_origins" json:"allow_origins"`
	// AllowMethods are the methods allowed in cross-origin requests.
	// Default: the route's match.methods, or GET, HEAD and POST when it
	// matches any method.
	AllowMethods []string `yaml:"allow_methods" json:"allow_methods,omitempty"`
	// AllowHeaders are the request headers allowed; "*" allows any.
	// Default: none beyond the CORS-safelisted ones.
	AllowHeaders []string `yaml:"allow_headers" json:"allow_headers,omitempty"`
	// ExposeHeaders are the response headers scripts may read. Default:
	// none beyond the CORS-safelisted ones.
	ExposeHeaders []string `yaml:"expose_headers" json:"expose_headers,omitempty"`
	// AllowCredentials lets browsers send cookies and authorization.
	// Default false.
	AllowCredentials bool `yaml:"allow_credentials" json:"allow_credentials,omitempty"`
	// MaxAge is how long browsers may cache a preflight answer. Default:
	// not sent (browsers then cache it for 5s).
	MaxAge Duration `yaml:"max_age" json:"max_age,omitempty"`
}

// HeadersEnabled reports whether the RateLimit-* headers are sent; unset
// means sent.
func (r *RateLimit) HeadersEnabled() bool { return r.Headers == nil || *r.Headers }

// FailClosed reports whether requests are refused while Redis is down.
func (r *RateLimit) FailClosed() bool { return r.OnRedisError == "closed" }

func (c *Config) applyLimitDefaults() {
	setDefault(&c.RateLimits.LocalMaxKeys, DefaultLocalMaxKeys)
	if rd := c.RateLimits.Redis; rd != nil {
		setDefault(&rd.KeyPrefix, DefaultRedisKeyPrefix)
		setDefault(&rd.Timeout, Duration(DefaultRedisTimeout))
		setDefault(&rd.BreakerCooldown, Duration(DefaultRedisBreakerCool))
	}
	for i := range c.Routes {
		rl := c.Routes[i].RateLimit
		if rl == nil {
			continue
		}
		setDefault(&rl.OnRedisError, DefaultRedisFailureMode)
		if rl.Headers == nil {
			rl.Headers = ptr(true)
		}
		for j := range rl.Limits {
			l := &rl.Limits[j]
			setDefault(&l.Name, "limit-"+strconv.Itoa(j))
			if len(l.Key) == 0 {
				l.Key = []string{"client_ip"}
			}
			setDefault(&l.Per, Duration(DefaultRateLimitPer))
			setDefault(&l.Burst, l.Rate)
			setDefault(&l.Store, DefaultRateLimitStore)
		}
		for j := range rl.Quotas {
			q := &rl.Quotas[j]
			setDefault(&q.Name, "quota-"+strconv.Itoa(j))
			if len(q.Key) == 0 {
				q.Key = []string{"consumer"}
			}
			setDefault(&q.Store, DefaultQuotaStore)
		}
	}
}
