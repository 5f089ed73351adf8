package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envMap is a LookupFunc over a fixed set of variables.
func envMap(m map[string]string) LookupFunc {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func mustParse(t testing.TB, src string, env map[string]string) *Config {
	t.Helper()
	cfg, err := ParseEnv("test.yaml", []byte(src), envMap(env))
	if err != nil {
		t.Fatalf("ParseEnv: %v", err)
	}
	return cfg
}

// errorCase is one case of testdata/errors.txt.
type errorCase struct {
	name, src string
	want      []string
}

func readErrorCases(t *testing.T) []errorCase {
	t.Helper()
	data, err := os.ReadFile("testdata/errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cases []errorCase
	for _, chunk := range strings.Split(string(data), "\n=== ")[1:] {
		name, rest, _ := strings.Cut(chunk, "\n")
		src, want, ok := strings.Cut(rest, ">>> errors\n")
		if !ok {
			t.Fatalf("case %q has no >>> errors section", name)
		}
		cases = append(cases, errorCase{name, src, strings.Split(strings.TrimSpace(want), "\n")})
	}
	if len(cases) < 20 {
		t.Fatalf("read only %d cases from testdata/errors.txt", len(cases))
	}
	return cases
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range readErrorCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseEnv("test.yaml", []byte(tc.src), envMap(nil))
			if err == nil {
				t.Fatalf("ParseEnv succeeded, want errors:\n%s", strings.Join(tc.want, "\n"))
			}
			if cfg != nil {
				t.Error("ParseEnv returned a Config along with errors")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	t.Parallel()
	src := "routes:\n  - name: r\n    match:\n      path: /\n      headers:\n        - name: X-A\n          regex: \"(a\"\n    direct_response: {}\n"
	_, err := ParseEnv("gw.yaml", []byte(src), envMap(nil))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	want := &Error{File: "gw.yaml", Line: 7, Column: 18, Field: "routes[0].match.headers[0].regex", Msg: "invalid regular expression: error parsing regexp: missing closing ): `(a`"}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("error = %#v, want %#v", e, want)
	}
	if got := e.Error(); got != "gw.yaml:7:18: routes[0].match.headers[0].regex: invalid regular expression: error parsing regexp: missing closing ): `(a`" {
		t.Errorf("Error() = %q", got)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Column: 5, Field: "routes[0]", Msg: "m"}, "a.yaml:3:5: routes[0]: m"},
		{Error{File: "a.yaml", Line: 3, Msg: "m"}, "a.yaml:3: m"},
		{Error{File: "a.yaml", Msg: "m"}, "a.yaml: m"},
		{Error{Field: "admin", Msg: "m"}, "admin: m"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	w := Warning{File: "a.yaml", Line: 4, Field: "services[1]", Msg: "unused"}
	if got, want := w.String(), "a.yaml:4: warning: services[1]: unused"; got != want {
		t.Errorf("Warning.String() = %q, want %q", got, want)
	}
}

func TestLoadFull(t *testing.T) {
	t.Setenv("PORTICO_ADMIN_TOKEN", "s3cret")
	t.Setenv("UPSTREAM_TOKEN", "up-token")
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "testdata/full.yaml" {
		t.Errorf("File = %q", cfg.File)
	}
	if got := cfg.Admin.Token; got != "s3cret" {
		t.Errorf("admin token = %q, want it from the environment", got)
	}
	l := cfg.Listeners[0]
	if l.TLS.CertFile != "testdata/tls/cert.pem" || l.TLS.KeyFile != "testdata/tls/key.pem" {
		t.Errorf("TLS paths not resolved against the file's directory: %+v", l.TLS)
	}
	if l.WriteTimeout.D() != 90*time.Second || l.MaxHeaderBytes != 32<<10 || l.Protocol != "https" {
		t.Errorf("listener = %+v", l)
	}
	r := cfg.Routes[0]
	if !reflect.DeepEqual(r.Match.Methods, []string{"GET", "HEAD"}) {
		t.Errorf("methods = %v, want upper case", r.Match.Methods)
	}
	if r.WebSocketEnabled() || r.Timeout.D() != 10*time.Second || r.MaxBodyBytes != 1<<20 {
		t.Errorf("route = %+v", r)
	}
	if got := r.Headers.Request.Set["Authorization"]; got != "Bearer up-token" {
		t.Errorf("Authorization = %q", got)
	}
	if n, ok := cfg.Routes[1].BodyLimit(); ok || n != 0 {
		t.Errorf("BodyLimit of max_body_bytes -1 = %d, %v; want no limit", n, ok)
	}
	if ws := Warnings(cfg); len(ws) != 0 {
		t.Errorf("full example has warnings: %v", ws)
	}
	if !cfg.AccessLog.IsEnabled() || cfg.AccessLog.Output != "stderr" {
		t.Errorf("access log = %+v", cfg.AccessLog)
	}
}

// TestFullExampleSetsEveryField guards testdata/full.yaml: it must keep
// exercising every field of the schema.
func TestFullExampleSetsEveryField(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range yamlFieldNames(reflect.TypeFor[Config]()) {
		if !strings.Contains(string(data), name+":") {
			t.Errorf("testdata/full.yaml does not set %q", name)
		}
	}
}

// yamlFieldNames lists the yaml names of every field reachable from t.
func yamlFieldNames(t reflect.Type) []string {
	var names []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			names = append(names, name)
			walk(f.Type)
		}
	}
	walk(t)
	return names
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load error = %v, want fs.ErrNotExist", err)
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# only a comment\n", "---\n", "{}"} {
		cfg := mustParse(t, src, nil)
		if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != DefaultListenerAddress {
			t.Errorf("%q: listeners = %+v, want the default", src, cfg.Listeners)
		}
	}
}

func TestParseMergeKeys(t *testing.T) {
	t.Parallel()
	src := `
services:
  - name: a
    endpoints: [{url: "http://10.0.0.1:80"}]
    transport: &fast
      dial_timeout: 1s
      keep_alive: 5s
  - name: b
    endpoints: [{url: "http://10.0.0.2:80"}]
    transport:
      <<: *fast
      keep_alive: 9s
routes:
  - &base {name: a, match: {path: /a}, service: a, timeout: 3s}
  - <<: *base
    name: b
    match: {path: /b}
    service: b
`
	cfg := mustParse(t, src, nil)
	tr := cfg.Services[1].Transport
	if tr.DialTimeout.D() != time.Second || tr.KeepAlive.D() != 9*time.Second {
		t.Errorf("merged transport = %+v", tr)
	}
	if r := cfg.Routes[1]; r.Name != "b" || r.Timeout.D() != 3*time.Second || r.Match.Path != "/b" {
		t.Errorf("merged route = %+v", r)
	}
}

// TestParseAliasBomb pins down that aliases cannot multiply the work of
// decoding without limit: 2000 aliases of a route with 2000 hosts would be
// four million values from a 40KB file.
func TestParseAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("routes:\n  - &r\n    name: r\n    direct_response: {}\n    match:\n      path: /\n      hosts:\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "        - h%d.example.com\n", i)
	}
	for range 2000 {
		b.WriteString("  - *r\n")
	}
	start := time.Now()
	_, err := ParseEnv("bomb.yaml", []byte(b.String()), envMap(nil))
	if err == nil || !strings.Contains(err.Error(), "document is too large or expands too many aliases") {
		t.Fatalf("error = %.300v, want the alias limit", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("parse took %v", d)
	}
}
