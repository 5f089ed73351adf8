package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	env := envMap(map[string]string{"HOST": "db", "EMPTY": "", "PORT": "5432"})
	tests := []struct {
		in, want string
		fromEnv  bool
		wantErr  string
	}{
		{in: "plain", want: "plain"},
		{in: "${HOST}:${PORT}", want: "db:5432", fromEnv: true},
		{in: "${MISSING:-fallback}", want: "fallback"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: "", fromEnv: true},
		{in: "${MISSING:-}", want: ""},
		{in: "$${HOST}", want: "${HOST}"},
		{in: "cost: $$5", want: "cost: $5"},
		{in: "^a+$", want: "^a+$"},
		{in: "$HOST", want: "$HOST"},
		{in: "${MISSING}", wantErr: "environment variable MISSING is not set"},
		{in: "${HOST", wantErr: "unterminated"},
		{in: "${}", wantErr: "invalid environment variable reference ${}"},
		{in: "${A-B}", wantErr: "invalid environment variable reference ${A-B}"},
	}
	for _, tc := range tests {
		got, fromEnv, err := expand(tc.in, env)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("expand(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want || fromEnv != tc.fromEnv {
			t.Errorf("expand(%q) = %q, %v, %v; want %q, %v", tc.in, got, fromEnv, err, tc.want, tc.fromEnv)
		}
	}
}

const envConfig = `
admin:
  token: ${TOKEN}
services:
  - name: users
    endpoints:
      - url: http://${USERS_HOST:-10.0.0.1}:${USERS_PORT}
        weight: ${WEIGHT:-2}
        metadata:
          secret: ${META}
routes:
  - name: users
    match: {path: /users}
    service: users
    headers:
      request:
        set:
          Authorization: Bearer ${API_KEY}
  - name: body
    match: {path: /body}
    direct_response:
      body: ${BODY}
`

func TestParseEnvExpansion(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, envConfig, map[string]string{
		"TOKEN": "t0k3n", "USERS_PORT": "8080", "META": "m", "API_KEY": "k3y",
		"BODY": "line1\nservices:\n  - name: evil\n",
	})
	if got := cfg.Services[0].Endpoints[0].URL; got != "http://10.0.0.1:8080" {
		t.Errorf("url = %q", got)
	}
	if got := cfg.Services[0].Endpoints[0].Weight; got != 2 {
		t.Errorf("weight = %d, want the default from ${WEIGHT:-2}", got)
	}
	if got := cfg.Routes[0].Headers.Request.Set["Authorization"]; got != "Bearer k3y" {
		t.Errorf("Authorization = %q", got)
	}
	// A variable's text is one scalar value: YAML syntax in it adds nothing.
	if got := cfg.Routes[1].DirectResponse.Body; got != "line1\nservices:\n  - name: evil\n" {
		t.Errorf("body = %q", got)
	}
	if len(cfg.Services) != 1 {
		t.Errorf("services = %d, want 1: a variable injected structure", len(cfg.Services))
	}
}

