package config

import (
	"errors"
	"strings"
	"testing"
)

// discoveryRoutes is a route to service s.
const discoveryRoutes = `
routes:
  - name: r
    match: {path: /}
    service: s
`

// checkErrors parses src and checks that its errors are exactly one line
// containing each of want, in any order.
func checkErrors(t *testing.T, src string, want []string) {
	t.Helper()
	_, err := ParseEnv("test.yaml", []byte(src), envMap(nil))
	if err == nil {
		t.Fatalf("ParseEnv succeeded, want errors:\n%s", strings.Join(want, "\n"))
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %T is not an ErrorList", err)
	}
	lines := strings.Split(err.Error(), "\n")
	matched := make([]bool, len(lines))
	for _, w := range want {
		found := false
		for i, l := range lines {
			if !matched[i] && strings.Contains(l, w) {
				matched[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no error contains %q", w)
		}
	}
	for i, l := range lines {
		if !matched[i] {
			t.Errorf("unexpected error %q", l)
		}
	}
}

func TestRegistryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"backend", "registry: {backend: etc}\n", []string{
			`test.yaml:1:21: registry.backend: invalid backend "etc": use "memory" or "etcd"; did you mean "etcd"?`,
		}},
		{"etcd backend without etcd", "registry:\n  backend: etcd\n", []string{
			`test.yaml:2:3: registry.etcd: missing required field: backend "etcd" needs etcd.endpoints`,
		}},
		{"etcd without endpoints", "registry:\n  backend: etcd\n  etcd: {prefix: /p/}\n", []string{
			`test.yaml:3:9: registry.etcd.endpoints: missing required field: at least one client URL`,
		}},
		{"etcd settings", `registry:
  backend: etcd
  etcd:
    endpoints:
      - "127.0.0.1:2379"
      - unix:///run/etcd.sock
      - http://
      - http://user:pw@h:2379
      - http://h:2379/v3
      - http://h
      - http://h:0
      - http://bad_host!:2379
      - http://h:2379
      - http://h:2379
    prefix: portico
    password: secret
`, []string{
			`test.yaml:5:9: registry.etcd.endpoints[0]: invalid URL "127.0.0.1:2379"`,
			`registry.etcd.endpoints[1]: invalid URL "unix:///run/etcd.sock": scheme must be http or https`,
			`registry.etcd.endpoints[2]: invalid URL "http://": write scheme://host:port`,
			`registry.etcd.endpoints[3]: invalid URL "http://user:pw@h:2379": user information is not allowed`,
			`registry.etcd.endpoints[4]: invalid URL "http://h:2379/v3": a path, query or fragment is not allowed`,
			`registry.etcd.endpoints[5]: invalid URL "http://h": missing port`,
			`registry.etcd.endpoints[6]: invalid URL "http://h:0": port must be a number from 1 to 65535`,
			`registry.etcd.endpoints[7]: invalid URL "http://bad_host!:2379"`,
			`test.yaml:14:9: registry.etcd.endpoints[9]: duplicate endpoint "http://h:2379"; first listed at line 13`,
			`test.yaml:15:13: registry.etcd.prefix: prefix "portico" must start and end with "/"`,
			`registry.etcd.username: missing required field: password is set, so username is needed too`,
		}},
		{"min above max", "registry: {min_ttl: 10s, max_ttl: 5s}\n", []string{
			`test.yaml:1:21: registry.min_ttl: min_ttl 10s is longer than max_ttl 5s`,
		}},
		{"default above max", "registry: {max_ttl: 5s}\n", []string{
			`test.yaml:1:21: registry.max_ttl: default_ttl 10s (the default) is longer than max_ttl 5s`,
		}},
		{"default below min", "registry: {default_ttl: 500ms}\n", []string{
			`registry.default_ttl: min_ttl 1s (the default) is longer than default_ttl 500ms`,
		}},
		{"explicit default above max", "registry: {default_ttl: 1m, max_ttl: 30s}\n", []string{
			`test.yaml:1:25: registry.default_ttl: default_ttl 1m is longer than max_ttl 30s`,
		}},
		{"tokens", `registry:
  tokens:
    - {token: aaaaaaaaaaaaaaaa, services: [orders]}
    - {name: a, token: short, services: [orders]}
    - {name: a, token: "has white space x", services: [orders]}
    - {name: b, token: aaaaaaaaaaaaaaaa, services: [orders]}
    - {name: c, services: []}
    - {name: d, token: bbbbbbbbbbbbbbbb}
    - {name: e, token: cccccccccccccccc, services: [Orders, "bill*ing", "**", "-x*", "", ok, ok, "*", "billing-*"]}
  read_token: "0123456789"
`, []string{
			`test.yaml:3:7: registry.tokens[0].name: missing required field: every registry token needs a name`,
			`test.yaml:4:24: registry.tokens[1].token: a token must be at least 16 characters long; this one has 5`,
			`test.yaml:5:14: registry.tokens[2].name: duplicate registry token name "a"; first defined at line 4`,
			`registry.tokens[2].token: a token must not contain white space`,
			`test.yaml:6:24: registry.tokens[3].token: the same secret as registry.tokens[0] (line 3); give every token its own`,
			`registry.tokens[4].token: missing required field: the secret`,
			`registry.tokens[4].services: missing required field: the services the token may register`,
			`registry.tokens[5].services: missing required field`,
			`registry.tokens[6].services[0]: invalid service "Orders"`,
			`registry.tokens[6].services[1]: invalid service "bill*ing"`,
			`registry.tokens[6].services[2]: invalid service "**"`,
			`registry.tokens[6].services[3]: invalid service "-x*"`,
			`registry.tokens[6].services[4]: invalid service ""`,
			`registry.tokens[6].services[6]: duplicate service "ok"`,
			`test.yaml:10:15: registry.read_token: a token must be at least 16 characters long; this one has 10`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkErrors(t, tc.yaml, tc.want)
		})
	}
}

