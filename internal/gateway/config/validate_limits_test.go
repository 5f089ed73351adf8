package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

const limitsBase = `
services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80"}]
routes:
  - name: r
    match: {path: /}
    service: s
`

func TestLimitDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
rate_limits:
  redis: {address: "127.0.0.1:6379"}
`+limitsBase+`    rate_limit:
      limits:
        - rate: 10
        - {name: tenant, key: ["header:X-Tenant"], rate: 5, per: 1m, burst: 1, store: redis}
      quotas:
        - {limit: 1000, period: day}
`, nil)
	if cfg.RateLimits.LocalMaxKeys != DefaultLocalMaxKeys {
		t.Errorf("local_max_keys = %d", cfg.RateLimits.LocalMaxKeys)
	}
	rd := cfg.RateLimits.Redis
	if rd.KeyPrefix != "portico:" || rd.Timeout.D() != 100*time.Millisecond || rd.BreakerCooldown.D() != 2*time.Second {
		t.Errorf("redis defaults = %+v", rd)
	}
	rl := cfg.Routes[0].RateLimit
	if rl.OnRedisError != "open" || rl.FailClosed() || !rl.HeadersEnabled() {
		t.Errorf("rate limit defaults = %+v", rl)
	}
	want := Limit{Name: "limit-0", Key: []string{"client_ip"}, Rate: 10, Per: Duration(time.Second), Burst: 10, Store: "local"}
	if !reflect.DeepEqual(rl.Limits[0], want) {
		t.Errorf("limit defaults = %+v, want %+v", rl.Limits[0], want)
	}
	if l := rl.Limits[1]; l.Burst != 1 || l.Per.D() != time.Minute || l.Store != "redis" {
		t.Errorf("explicit limit changed: %+v", l)
	}
	wantQ := Quota{Name: "quota-0", Key: []string{"consumer"}, Limit: 1000, Period: "day", Store: "redis"}
	if !reflect.DeepEqual(rl.Quotas[0], wantQ) {
		t.Errorf("quota defaults = %+v, want %+v", rl.Quotas[0], wantQ)
	}
}

func TestLimitErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"redis", `
rate_limits:
  local_max_keys: -1
  redis: {address: "redis", db: -1, pool_size: -2, key_prefix: "a b"}
`, []string{
			"test.yaml:3:19: rate_limits.local_max_keys: must not be negative",
			`test.yaml:4:20: rate_limits.redis.address: invalid address "redis"`,
			"rate_limits.redis.db: must not be negative",
			"rate_limits.redis.pool_size: must not be negative",
			"rate_limits.redis.key_prefix: must not contain white space",
		}},
		{"redis without address", `
rate_limits:
  redis: {db: 1}
`, []string{"rate_limits.redis.address: missing required field"}},
		{"empty rate limit", limitsBase + `    rate_limit: {on_redis_error: maybe}
`, []string{
			"test.yaml:9:17: routes[0].rate_limit: set at least one of limits and quotas",
			`routes[0].rate_limit.on_redis_error: invalid value "maybe"`,
		}},
		{"limits", limitsBase + `    rate_limit:
      limits:
        - {name: a, rate: 0, burst: -1}
        - {name: a, rate: 10, key: [client_ip, client_ip, "header:X A", clientip], store: redis}
        - {name: "-b", rate: 2000000, per: 1s, store: memory}
`, []string{
			"test.yaml:11:27: routes[0].rate_limit.limits[0].rate: missing required field",
			"routes[0].rate_limit.limits[0].burst: must not be negative",
			`routes[0].rate_limit.limits[1].name: duplicate name "a"; first defined at line 11`,
			`routes[0].rate_limit.limits[1].key[1]: duplicate key part "client_ip"`,
			`routes[0].rate_limit.limits[1].key[2]: "X A" is not a valid header name`,
			`routes[0].rate_limit.limits[1].key[3]: invalid key part "clientip"`,
			`did you mean "client_ip"?`,
			`routes[0].rate_limit.limits[1].store: store "redis" needs rate_limits.redis`,
			`routes[0].rate_limit.limits[2].name: invalid name "-b"`,
			"routes[0].rate_limit.limits[2].rate: 2000000 requests per 1s is more than one per microsecond",
			`routes[0].rate_limit.limits[2].store: invalid store "memory"`,
		}},
		{"api_key part without API-key auth", limitsBase + `    auth: {jwt: {}}
    rate_limit:
      limits:
        - {rate: 3, key: [api_key]}
      quotas:
        - {limit: 5, period: day, store: local, key: [consumer, api_key]}
  - name: open
    match: {path: /open}
    service: s
    rate_limit:
      limits:
        - {rate: 3, key: [client_ip, api_key]}
auth:
  jwt_issuers:
    - {name: corp, issuer: x, audiences: [y], algorithms: [ES256], jwks_url: "https://idp.example.com/jwks"}
