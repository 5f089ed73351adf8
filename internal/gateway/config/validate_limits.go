package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// limitKeyParts are the fixed parts a rate-limit key may combine; a
// "header:NAME" part is also allowed.
var limitKeyParts = []string{"client_ip", "consumer", "api_key"}

// limits checks rate_limits and every route's rate_limit, ip_filter and
// cors.
func (v *validator) limits() {
	rl := v.cfg.RateLimits
	if rl.LocalMaxKeys < 0 {
		v.errorf("rate_limits.local_max_keys", "must not be negative")
	}
	if rd := rl.Redis; rd != nil {
		v.redis("rate_limits.redis", rd)
	}
	for i := range v.cfg.Routes {
		r := &v.cfg.Routes[i]
		p := joinIndex("routes", i)
		if r.RateLimit != nil {
			v.rateLimit(p+".rate_limit", r.RateLimit, r.Auth != nil && r.Auth.APIKey != nil)
		}
		if r.IPFilter != nil {
			v.ipFilter(p+".ip_filter", r.IPFilter)
		}
		if r.CORS != nil {
			v.cors(p+".cors", r.CORS)
		}
	}
}

func (v *validator) redis(p string, rd *Redis) {
	if rd.Address == "" {
		v.errorf(p+".address", "missing required field: host:port of the Redis server, such as \"127.0.0.1:6379\"")
	} else if host, port, err := net.SplitHostPort(rd.Address); err != nil || host == "" {
		v.errorf(p+".address", "invalid address %q: write host:port, such as \"127.0.0.1:6379\"", rd.Address)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		v.errorf(p+".address", "invalid port %q in address %q: use a number from 1 to 65535", port, rd.Address)
	}
	if rd.DB < 0 {
		v.errorf(p+".db", "must not be negative")
	}
	if rd.PoolSize < 0 {
		v.errorf(p+".pool_size", "must not be negative")
	}
	if strings.ContainsAny(rd.KeyPrefix, " \t\r\n") {
		v.errorf(p+".key_prefix", "must not contain white space")
	}
}

// rateLimit checks a route's rate_limit; apiKeys says whether the route's
// auth accepts API keys, which api_key key parts need.
func (v *validator) rateLimit(p string, rl *RateLimit, apiKeys bool) {
	if len(rl.Limits) == 0 && len(rl.Quotas) == 0 {
		v.errorf(p, "set at least one of limits and quotas")
	}
	switch rl.OnRedisError {
	case "", "open", "closed":
	default:
		v.errorf(p+".on_redis_error", "invalid value %q: use \"open\" or \"closed\"", rl.OnRedisError)
	}
	names := map[string]string{}
	for i, l := range rl.Limits {
		lp := joinIndex(p+".limits", i)
		v.limitName(lp, l.Name, names)
		v.limitKey(lp+".key", l.Key, apiKeys)
		if l.Rate <= 0 {
			v.errorf(lp+".rate", "missing required field: a positive number of requests per window")
		}
		if l.Burst < 0 {
			v.errorf(lp+".burst", "must not be negative")
		}
		per := l.Per.D()
		if per == 0 {
			per = DefaultRateLimitPer
		}
		if l.Rate > 0 && per/time.Duration(l.Rate) < time.Microsecond {
			v.errorf(lp+".rate", "%d requests per %s is more than one per microsecond; use a longer window", l.Rate, Duration(per))
		}
		v.store(lp+".store", l.Store, "local")
	}
	for i, q := range rl.Quotas {
		qp := joinIndex(p+".quotas", i)
		v.limitName(qp, q.Name, names)
		v.limitKey(qp+".key", q.Key, apiKeys)
		if q.Limit <= 0 {
			v.errorf(qp+".limit", "missing required field: a positive number of requests per period")
		}
		switch q.Period {
		case "day", "month":
		case "":
			v.errorf(qp+".period", "missing required field: \"day\" or \"month\"")
		default:
			v.errorf(qp+".period", "invalid period %q: use \"day\" or \"month\"%s", q.Period, suggest(q.Period, []string{"day", "month"}))
		}
		v.store(qp+".store", q.Store, "redis")
	}
}

// limitName checks an optional limit or quota name, unique within its
// route.
func (v *validator) limitName(p, name string, seen map[string]string) {
	if name == "" {
		return
	}
	if !isName(name) {
		v.errorf(p+".name", "invalid name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", name)
		return
	}
	if first, dup := seen[name]; dup {
		v.errorf(p+".name", "duplicate name %q; first defined at line %d", name, v.line(first))
		return
	}
	seen[name] = p + ".name"
}

func (v *validator) limitKey(p string, parts []string, apiKeys bool) {
	seen := map[string]bool{}
	for i, part := range parts {
		pp := joinIndex(p, i)
		if name, ok := strings.CutPrefix(part, "header:"); ok {
			if !httpguts.ValidHeaderFieldName(name) {
				v.errorf(pp, "%q is not a valid header name", name)
				continue
			}
			part = "header:" + strings.ToLower(name)
		} else if !isOneOf(part, limitKeyParts) {
			v.errorf(pp, "invalid key part %q: use client_ip, consumer, api_key or header:NAME%s", part, suggest(part, limitKeyParts))
			continue
		}
		if part == "api_key" && !apiKeys {
			// The part counts by the key auth verified; without API-key
			// auth there is none, and a key the client merely sent must
			// never choose the bucket.
			v.errorf(pp, "key part \"api_key\" needs auth.api_key on the route: it counts by the API key the gateway verified")
		}
		if seen[part] {
			v.errorf(pp, "duplicate key part %q", part)
		}
		seen[part] = true
	}
}