// TestRegistryErrorsHideSecrets pins down that an invalid token is never
// printed, even when it was written in the file.
func TestRegistryErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	_, err := ParseEnv("test.yaml", []byte("registry:\n  tokens: [{name: a, token: \"sh0rt secret\", services: [x]}]\n  read_token: \"another secret\"\n"), envMap(nil))
	if err == nil {
		t.Fatal("ParseEnv succeeded")
	}
	for _, secret := range []string{"sh0rt secret", "another secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the token %q:\n%s", secret, err)
		}
	}
}

func TestServiceDiscoveryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"endpoints and discovery", `services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80"}]
    discovery:
      registry: {}
` + discoveryRoutes, []string{
			"test.yaml:5:7: services[0].discovery: endpoints and discovery are mutually exclusive",
		}},
		{"neither", "services:\n  - name: s\n" + discoveryRoutes, []string{
			"test.yaml:2:5: services[0].endpoints: missing required field: a service needs endpoints (at least one, with a url) or discovery",
		}},
		{"empty endpoints", "services:\n  - name: s\n    endpoints: []\n" + discoveryRoutes, []string{
			"test.yaml:3:16: services[0].endpoints: missing required field: a service needs endpoints",
		}},
		{"empty discovery", "services:\n  - name: s\n    discovery: {}\n" + discoveryRoutes, []string{
			"test.yaml:3:16: services[0].discovery: missing required field: set one of registry, dns and etcd",
		}},
		{"two sources", `services:
  - name: s
    discovery:
      registry: {}
      dns: {name: s.example.com, port: 80}
` + discoveryRoutes, []string{
			"test.yaml:4:7: services[0].discovery: set only one of registry, dns and etcd, not 2",
		}},
		{"registry discovery", `services:
  - name: s
    discovery:
      registry:
        service: Orders_v2
        version: "v 2"
        metadata: {"": x, ` + strings.Repeat("k", 64) + `: x, zone: ` + strings.Repeat("z", 257) + `}
        url: ftp://10.0.0.5:9901
        token: "with space"
  - name: t
    discovery:
      registry: {url: "http://"}
  - name: u
    discovery:
      registry: {url: "http://u:p@10.0.0.5:9901"}
  - name: w
    discovery:
      registry: {url: "https://r.example.com/base?x=1"}
  - name: x
    discovery:
      registry: {url: "https://r.example.com:99999"}
` + discoveryRoutes, []string{
			`test.yaml:5:18: services[0].discovery.registry.service: invalid registry service name "Orders_v2": use 1 to 128 characters of a-z`,
			`test.yaml:6:18: services[0].discovery.registry.version: version "v 2" must not contain white space`,
			`services[0].discovery.registry.metadata: empty metadata key`,
			`services[0].discovery.registry.metadata.` + strings.Repeat("k", 64) + `: key "` + strings.Repeat("k", 64) + `" is longer than 63 characters`,
			`services[0].discovery.registry.metadata.zone: the value is 257 bytes long; at most 256 are allowed`,
			`test.yaml:8:14: services[0].discovery.registry.url: invalid URL "ftp://10.0.0.5:9901": scheme must be http or https`,
			`services[0].discovery.registry.token: a token must not contain white space`,
			`services[1].discovery.registry.url: invalid URL "http://": write the base URL`,
			`services[2].discovery.registry.url: invalid URL "http://u:p@10.0.0.5:9901": user information is not allowed`,
			`services[3].discovery.registry.url: invalid URL "https://r.example.com/base?x=1": a query or fragment is not allowed`,
			`services[4].discovery.registry.url: invalid URL "https://r.example.com:99999": port must be a number`,
		}},
		{"registry disabled", `registry: {enabled: false}
services:
  - name: s
    discovery:
      registry: {token: "remote-read-token-0123"}
  - name: t
    discovery:
      registry: {url: "http://10.0.0.5:9901", token: "remote-read-token-0123"}
` + discoveryRoutes, []string{
			"test.yaml:5:17: services[0].discovery.registry: the gateway's own registry is disabled (registry.enabled is false): enable it, or set url",
			"services[0].discovery.registry.token: a token is sent only to a remote registry: set url, or remove token",
		}},
		{"name the registry cannot hold", `services:
  - name: Orders
    discovery: {registry: {}}
  - name: Stock
    discovery: {etcd: {endpoints: ["http://127.0.0.1:2379"]}}
  - name: s
    discovery: {registry: {service: orders}}
` + discoveryRoutes, []string{
			`test.yaml:3:27: services[0].discovery.registry: the registered service name defaults to the service's name "Orders", which the registry cannot hold`,
			`services[1].discovery.etcd: the registered service name defaults to the service's name "Stock"`,
		}},
		{"etcd discovery", `services:
  - name: s
    discovery:
      etcd:
        endpoints: []
        prefix: /portico/registry
        service: "a b"
        version: ` + strings.Repeat("v", 129) + `
        metadata: {zone: a}
` + discoveryRoutes, []string{
			"test.yaml:5:20: services[0].discovery.etcd.endpoints: missing required field: at least one client URL",
			`test.yaml:6:17: services[0].discovery.etcd.prefix: prefix "/portico/registry" must start and end with "/"`,
			`services[0].discovery.etcd.service: invalid registry service name "a b"`,
			"services[0].discovery.etcd.version: version is 129 characters long; at most 128 are allowed",
		}},
		{"dns", `services:
  - name: s
    discovery:
      dns: {port: 80}
  - name: t
    discovery:
      dns: {name: "bad..name", type: MX, scheme: htps, resolvers: ["10.0.0.2", "10.0.0.2:0", "bad host:53", ":53"]}
  - name: u
    discovery:
      dns: {name: "-x.example.com"}
  - name: v
    discovery:
      dns: {name: "10.0.0.1", port: 80}
  - name: w
    discovery:
      dns: {name: "_http._tcp.w.example.com", port: 80}
  - name: x
    discovery:
      dns: {name: "x.example.com", type: aaaa, port: 70000}
  - name: y
    discovery:
      dns: {name: "y.example.com", port: 80, interval: 5s, min_interval: 10s}
  - name: z
    discovery:
      dns: {name: "` + strings.Repeat("a.", 127) + `z", port: 80, interval: 500ms, metadata: {version: "a b"}}
` + discoveryRoutes, []string{
			"test.yaml:4:12: services[0].discovery.dns.name: missing required field: the name to resolve",
			`test.yaml:7:19: services[1].discovery.dns.name: invalid name "bad..name": label "" must be 1 to 63 characters`,
			`services[1].discovery.dns.type: invalid type "MX": use A, AAAA or SRV`,
			`test.yaml:7:50: services[1].discovery.dns.scheme: invalid scheme "htps": use http, https or h2c; did you mean "https"?`,
			`services[1].discovery.dns.resolvers[0]: invalid resolver "10.0.0.2": write host:port`,
			`services[1].discovery.dns.resolvers[1]: invalid port "0" in resolver "10.0.0.2:0"`,
			`services[1].discovery.dns.resolvers[2]: invalid host "bad host" in resolver "bad host:53"`,
			`services[1].discovery.dns.resolvers[3]: invalid resolver ":53"`,
			`services[2].discovery.dns.name: invalid name "-x.example.com": label "-x" must not start or end with "-"`,
			`services[2].discovery.dns.port: missing required field: the endpoints' port; A records hold only addresses`,
			`services[3].discovery.dns.name: "10.0.0.1" is an IP address, not a name to resolve`,
			`test.yaml:16:53: services[4].discovery.dns.port: SRV records give each endpoint's port; remove port`,
			`services[5].discovery.dns.port: port 70000 must be a number from 1 to 65535`,
			`test.yaml:22:74: services[6].discovery.dns.min_interval: min_interval 10s is longer than interval 5s`,
			`services[7].discovery.dns.name: name "` + strings.Repeat("a.", 127) + `z" is longer than 253 characters`,
			`services[7].discovery.dns.interval: min_interval 1s (the default) is longer than interval 500ms`,
			`services[7].discovery.dns.metadata.version: version "a b" must not contain white space`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkErrors(t, tc.yaml, tc.want)
		})
	}
}

