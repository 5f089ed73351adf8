package jwt

import (
	"context"
	"testing"
)

// FuzzVerify feeds arbitrary tokens to a verifier: it must refuse them
// without panicking (none can carry a valid signature).
func FuzzVerify(f *testing.F) {
	testKeys()
	f.Add(rawToken(`{"alg":"none"}`, `{"sub":"a"}`, ""))
	f.Add(rawToken(`{"alg":"RS256","kid":"k1","kid":"k2"}`, `{"sub":"a","exp":1e99}`, "c2ln"))
	f.Add(rawToken(`{"alg":"RS256"}`, `{"a":[[[[[[[[{"b":{}}]]]]]]]]}`, "c2ln"))
	f.Add("..")
	v := newVerifier(f, Options{Keys: []*Key{{Public: &rsaKey.PublicKey}}})
	f.Fuzz(func(t *testing.T, tok string) {
		if c, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatalf("accepted %q as %+v", tok, c)
		}
		_ = PeekIssuer(tok)
	})
}

// FuzzParseJWKS checks that any key set parses or fails cleanly, and that
// every key returned is usable for some algorithm.
func FuzzParseJWKS(f *testing.F) {
	testKeys()
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			ok := false
			for _, alg := range []string{"RS256", "ES256", "ES384", "EdDSA"} {
				ok = ok || (&Key{Public: k.Public}).fits(alg)
			}
			if !ok {
				t.Fatalf("key %+v fits no algorithm", k)
			}
		}
	})
}
