package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const authBase = `
services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80"}]
`

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"consumers", `auth:
  consumers:
    - scopes: [a b]
    - id: alice
      api_keys:
        - sha256: xyz
        - key: literal-key-0123456789
        - {sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824, key: x}
        - {}
    - id: alice
      api_keys: [{sha256: 2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824}]
      basic: {username: "a:b", bcrypt: plain}
    - id: bob
      api_keys: [{sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824}]
      claims: {"bad name": x}
`, []string{
			`test.yaml:7:7: auth.consumers[0].id: missing required field: every consumer needs an id`,
			`test.yaml:7:16: auth.consumers[0].scopes[0]: invalid value "a b": use printable characters without spaces, commas or quotes`,
			`test.yaml:10:19: auth.consumers[1].api_keys[0].sha256: not a SHA-256 digest: write 64 hex digits, such as the output of "printf %s KEY | sha256sum"`,
			`test.yaml:11:16: auth.consumers[1].api_keys[1].key: a plaintext API key must come from the environment ("${VAR}"); or give its digest in sha256`,
			`test.yaml:12:11: auth.consumers[1].api_keys[2]: set either sha256 or key, not both`,
			`test.yaml:13:11: auth.consumers[1].api_keys[3]: missing required field: sha256 (the hex SHA-256 digest of the key) or key ("${VAR}")`,
			`test.yaml:14:11: auth.consumers[2].id: duplicate consumer id "alice"; first defined at test.yaml:8`,
			`test.yaml:16:25: auth.consumers[2].basic.username: user name "a:b" must not contain ':' or control characters`,
			`test.yaml:16:40: auth.consumers[2].basic.bcrypt: not a bcrypt hash: crypto/bcrypt: hashedSecret too short to be a bcrypted password`,
			`test.yaml:18:18: auth.consumers[3].api_keys[0]: duplicate API key; first defined at test.yaml:15`,
			`test.yaml:19:28: auth.consumers[3].claims["bad name"]: claim name "bad name" must be a header token (it is sent as X-Consumer-Claim-bad name)`,
		}},
		{"jwt issuers", `auth:
  jwt_issuers:
    - name: a
    - name: b
      issuer: x
      audiences: [y]
      algorithms: [RS265, HS256, none]
      jwks_url: http://idp.example.com/jwks
      leeway: -1s
    - name: c
      issuer: x
      audiences: [y]
      algorithms: [HS256]
      hmac_secret: short
      jwks_url: https://idp.example.com/jwks
    - name: d
      issuer: x
      audiences: [y]
      algorithms: [ES256]
      max_token_bytes: -1
`, []string{
			`test.yaml:7:7: auth.jwt_issuers[0].issuer: missing required field: the exact "iss" value of the issuer's tokens`,
			`test.yaml:7:7: auth.jwt_issuers[0].audiences: missing required field: at least one accepted "aud" value, so tokens minted for other services are refused`,
			`test.yaml:7:7: auth.jwt_issuers[0].algorithms: missing required field: the signature algorithms this issuer uses, such as [RS256]`,
			`test.yaml:8:7: auth.jwt_issuers[1].hmac_secret: missing required field: HS256 needs the shared secret ("${VAR}")`,
			`test.yaml:11:19: auth.jwt_issuers[1].algorithms: HS256 issuers use hmac_secret only; remove jwks_url and public_keys`,
			`test.yaml:11:20: auth.jwt_issuers[1].algorithms[0]: unsupported algorithm "RS265": use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256`,
			`test.yaml:11:34: auth.jwt_issuers[1].algorithms[2]: unsupported algorithm "none": use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256`,
			`test.yaml:13:15: auth.jwt_issuers[1].leeway: duration "-1s" must not be negative`,
			`test.yaml:17:19: auth.jwt_issuers[2].algorithms: HS256 issuers use hmac_secret only; remove jwks_url and public_keys`,
			`test.yaml:18:20: auth.jwt_issuers[2].hmac_secret: secret is shorter than 32 bytes`,
			`test.yaml:20:7: auth.jwt_issuers[3].jwks_url: missing required field: set jwks_url or public_keys for the issuer's keys`,
			`test.yaml:24:24: auth.jwt_issuers[3].max_token_bytes: must not be negative: tokens always have a size limit`,
		}},
		{"routes", `auth:
  jwt_issuers:
    - {name: corp, issuer: x, audiences: [y], algorithms: [ES256], jwks_url: "https://idp.example.com/jwks"}
  introspection:
    - {name: i1, url: "http://10.1.1.1/introspect", client_id: c, client_secret: s}
    - {name: i2, url: "https://idp.example.com/introspect", client_id: c, client_secret: s}
routes:
  - name: r1
    match: {path: /a}
    service: s
    auth: {optional: true}
    authorize: {}
  - name: r2
    match: {path: /b}
    service: s
    auth:
      api_key: {header: Authorization, query: "a&b"}
      jwt: {issuers: [crop]}
      introspection: {}
      realm: 'a"b'
  - name: r3
    match: {path: /c}
    service: s
    auth:
      basic: {}
      bearer_query: token
    authorize:
      scopes: {}
      claims: [{name: tenant}]
  - name: r4
    match: {path: /d}
    service: s
    authorize: {roles: {any_of: [admin]}}
`, []string{
			`test.yaml:9:23: auth.introspection[0].url: URL "http://10.1.1.1/introspect" must use https: keys and token answers fetched in clear text could be forged`,
			`test.yaml:15:11: routes[0].auth: no authentication method: set at least one of api_key, jwt, introspection and basic`,
			`test.yaml:16:16: routes[0].authorize: empty authorize: set scopes, roles, claims or consumers, or remove it`,
			`test.yaml:21:25: routes[1].auth.api_key.header: API keys cannot use the Authorization header; use a header of their own such as X-Api-Key`,
			`test.yaml:21:47: routes[1].auth.api_key.query: invalid query parameter name "a&b"`,
			`test.yaml:22:23: routes[1].auth.jwt.issuers[0]: unknown JWT issuer "crop"`,
			`test.yaml:23:22: routes[1].auth.introspection.provider: missing required field: name one of auth.introspection (2 are defined)`,
			`test.yaml:24:14: routes[1].auth.realm: realm "a\"b" must not contain quotes, backslashes or control characters`,
			`test.yaml:30:21: routes[2].auth.bearer_query: bearer_query needs jwt or introspection on the route`,
			`test.yaml:32:15: routes[2].authorize.scopes: set all_of, any_of or both`,
			`test.yaml:33:16: routes[2].authorize.claims[0].any_of: missing required field: the accepted values of claim "tenant"`,
			`test.yaml:37:16: routes[3].authorize: authorize needs auth on the same route: without authentication every request is anonymous`,
		}},
		{"authorize consumers", `auth:
  consumers:
    - {id: "svc:a"}
    - {id: svc-b}
  jwt_issuers:
    - {name: corp, issuer: x, audiences: [y], algorithms: [ES256], jwks_url: "https://idp.example.com/jwks"}
  introspection:
    - {name: corp, url: "https://idp.example.com/introspect", client_id: c, client_secret: s}
routes:
  - name: r1
    match: {path: /a}
    service: s
    auth: {jwt: {}}
    authorize:
      consumers: [svc-b, "corp:svc-b", "corp:user:1", svc-a, "crop:svc-a", "corp:", "a b"]
`, []string{
			`test.yaml:7:12: auth.consumers[0].id: invalid consumer id "svc:a": ':' is reserved for token subjects in authorize.consumers (ISSUER:ID)`,
			`test.yaml:12:14: auth.introspection[0].name: name "corp" is also a JWT issuer's: authorize.consumers names token subjects by issuer, so the names must differ`,
			`test.yaml:19:55: routes[0].authorize.consumers[3]: unknown consumer "svc-a": a plain id names a consumer of auth.consumers; name a token subject with its issuer, as in "ISSUER:svc-a"`,
			`test.yaml:19:62: routes[0].authorize.consumers[4]: unknown issuer "crop" in "crop:svc-a": name one of auth.jwt_issuers or auth.introspection`,
			`test.yaml:19:76: routes[0].authorize.consumers[5]: invalid consumer "corp:": write ISSUER:ID with the token subject after ':'`,
			`test.yaml:19:85: routes[0].authorize.consumers[6]: invalid consumer "a b": use printable characters without spaces, commas or quotes`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnv("test.yaml", []byte(authBase+tc.src), envMap(nil))
			if err == nil {
				t.Fatal("ParseEnv succeeded")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestConsumersFileErrors checks that problems in the consumers file name
// that file, its lines and its own field paths.
func TestConsumersFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	consumers := write("consumers.yaml", "consumers:\n  - id: alice\n    api_keys: [{sha256: nope}]\n  - id: bob\n    roles: x\n")
	main := write("portico.yaml", authBase+"auth:\n  consumers: [{id: alice}]\n  consumers_file: consumers.yaml\n")
	_, err := Load(main)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := []string{
		consumers + `:2:9: consumers[0].id: duplicate consumer id "alice"; first defined at ` + main + ":6",
		consumers + `:3:25: consumers[0].api_keys[0].sha256: not a SHA-256 digest: write 64 hex digits, such as the output of "printf %s KEY | sha256sum"`,
		consumers + `:5:12: consumers[1].roles: expected a list, got a scalar`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	write("consumers.yaml", "consumers:\n  - id: carol\n    api_keys: [{key: \"${PORTICO_TEST_CAROL_KEY:-}\"}]\n")
	if _, err := Load(main); err == nil || !strings.Contains(err.Error(), "consumers.yaml:3:16: consumers[0].api_keys[0]: missing required field") {
		t.Errorf("an unset variable as a key was accepted: %v", err)
	}
	os.Remove(consumers)
	if _, err := Load(main); err == nil || !strings.Contains(err.Error(), `auth.consumers_file: cannot read "`+consumers+`": no such file or directory`) {
		t.Errorf("a missing consumers file gave %v", err)
	}
}

func TestAuthLoadCompletes(t *testing.T) {
	t.Parallel()
	src := authBase + `auth:
  consumers:
    - id: alice
      api_keys: [{key: "${ALICE_KEY}"}]
  jwt_issuers:
    - {name: corp, issuer: x, audiences: [y], algorithms: [HS256], hmac_secret: "${HS}"}
  introspection:
    - {name: idp, url: "http://127.0.0.1:9/introspect", client_id: c, client_secret: "${IS}"}
routes:
  - name: r
    match: {path: /}
    service: s
    auth:
      api_key: {}
      jwt: {}
      introspection: {}
      bearer_query: access_token
  - name: q
    match: {path: /q}
    service: s
    auth: {api_key: {query: key}}
`
	env := map[string]string{"ALICE_KEY": "alice-key-0123456789", "HS": strings.Repeat("s", 32), "IS": "introspection-secret"}
	cfg, err := ParseEnv("test.yaml", []byte(src), envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("alice-key-0123456789"))
	if k := cfg.Auth.Consumers[0].APIKeys[0]; k.SHA256 != hex.EncodeToString(sum[:]) || k.Key != "" {
		t.Errorf("plaintext key not replaced by its digest: %+v", k)
	}
	j := cfg.Auth.JWTIssuers[0]
	if j.JWKSCacheTTL.D() != 5*time.Minute || j.JWKSRefreshCooldown.D() != 30*time.Second || j.Leeway.D() != 30*time.Second ||
		j.MaxTokenBytes != 8<<10 || j.SubjectClaim != "sub" || j.ScopesClaim != "scope" || j.TokenCacheSize != 10000 {
		t.Errorf("issuer defaults: %+v", j)
	}
	ra := cfg.Routes[0].Auth
	if ra.APIKey.Header != "X-Api-Key" || ra.Realm != "portico" || ra.Introspection.Provider != "idp" {
		t.Errorf("route auth defaults: %+v %+v", ra, ra.APIKey)
	}
	if cfg.Routes[1].Auth.APIKey.Header != "" {
		t.Error("a route reading keys from the query also got the default header")
	}
	if got := cfg.CredentialQueryParams(); !reflect.DeepEqual(got, []string{"access_token", "key"}) {
		t.Errorf("CredentialQueryParams() = %v", got)
	}
	out, err := json.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range env {
		if strings.Contains(string(out), secret) {
			t.Errorf("redacted configuration shows a secret: %s", out)
		}
	}
}
