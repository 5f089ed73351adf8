package bench

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestBenchToken(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("k", 64))
	now := time.Unix(1_800_000_000, 0)
	tok, err := BenchToken(secret, "https://issuer.example", "bench", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		t.Fatalf("signature does not verify: %v", err)
	}
	var header map[string]string
	var claims map[string]any
	decode := func(s string, v any) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	decode(parts[0], &header)
	decode(parts[1], &claims)
	if header["alg"] != "HS256" {
		t.Errorf("alg = %q", header["alg"])
	}
	if claims["iss"] != "https://issuer.example" || claims["aud"] != "bench" || claims["sub"] != "portico-bench" ||
		claims["exp"] != float64(now.Add(time.Hour).Unix()) {
		t.Errorf("claims = %v", claims)
	}
	if _, err := BenchToken(secret[:31], "i", "a", now, time.Hour); err == nil {
		t.Error("a 31-byte secret was accepted")
	}
}
