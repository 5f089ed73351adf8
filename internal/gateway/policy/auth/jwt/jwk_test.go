package jwt

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	testKeys()
	set := map[string]any{"keys": []any{
		jwkOf("r", &rsaKey.PublicKey), jwkOf("e", &ecKey.PublicKey), jwkOf("d", edKey.Public()),
		map[string]any{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]any{"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
	}}
	data, _ := json.Marshal(set)
	keys, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KID)
	}
	if got := strings.Join(kids, ","); got != "r,e,d" {
		t.Fatalf("kept keys %s, want r,e,d (symmetric, encryption and unknown-curve keys skipped)", got)
	}
	for _, bad := range []string{`[]`, `{"keys":[]}`, `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AA"}]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS(%s) succeeded", bad)
		}
	}
}

func TestParsePEM(t *testing.T) {
	t.Parallel()
	testKeys()
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if _, err := ParsePEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if _, err := ParsePEM(priv); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("a private key was accepted: %v", err)
	}
	if _, err := ParsePEM([]byte("junk")); err == nil {
		t.Fatal("junk was accepted")
	}
}
