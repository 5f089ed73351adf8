package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDiscoveryDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
registry:
  etcd: {endpoints: ["http://127.0.0.1:2379"]}
  backend: etcd
services:
  - name: orders
    discovery: {registry: {}}
  - name: stock
    discovery: {etcd: {endpoints: ["http://127.0.0.1:2379"]}}
  - name: catalog
    discovery: {dns: {name: catalog.example.com, port: 80}}
  - name: srv
    discovery: {dns: {name: _http._tcp.srv.example.com}}
routes:
  - name: orders
    match: {path: /orders}
    service: orders
    timeout: 7s
    mirror: {version: v2}
  - name: stock
    match: {path: /stock}
    service: stock
    mirror: {service: catalog}
  - {name: catalog, match: {path: /catalog}, service: catalog}
  - {name: srv, match: {path: /srv}, service: srv}
`, nil)
	r := cfg.Registry
	wantEtcd := Etcd{Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/portico/registry/", DialTimeout: Duration(5 * time.Second)}
	if !r.IsEnabled() || r.Backend != "etcd" || !reflect.DeepEqual(*r.Etcd, wantEtcd) || r.DefaultTTL.D() != 10*time.Second ||
		r.MinTTL.D() != time.Second || r.MaxTTL.D() != 5*time.Minute || r.GracePeriod.D() != 30*time.Second {
		t.Errorf("registry defaults = %+v, etcd %+v", r, r.Etcd)
	}
	if rd := cfg.Services[0].Discovery.Registry; rd.Service != "orders" || rd.URL != "" {
		t.Errorf("registry discovery defaults = %+v", rd)
	}
	wantED := EtcdDiscovery{Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/portico/registry/", DialTimeout: Duration(5 * time.Second), Service: "stock"}
	if ed := cfg.Services[1].Discovery.Etcd; !reflect.DeepEqual(*ed, wantED) {
		t.Errorf("etcd discovery defaults = %+v, want %+v", *ed, wantED)
	}
	wantDNS := DNSDiscovery{Name: "catalog.example.com", Type: "A", Port: 80, Scheme: "http", Interval: Duration(30 * time.Second),
		MinInterval: Duration(time.Second), Timeout: Duration(5 * time.Second)}
	if dd := cfg.Services[2].Discovery.DNS; !reflect.DeepEqual(*dd, wantDNS) {
		t.Errorf("dns discovery defaults = %+v, want %+v", *dd, wantDNS)
	}
	if got := cfg.Services[3].Discovery.DNS.Type; got != "SRV" {
		t.Errorf("type of %q = %q, want SRV", cfg.Services[3].Discovery.DNS.Name, got)
	}
	wantM := Mirror{Service: "orders", Version: "v2", Percent: 100, MaxBodyBytes: 64 << 10, MaxInFlight: 100, Timeout: Duration(7 * time.Second)}
	if m := cfg.Routes[0].Mirror; !reflect.DeepEqual(*m, wantM) {
		t.Errorf("mirror defaults = %+v, want %+v", *m, wantM)
	}
	if m := cfg.Routes[1].Mirror; m.Service != "catalog" || m.Timeout.D() != DefaultRouteTimeout {
		t.Errorf("mirror of a route without timeout = %+v", m)
	}

	before := cfg.Redacted()
	cfg.ApplyDefaults()
	if !reflect.DeepEqual(before, cfg.Redacted()) {
		t.Error("ApplyDefaults is not idempotent")
	}
	if empty := mustParse(t, "", nil); !empty.Registry.IsEnabled() || empty.Registry.Backend != "memory" || empty.Registry.Etcd != nil {
		t.Errorf("registry of an empty file = %+v", empty.Registry)
	}
	if off := mustParse(t, "registry: {enabled: false}\n", nil); off.Registry.IsEnabled() {
		t.Error("registry.enabled: false is enabled")
	}
	if !(Registry{}).IsEnabled() {
		t.Error("zero Registry: IsEnabled = false, want the default true")
	}
}

func TestLoadFullDiscovery(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Service{}
	for i := range cfg.Services {
		byName[cfg.Services[i].Name] = &cfg.Services[i]
	}
	if d := byName["catalog"].Discovery.DNS; d.Type != "A" || d.Port != 8080 || len(d.Resolvers) != 2 || d.MinInterval.D() != 2*time.Second {
		t.Errorf("dns discovery = %+v", d)
	}
	if d := byName["inventory"].Discovery.Etcd; d.Version != "v3" || d.DialTimeout.D() != 2*time.Second || len(d.Endpoints) != 2 {
		t.Errorf("etcd discovery = %+v", d)
	}
	if d := byName["orders"].Discovery.Registry; d.URL != "http://10.0.0.5:9901" || d.Metadata["zone"] != "eu-west-1a" {
		t.Errorf("registry discovery = %+v", d)
	}
	r := cfg.Registry
	if r.Backend != "etcd" || r.Etcd.Prefix != "/portico/registry/" || r.MaxTTL.D() != 2*time.Minute || len(r.Tokens) != 1 {
		t.Errorf("registry = %+v", r)
	}
	var canary *Route
	for i := range cfg.Routes {
		if cfg.Routes[i].Name == "orders-canary" {
			canary = &cfg.Routes[i]
		}
	}
	if canary == nil || len(canary.Split) != 2 || canary.Mirror.Percent != 5 || canary.Mirror.MaxBodyBytes != 32<<10 {
		t.Fatalf("canary route = %+v", canary)
	}
}

func TestDiscoveryWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		want      []string // fields warned about
	}{
		{"open registry beyond loopback", "admin: {address: \"0.0.0.0:9901\"}\n", []string{"registry.tokens"}},
		{"admin token guards the registry", "admin: {address: \"0.0.0.0:9901\", token: admin-token}\n", nil},
		{"open registry on loopback", "admin: {address: \"127.0.0.1:9901\"}\n", nil},
		{"registry with tokens", "admin: {address: \":9901\", token: t}\nregistry: {tokens: [{name: a, token: \"0123456789abcdef\", services: [\"*\"]}]}\n", nil},
		{"registry disabled", "admin: {address: \":9901\", token: t}\nregistry: {enabled: false}\n", nil},
		{"admin off", "admin: {address: \"off\"}\n", nil},
		{"etcd unused", "registry: {etcd: {endpoints: [\"http://127.0.0.1:2379\"]}}\n", []string{"registry.etcd"}},
		{"etcd used", "registry: {backend: etcd, etcd: {endpoints: [\"http://127.0.0.1:2379\"]}}\n", nil},
		{"versions of static endpoints", `