func (v *validator) store(p, store, def string) {
	if store == "" {
		store = def
	}
	switch store {
	case "local":
	case "redis":
		if v.cfg.RateLimits.Redis == nil {
			v.errorf(p, "store \"redis\" needs rate_limits.redis with the server's address")
		}
	default:
		v.errorf(p, "invalid store %q: use \"local\" or \"redis\"%s", store, suggest(store, []string{"local", "redis"}))
	}
}

func (v *validator) ipFilter(p string, f *IPFilter) {
	if len(f.Allow) == 0 && len(f.Deny) == 0 {
		v.errorf(p, "set at least one of allow and deny")
	}
	for _, list := range []struct {
		name  string
		items []string
	}{{"allow", f.Allow}, {"deny", f.Deny}} {
		for i, s := range list.items {
			if _, err := ParseCIDR(s); err != nil {
				v.errorf(joinIndex(p+"."+list.name, i), "%v", err)
			}
		}
	}
}

// ParseCIDR parses a CIDR ("10.0.0.0/8") or a single address ("10.1.2.3",
// taken as a /32 or /128). IPv4-mapped IPv6 prefixes are unmapped, so
// "::ffff:10.0.0.0/104" is "10.0.0.0/8".
func ParseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil || pfx.Addr().Zone() != "" {
			return netip.Prefix{}, &cidrError{s, true}
		}
		a := pfx.Addr()
		if a.Is4In6() && pfx.Bits() >= 96 {
			return netip.PrefixFrom(a.Unmap(), pfx.Bits()-96).Masked(), nil
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, &cidrError{s, false}
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

type cidrError struct {
	s    string
	cidr bool
}

func (e *cidrError) Error() string {
	if e.cidr {
		return "invalid CIDR " + strconv.Quote(e.s) + ": write an address and prefix length such as \"10.0.0.0/8\""
	}
	return "invalid address " + strconv.Quote(e.s) + ": write an IP address or a CIDR such as \"10.0.0.0/8\""
}

func (v *validator) cors(p string, c *CORS) {
	if len(c.AllowOrigins) == 0 {
		v.errorf(p+".allow_origins", "missing required field: the origins allowed, such as \"https://app.example.com\"")
	}
	for i, o := range c.AllowOrigins {
		op := joinIndex(p+".allow_origins", i)
		if o == "*" {
			if c.AllowCredentials {
				v.errorf(op, "origin \"*\" cannot be combined with allow_credentials; list the origins")
			}
			continue
		}
		if msg := checkOrigin(o); msg != "" {
			v.errorf(op, "invalid origin %q: %s", o, msg)
		}
	}
	for i, m := range c.AllowMethods {
		if !httpguts.ValidHeaderFieldName(m) {
			v.errorf(joinIndex(p+".allow_methods", i), "invalid method %q: a method is a token such as GET or POST", m)
		}
	}
	for i, h := range c.AllowHeaders {
		if h != "*" && !httpguts.ValidHeaderFieldName(h) {
			v.errorf(joinIndex(p+".allow_headers", i), "%q is not a valid header name", h)
		}
	}
	for i, h := range c.ExposeHeaders {
		switch {
		case h == "*" && c.AllowCredentials:
			v.errorf(joinIndex(p+".expose_headers", i), "\"*\" is not a wildcard for requests with credentials; list the headers")
		case h != "*" && !httpguts.ValidHeaderFieldName(h):
			v.errorf(joinIndex(p+".expose_headers", i), "%q is not a valid header name", h)
		}
	}
}

// checkOrigin returns why o is not an origin pattern, or "".
func checkOrigin(o string) string {
	scheme, rest, ok := strings.Cut(o, "://")
	switch {
	case o == "null":
		return "the \"null\" origin is sent by sandboxed documents and local files, so allowing it allows anyone"
	case !ok || scheme == "" || strings.ToLower(scheme) != scheme:
		return "write scheme://host[:port] in lower case, such as \"https://app.example.com\""
	case rest == "" || strings.ContainsAny(rest, "/?#@ "):
		return "an origin has no path, query, user or spaces: write scheme://host[:port]"
	}
	host := rest
	if h, port, err := net.SplitHostPort(rest); err == nil {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "invalid port " + strconv.Quote(port)
		}
		host = h
	}
	wild := strings.HasPrefix(host, "*.")
	if wild {
		host = host[2:]
	}
	if strings.Contains(host, "*") {
		return "a wildcard may only be the first label, as in \"https://*.example.com\""
	}
	if host != strings.ToLower(host) {
		return "write the host in lower case"
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if wild {
			return "a wildcard cannot precede an IP address"
		}
		return ""
	}
	if checkHost(host) != nil || !strings.Contains(host, ".") && wild {
		return "invalid host " + strconv.Quote(host)
	}
	return ""
}

func isOneOf(s string, list []string) bool {
	for _, x := range list {
		if s == x {
			return true
		}
	}
	return false
}