func TestRouteTrafficErrors(t *testing.T) {
	t.Parallel()
	const services = `services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80", metadata: {version: v1}}]
  - name: shadow
    endpoints: [{url: "http://10.0.0.2:80"}]
`
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"version and split", services + `routes:
  - name: r
    match: {path: /}
    service: s
    version: v1
    split: [{version: v1, weight: 1}, {version: v2, weight: 1}]
`, []string{"test.yaml:11:12: routes[0].split: set at most one of version and split"}},
		{"direct response", services + `routes:
  - name: r
    match: {path: /}
    service: s
  - name: d
    match: {path: /d}
    direct_response: {body: hi}
    version: v1
    split: [{version: v1, weight: 1}]
    mirror: {service: shadow}
`, []string{
			"test.yaml:13:14: routes[1].version: version applies only to routes with a service, not to a direct_response",
			"routes[1].split: split applies only to routes with a service",
			"test.yaml:15:13: routes[1].mirror: mirror applies only to routes with a service",
		}},
		{"empty split", services + `routes:
  - name: r
    match: {path: /}
    service: s
    split: []
`, []string{"test.yaml:10:12: routes[0].split: missing required field: at least one version with a weight"}},
		{"split entries", services + `routes:
  - name: r
    match: {path: /}
    service: s
    split:
      - {weight: 1}
      - {version: v1}
      - {version: v2, weight: 0}
      - {version: v1, weight: 10001}
      - {version: v3, weight: -1}
      - {version: "v 4", weight: 1}
`, []string{
			`test.yaml:11:9: routes[0].split[0].version: missing required field: the version (metadata "version") this share goes to`,
			`routes[0].split[1].weight: missing required field: the share's weight, 1 to 10000`,
			`test.yaml:13:31: routes[0].split[2].weight: weight 0 must be 1 to 10000`,
			`test.yaml:14:19: routes[0].split[3].version: duplicate version "v1"; first listed at line 12`,
			`routes[0].split[3].weight: weight 10001 must be 1 to 10000`,
			`routes[0].split[4].weight: weight -1 must be 1 to 10000`,
			`routes[0].split[5].version: version "v 4" must not contain white space`,
		}},
		{"mirror", services + `routes:
  - name: a
    match: {path: /a}
    service: s
    mirror: {service: shadw, percent: 0, max_body_bytes: -1, max_in_flight: 0, version: "v 2"}
  - name: b
    match: {path: /b}
    service: s
    mirror: {percent: 100.5, max_in_flight: -3}
  - name: c
    match: {path: /c}
    service: s
    mirror: {percent: -1}
  - name: d
    match: {path: /d}
    service: s
    mirror: {percent: many}
`, []string{
			`test.yaml:10:23: routes[0].mirror.service: unknown service "shadw"; did you mean "shadow"?`,
			`routes[0].mirror.percent: percent 0 must be above 0 and at most 100`,
			`routes[0].mirror.max_body_bytes: must not be negative`,
			`routes[0].mirror.max_in_flight: max_in_flight 0 must be at least 1`,
			`routes[0].mirror.version: version "v 2" must not contain white space`,
			`test.yaml:14:23: routes[1].mirror.percent: percent 100.5 must be above 0 and at most 100`,
			`routes[1].mirror.max_in_flight: max_in_flight -3 must be at least 1`,
			`routes[2].mirror.percent: percent -1 must be above 0 and at most 100`,
			`test.yaml:22:23: routes[3].mirror.percent: invalid number "many": write a decimal such as 1.9`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkErrors(t, tc.yaml, tc.want)
		})
	}
}