services:
  - name: s
    endpoints:
      - {url: "http://10.0.0.1:80", metadata: {version: v1}}
      - {url: "http://10.0.0.2:80", metadata: {version: v2}}
  - name: plain
    endpoints: [{url: "http://10.0.0.3:80"}]
routes:
  - {name: a, match: {path: /a}, service: s, version: v1}
  - {name: b, match: {path: /b}, service: s, version: v3}
  - {name: c, match: {path: /c}, service: s, split: [{version: v1, weight: 9}, {version: v9, weight: 1}]}
  - {name: d, match: {path: /d}, service: s, mirror: {service: plain, version: v2}}
`, []string{"routes[1].version", "routes[2].split[1].version", "routes[3].mirror.version"}},
		{"versions of discovered endpoints", `
services:
  - name: reg
    discovery: {registry: {}}
  - name: pinned
    discovery: {registry: {version: v1}}
  - name: pinned-etcd
    discovery: {etcd: {endpoints: ["http://127.0.0.1:2379"], version: v1}}
  - name: dns
    discovery: {dns: {name: dns.example.com, port: 80, metadata: {version: v1}}}
  - name: dns-plain
    discovery: {dns: {name: dns.example.com, port: 80}}
routes:
  - {name: a, match: {path: /a}, service: reg, version: anything}
  - {name: b, match: {path: /b}, service: pinned, version: v1}
  - {name: c, match: {path: /c}, service: pinned, version: v2}
  - {name: d, match: {path: /d}, service: pinned-etcd, version: v2}
  - {name: e, match: {path: /e}, service: dns, version: v1}
  - {name: f, match: {path: /f}, service: dns-plain, version: v1}
`, []string{"routes[2].version", "routes[3].version", "routes[5].version"}},
		{"single-version split", `
services:
  - name: s
    discovery: {registry: {}}
routes:
  - {name: a, match: {path: /a}, service: s, split: [{version: v1, weight: 5}]}
`, []string{"routes[0].split"}},
		{"mirror to itself", `
services:
  - name: s
    discovery: {registry: {}}
  - name: only-mirrored
    discovery: {registry: {}}
routes:
  - {name: a, match: {path: /a}, service: s, mirror: {}}
  - {name: b, match: {path: /b}, service: s, version: v1, mirror: {version: v1}}
  - {name: c, match: {path: /c}, service: s, mirror: {version: v2}}
  - {name: d, match: {path: /d}, service: s, mirror: {service: only-mirrored}}
`, []string{"routes[0].mirror", "routes[1].mirror"}},
		{"tls on discovered services", `
