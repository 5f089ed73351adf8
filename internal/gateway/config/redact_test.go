package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRedactedHidesLiteralSecrets pins down the bug where /admin/config
// showed secrets written literally in the file (not as ${VAR}): the Redis
// password, bcrypt hashes, API key digests, the HMAC secret and the
// introspection client secret. They are now redacted wherever they came
// from.
func TestRedactedHidesLiteralSecrets(t *testing.T) {
	t.Parallel()
	const (
		redisPassword = "hunter2-redis-password"
		bcryptHash    = "$2a$10$ajHhcmTk.9S0js1lsVAhwe1fEI9jmDyY5ufvbllVoyAwy2y1Ctx7i"
		keyDigest     = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
		hmacSecret    = "hmac-secret-0123456789-0123456789-abcdef"
		clientSecret  = "introspection-client-secret"
	)
	cfg := mustParse(t, `
rate_limits:
  redis: {address: "127.0.0.1:6379", password: "`+redisPassword+`"}
services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80"}]
auth:
  consumers:
    - id: alice
      api_keys: [{sha256: `+keyDigest+`}]
      basic: {username: alice, bcrypt: "`+bcryptHash+`"}
  jwt_issuers:
    - {name: hs, issuer: x, audiences: [y], algorithms: [HS256], hmac_secret: "`+hmacSecret+`"}
  introspection:
    - {name: idp, url: "https://idp.example.com/introspect", client_id: gw, client_secret: "`+clientSecret+`"}
routes:
  - name: r
    match: {path: /}
    service: s
`, nil)
	red := cfg.Redacted()
	out, err := json.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{redisPassword, bcryptHash, keyDigest, hmacSecret, clientSecret} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the redacted configuration shows %q:\n%s", secret, out)
		}
	}
	if red.RateLimits.Redis.Password != RedactedValue || red.Auth.Consumers[0].Basic.Bcrypt != RedactedValue ||
		red.Auth.Consumers[0].APIKeys[0].SHA256 != RedactedValue || red.Auth.JWTIssuers[0].HMACSecret != RedactedValue ||
		red.Auth.Introspection[0].ClientSecret != RedactedValue {
		t.Errorf("secrets not replaced by %s: %+v", RedactedValue, red.Auth)
	}
	if red.Auth.Consumers[0].Basic.Username != "alice" || red.Auth.Introspection[0].ClientID != "gw" {
		t.Error("non-secret fields were redacted")
	}
	if cfg.RateLimits.Redis.Password != redisPassword || cfg.Auth.Consumers[0].Basic.Bcrypt != bcryptHash ||
		cfg.Auth.Consumers[0].APIKeys[0].SHA256 != keyDigest {
		t.Error("Redacted modified the original")
	}
}