`, []string{
			`test.yaml:12:27: routes[0].rate_limit.limits[0].key[0]: key part "api_key" needs auth.api_key on the route`,
			`test.yaml:14:65: routes[0].rate_limit.quotas[0].key[1]: key part "api_key" needs auth.api_key on the route`,
			`test.yaml:20:38: routes[1].rate_limit.limits[0].key[1]: key part "api_key" needs auth.api_key on the route`,
		}},
		{"quotas", limitsBase + `    rate_limit:
      quotas:
        - {limit: 0, period: week}
        - {limit: 5, store: local}
        - {limit: 5, period: day}
`, []string{
			"routes[0].rate_limit.quotas[0].limit: missing required field",
			`routes[0].rate_limit.quotas[0].period: invalid period "week"`,
			"routes[0].rate_limit.quotas[1].period: missing required field",
			`routes[0].rate_limit.quotas[2].store: store "redis" needs rate_limits.redis`,
		}},
		{"ip filter", limitsBase + `    ip_filter:
      allow: [10.0.0.0/33, "fe80::1%eth0", 10.0.0.1]
      deny: [example.com]
`, []string{
			`test.yaml:10:15: routes[0].ip_filter.allow[0]: invalid CIDR "10.0.0.0/33"`,
			`routes[0].ip_filter.allow[1]: invalid address "fe80::1%eth0"`,
			`routes[0].ip_filter.deny[0]: invalid address "example.com"`,
		}},
		{"empty ip filter", limitsBase + `    ip_filter: {}
`, []string{"routes[0].ip_filter: set at least one of allow and deny"}},
		{"cors", limitsBase + `    cors:
      allow_origins: ["*", null, "https://App.example.com", "https://a.example.com/x", "ftp//x",
        "https://*.*.example.com", "https://*.com:99999", "https://*.10.0.0.1", "http://localhost:3000"]
      allow_methods: ["GE T"]
      allow_headers: ["*", "X Y"]
      expose_headers: ["*", "Bad Header"]
      allow_credentials: true
`, []string{
			`routes[0].cors.allow_origins[0]: origin "*" cannot be combined with allow_credentials`,
			`routes[0].cors.allow_origins[1]: invalid origin ""`,
			`routes[0].cors.allow_origins[2]: invalid origin "https://App.example.com": write the host in lower case`,
			`routes[0].cors.allow_origins[3]: invalid origin "https://a.example.com/x": an origin has no path`,
			`routes[0].cors.allow_origins[4]: invalid origin "ftp//x": write scheme://host[:port]`,
			`routes[0].cors.allow_origins[5]: invalid origin "https://*.*.example.com": a wildcard may only be the first label`,
			`routes[0].cors.allow_origins[6]: invalid origin "https://*.com:99999": invalid port "99999"`,
			`routes[0].cors.allow_origins[7]: invalid origin "https://*.10.0.0.1"`,
			`routes[0].cors.allow_methods[0]: invalid method "GE T"`,
			`routes[0].cors.allow_headers[1]: "X Y" is not a valid header name`,
			`routes[0].cors.expose_headers[0]: "*" is not a wildcard for requests with credentials`,
			`routes[0].cors.expose_headers[1]: "Bad Header" is not a valid header name`,
		}},
		{"cors null origin", limitsBase + `    cors: {allow_origins: ["null"]}
`, []string{`routes[0].cors.allow_origins[0]: invalid origin "null": the "null" origin is sent by sandboxed documents`}},
		{"cors without origins", limitsBase + `    cors: {allow_methods: [GET]}
`, []string{"routes[0].cors.allow_origins: missing required field"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnv("test.yaml", []byte(tc.yaml), envMap(nil))
			if err == nil {
				t.Fatal("ParseEnv succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors do not contain %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestLimitsValid(t *testing.T) {
	t.Parallel()
	mustParse(t, limitsBase+`    ip_filter: {allow: ["::ffff:10.0.0.0/104", "2001:db8::/32"], deny: ["10.1.2.3"]}
    cors:
      allow_origins: ["https://app.example.com", "https://*.example.org:8443", "http://127.0.0.1:3000", "http://[::1]:3000"]
      allow_headers: ["*"]
      expose_headers: ["*"]
`, nil)
}

func TestParseCIDR(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		"10.1.2.3/8":          "10.0.0.0/8",
		"10.1.2.3":            "10.1.2.3/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:10.1.2.3":     "10.1.2.3/32",
		"2001:db8::1":         "2001:db8::1/128",
		"2001:db8::/32":       "2001:db8::/32",
	}
	for in, want := range tests {
		got, err := ParseCIDR(in)
		if err != nil || got != netip.MustParsePrefix(want) {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/", "/8", "x", "10.0.0.0/33", "fe80::1%eth0", "fe80::%eth0/64"} {
		if _, err := ParseCIDR(bad); err == nil {
			t.Errorf("ParseCIDR(%q) succeeded", bad)
		}
	}
}