services:
  - name: reg
    discovery: {registry: {}}
    transport: {tls: {server_name: reg.internal}}
  - name: dns-https
    discovery: {dns: {name: a.example.com, port: 443, scheme: https}}
    transport: {tls: {server_name: a.internal}}
  - name: dns-http
    discovery: {dns: {name: b.example.com, port: 80}}
    transport: {tls: {server_name: b.internal}}
routes:
  - {name: a, match: {path: /a}, service: reg}
  - {name: b, match: {path: /b}, service: dns-https}
  - {name: c, match: {path: /c}, service: dns-http}
`, []string{"services[2].transport.tls"}},
		{"success rate on a discovered service", `
services:
  - name: s
    discovery: {registry: {}}
    outlier_detection: {success_rate: {}}
routes:
  - {name: a, match: {path: /a}, service: s}
`, nil},
		{"in-memory registry unreachable", `
admin: {address: "off"}
services:
  - name: s
    discovery: {registry: {}}
  - name: remote
    discovery: {registry: {url: "http://10.0.0.5:9901"}}
routes:
  - {name: a, match: {path: /a}, service: s}
  - {name: b, match: {path: /b}, service: remote}
`, []string{"services[0].discovery.registry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, tc.src, nil)
			var got []string
			for _, w := range Warnings(cfg) {
				if w.Field != "admin.address" {
					got = append(got, w.Field)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("warnings on %q, want %q:\n%v", got, tc.want, Warnings(cfg))
			}
		})
	}
}

func TestDiscoveryWarningMessages(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `admin: {address: "0.0.0.0:9901", token: admin-token}
registry:
  etcd: {endpoints: ["http://127.0.0.1:2379"]}
services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80", metadata: {version: v1}}]
routes:
  - name: r
    match: {path: /}
    service: s
    version: v2
`, nil)
	var got []string
	for _, w := range Warnings(cfg) {
		got = append(got, w.String())
	}
	want := []string{
		`test.yaml:3: warning: registry.etcd: etcd is set but backend is memory, so the etcd settings are unused; set backend: etcd or remove etcd`,
		`test.yaml:11: warning: routes[0].version: service "s" has no endpoints of version "v2" (its endpoints' versions: "v1"), so the route always answers 503`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", got, want)
	}
}

func TestRedactedHidesDiscoverySecrets(t *testing.T) {
	t.Parallel()
	const (
		regToken   = "registration-token-0123456789"
		readToken  = "registry-read-token-0123456789"
		etcdPass   = "etcd-password-of-the-registry"
		etcdPass2  = "etcd-password-of-discovery"
		remoteRead = "remote-registry-read-token"
	)
	cfg := mustParse(t, `
registry:
  backend: etcd
  etcd: {endpoints: ["http://127.0.0.1:2379"], username: gw, password: `+etcdPass+`}
  tokens: [{name: shop, token: `+regToken+`, services: ["*"]}]
  read_token: `+readToken+`
services:
  - name: a
    discovery: {registry: {url: "http://10.0.0.5:9901", token: `+remoteRead+`}}
  - name: b
    discovery: {etcd: {endpoints: ["http://127.0.0.1:2379"], username: gw, password: `+etcdPass2+`}}
routes:
  - {name: a, match: {path: /a}, service: a}
  - {name: b, match: {path: /b}, service: b}
`, nil)
	red := cfg.Redacted()
	out, err := json.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{regToken, readToken, etcdPass, etcdPass2, remoteRead} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the redacted configuration shows %q:\n%s", secret, out)
		}
	}
	if red.Registry.Tokens[0].Token != RedactedValue || red.Registry.ReadToken != RedactedValue || red.Registry.Etcd.Password != RedactedValue ||
		red.Services[0].Discovery.Registry.Token != RedactedValue || red.Services[1].Discovery.Etcd.Password != RedactedValue {
		t.Errorf("secrets not replaced by %s: %s", RedactedValue, out)
	}
	if red.Registry.Tokens[0].Name != "shop" || red.Registry.Etcd.Username != "gw" || red.Services[0].Discovery.Registry.URL != "http://10.0.0.5:9901" {
		t.Error("non-secret fields were redacted")
	}
	if cfg.Registry.Tokens[0].Token != regToken || cfg.Services[1].Discovery.Etcd.Password != etcdPass2 {
		t.Error("Redacted modified the original")
	}
	// Unset secrets stay empty rather than becoming "REDACTED".
	if plain := mustParse(t, "", nil).Redacted(); plain.Registry.ReadToken != "" {
		t.Errorf("empty read_token redacted to %q", plain.Registry.ReadToken)
	}
}