func TestParseEnvInjection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		env       map[string]string
		want      string
	}{
		{
			name: "list syntax into a list field stays one value",
			src:  "routes:\n  - name: r\n    match:\n      path: /\n      hosts: ${HOSTS}\n    direct_response: {}\n",
			env:  map[string]string{"HOSTS": "[a.com, b.com]"},
			want: "test.yaml:5:14: routes[0].match.hosts: expected a list, got a scalar",
		},
		{
			name: "mapping syntax into a number",
			src:  "services:\n  - name: s\n    endpoints:\n      - url: http://10.0.0.1:80\n        weight: ${W}\n",
			env:  map[string]string{"W": "1\n        metadata: {a: b}"},
			want: "test.yaml:5:17: services[0].endpoints[0].weight: expected an integer, got \"1\\n        metadata: {a: b}\"",
		},
		{
			name: "header injection through a header value",
			src:  "routes:\n  - name: r\n    match: {path: /}\n    direct_response: {}\n    headers:\n      response:\n        set:\n          X-A: ${V}\n",
			env:  map[string]string{"V": "ok\r\nSet-Cookie: stolen"},
			want: "test.yaml:8:16: routes[0].headers.response.set.X-A: the value of header \"X-A\" contains a line break or control character",
		},
		{
			name: "unset variable names file, line and field",
			src:  "listeners:\n  - name: web\n    address: ${LISTEN_ADDR}\n",
			want: "test.yaml:3:14: listeners[0].address: environment variable LISTEN_ADDR is not set; set it or give a default with ${LISTEN_ADDR:-value}",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnv("test.yaml", []byte(tc.src), envMap(tc.env))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, envConfig, map[string]string{
		"TOKEN": "t0k3n", "USERS_PORT": "18081", "META": "m", "API_KEY": "k3y", "BODY": "b",
	})
	red := cfg.Redacted()
	if red.Admin.Token != RedactedValue {
		t.Errorf("admin token = %q", red.Admin.Token)
	}
	if got := red.Services[0].Endpoints[0].URL; got != RedactedValue {
		t.Errorf("url from the environment = %q, want it redacted", got)
	}
	if got := red.Services[0].Endpoints[0].Metadata["secret"]; got != RedactedValue {
		t.Errorf("metadata from the environment = %q", got)
	}
	if got := red.Routes[0].Headers.Request.Set["Authorization"]; got != RedactedValue {
		t.Errorf("Authorization = %q", got)
	}
	if got := red.Routes[0].Name; got != "users" {
		t.Errorf("name = %q, want it kept", got)
	}
	// The original is untouched: Redacted is a deep copy.
	if cfg.Admin.Token != "t0k3n" || cfg.Routes[0].Headers.Request.Set["Authorization"] != "Bearer k3y" || cfg.Services[0].Endpoints[0].Metadata["secret"] != "m" {
		t.Error("Redacted modified the original")
	}
	red.Routes[0].Match.Path = "/changed"
	if cfg.Routes[0].Match.Path != "/users" {
		t.Error("Redacted shares memory with the original")
	}
	out, err := json.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"t0k3n", "k3y", "18081"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("redacted JSON contains %q: %s", secret, out)
		}
	}
}

func TestRedactedKeepsFilePaths(t *testing.T) {
	t.Setenv("PORTICO_ADMIN_TOKEN", "s3cret")
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	red := cfg.Redacted()
	if red.Admin.Token != RedactedValue || red.Listeners[0].TLS.KeyFile != "testdata/tls/key.pem" {
		t.Errorf("redacted admin = %+v, tls = %+v", red.Admin, red.Listeners[0].TLS)
	}
	// ${UPSTREAM_TOKEN:-local-dev} took its default: nothing secret to hide.
	if got := red.Routes[0].Headers.Request.Set["Authorization"]; got != "Bearer local-dev" {
		t.Errorf("Authorization = %q", got)
	}
	var nilCfg *Config
	if nilCfg.Redacted() != nil {
		t.Error("nil.Redacted() != nil")
	}
}

// TestEnvSecretsStayOutOfErrors: a value that came from the environment is
// never printed in a validation error, even when it is what is wrong.
func TestEnvSecretsStayOutOfErrors(t *testing.T) {
	t.Parallel()
	env := func(name string) (string, bool) {
		if name == "UPSTREAM_PASSWORD" {
			return "hunter2-SECRET", true
		}
		return "", false
	}
	_, err := ParseEnv("secret.yaml", []byte(`
services:
  - name: a
    endpoints: [{url: "http://user:${UPSTREAM_PASSWORD}@10.0.0.1:80"}]
routes:
  - name: r
    match: {path: /}
    service: a
`), env)
	if err == nil {
		t.Fatal("userinfo in an endpoint URL was accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the secret: %v", err)
	}
	if !strings.Contains(err.Error(), "services[0].endpoints[0].url") {
		t.Fatalf("error does not name the field: %v", err)
	}
}
