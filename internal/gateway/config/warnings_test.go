package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
services:
  - name: used
    endpoints: [{url: "http://10.0.0.1:80"}]
  - name: unused
    endpoints: [{url: "http://10.0.0.2:80"}]
    transport:
      tls: {insecure_skip_verify: true}
routes:
  - name: user
    match: {path: "/u/{id}", hosts: [API.example.com, b.example.com], methods: [GET, POST]}
    service: used
  - name: user-again
    match: {path: "/u/{x}", hosts: [b.example.com, api.example.com], methods: [GET]}
    service: used
  - name: get-only
    match: {path: /g, methods: [GET]}
    service: used
  - name: get-and-post
    match: {path: /g, methods: [GET, POST]}
    service: used
  - name: catch-all
    match: {path: "/{rest...}"}
    service: used
  - name: specific-after-catch-all
    match: {path: /specific}
    service: used
  - name: header-a
    match: {path: /h, headers: [{name: X-A, equals: "1"}]}
    service: used
  - name: header-b
    match: {path: /h, headers: [{name: X-B, equals: "1"}]}
    service: used
  - name: header-a-again
    match: {path: /h, headers: [{name: x-a, equals: "1"}]}
    service: used
  - name: other-host
    match: {path: "/u/{id}", hosts: [c.example.com]}
    service: used
  - name: direct
    match: {path: /d}
    direct_response: {}
    rewrite: {strip_prefix: /d}
`, nil)
	var got []string
	for _, w := range Warnings(cfg) {
		got = append(got, w.String())
	}
	want := []string{
		`test.yaml:5: warning: services[1]: service "unused" is not used by any route`,
		`test.yaml:8: warning: services[1].transport.tls.insecure_skip_verify: certificate verification is off for service "unused"; never use this in production`,
		`test.yaml:8: warning: services[1].transport.tls: service "unused" has no https endpoint, so its tls settings have no effect`,
		`test.yaml:13: warning: routes[1]: route "user-again" never matches: route "user" (line 10) matches every request it does and comes first`,
		`test.yaml:34: warning: routes[8]: route "header-a-again" never matches: route "header-a" (line 28) matches every request it does and comes first`,
		`test.yaml:43: warning: routes[10].rewrite: rewrite has no effect on a route with direct_response`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%q\nwant:\n%q", got, want)
	}
	if Warnings(nil) != nil {
		t.Error("Warnings(nil) != nil")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	src := func(zone string) string {
		return `
services:
  - name: s
    endpoints:
      - url: http://10.0.0.1:80
        metadata: {zone: ` + zone + `, rack: r1, version: v1}
    transport: {dial_timeout: 2s}
`
	}
	a := mustParse(t, src("a"), nil).Services[0].Fingerprint()
	for range 20 { // map iteration order must not matter
		if b := mustParse(t, src("a"), nil).Services[0].Fingerprint(); b != a {
			t.Fatalf("fingerprint not stable: %s != %s", a, b)
		}
	}
	if b := mustParse(t, src("b"), nil).Services[0].Fingerprint(); b == a {
		t.Error("fingerprint unchanged after a metadata change")
	}
	s := mustParse(t, src("a"), nil).Services[0]
	s.Transport.MaxConnsPerHost = 10
	if s.Fingerprint() == a {
		t.Error("fingerprint unchanged after a transport change")
	}
	if len(a) != 32 {
		t.Errorf("fingerprint %q is not 32 hex digits", a)
	}
}

func TestAdminWithoutTokenWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		admin string
		warn  bool
	}{
		{`{address: "0.0.0.0:9901"}`, true},
		{`{address: ":9901"}`, true},
		{`{address: "0.0.0.0:9901", token: "t0ken"}`, false},
		{`{address: "127.0.0.1:9901"}`, false},
		{`{address: "[::1]:9901"}`, false},
		{`{address: "localhost:9901"}`, false},
		{`{address: "off"}`, false},
	} {
		cfg := mustParse(t, "admin: "+tc.admin+"\nroutes:\n  - {name: r, match: {path: /}, direct_response: {body: ok}}\n", nil)
		got := false
		for _, w := range Warnings(cfg) {
			if w.Field == "admin.address" {
				got = true
			}
		}
		if got != tc.warn {
			t.Errorf("admin %s: warning %v, want %v", tc.admin, got, tc.warn)
		}
	}
}

func TestSuccessRateWarnings(t *testing.T) {
	t.Parallel()
	svc := func(n int, sr string) string {
		var eps strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&eps, "{url: \"http://10.0.0.%d:80\"},", i+1)
		}
		return "services:\n  - name: s\n    endpoints: [" + eps.String() + "]\n    outlier_detection: {success_rate: " + sr + "}\n" +
			"routes:\n  - {name: r, match: {path: /}, service: s}\n"
	}
	for _, tc := range []struct {
		name, cfg, field string
	}{
		{"fewer endpoints than minimum_hosts", svc(3, "{}"), "services[0].outlier_detection.success_rate.minimum_hosts"},
		{"factor beyond reach", svc(3, "{minimum_hosts: 3, stdev_factor: 1.5}"), "services[0].outlier_detection.success_rate.stdev_factor"},
		{"reachable", svc(3, "{minimum_hosts: 3, stdev_factor: 1}"), ""},
		{"defaults with enough endpoints", svc(6, "{}"), ""},
	} {
		cfg := mustParse(t, tc.cfg, nil)
		var got string
		for _, w := range Warnings(cfg) {
			if strings.Contains(w.Field, "success_rate") {
				got = w.Field
			}
		}
		if got != tc.field {
			t.Errorf("%s: warning on %q, want %q", tc.name, got, tc.field)
		}
	}
}