func TestDiscoveryValid(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
registry:
  tokens:
    - {name: shop, token: "0123456789abcdef", services: ["*"]}
    - {name: billing, token: "fedcba9876543210", services: ["billing-*", orders.v2, inventory]}
  read_token: "read-token-0123456789"
services:
  - name: s
    endpoints: []
    discovery: {registry: {version: v1, metadata: {zone: a}}}
  - name: t
    discovery: {dns: {name: "_grpc._tcp.T.Example.com.", scheme: h2c, resolvers: ["[fd00::2]:53", "dns.example.com:5353"]}}
  - name: u
    discovery: {dns: {name: u.example.com, type: Aaaa, port: 8443, scheme: https, interval: 500ms, min_interval: 100ms}}
  - name: v
    discovery: {etcd: {endpoints: ["https://10.0.0.1:2379", "http://[fd00::1]:2379/"], prefix: /, username: gw, password: pw}}
routes:
  - {name: s, match: {path: /s}, service: s, version: v1}
  - {name: t, match: {path: /t}, service: t, split: [{version: a, weight: 1}, {version: b, weight: 10000}]}
  - {name: u, match: {path: /u}, service: u, mirror: {service: v, percent: 0.5}}
`, nil)
	if got := cfg.Services[1].Discovery.DNS.Type; got != "SRV" {
		t.Errorf("type of a name starting with _ = %q, want SRV", got)
	}
	if got := cfg.Services[2].Discovery.DNS.Type; got != "AAAA" {
		t.Errorf("type Aaaa = %q, want AAAA", got)
	}
	if m := cfg.Routes[2].Mirror; m.Percent != 0.5 || m.Service != "v" {
		t.Errorf("mirror = %+v", m)
	}
}
