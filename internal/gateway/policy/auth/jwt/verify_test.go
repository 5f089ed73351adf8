package jwt

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
)

func newVerifier(t testing.TB, opts Options) *Verifier {
	t.Helper()
	if opts.Issuer == "" {
		opts.Issuer = "https://idp.test/"
	}
	if opts.Audiences == nil {
		opts.Audiences = []string{"portico"}
	}
	if opts.Algorithms == nil {
		opts.Algorithms = []string{"RS256"}
	}
	if opts.Leeway == 0 {
		opts.Leeway = 30 * time.Second
	}
	v, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	testKeys()
	v := newVerifier(t, Options{
		Name:          "corp",
		Algorithms:    []string{"RS256", "PS256", "ES256", "EdDSA"},
		Keys:          []*Key{{KID: "r", Public: &rsaKey.PublicKey}, {KID: "e", Public: &ecKey.PublicKey}, {KID: "d", Public: edKey.Public()}},
		ForwardClaims: []string{"tenant", "missing"},
	})
	for _, tc := range []struct {
		name   string
		method gjwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", gjwt.SigningMethodRS256, rsaKey, "r"},
		{"PS256", gjwt.SigningMethodPS256, rsaKey, "r"},
		{"ES256", gjwt.SigningMethodES256, ecKey, "e"},
		{"EdDSA", gjwt.SigningMethodEdDSA, edKey, "d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), sign(t, tc.method, tc.key, tc.kid, goodClaims()))
			if err != nil {
				t.Fatal(err)
			}
			if c.ID != "alice" || c.Method != "jwt" || c.Issuer != "corp" ||
				strings.Join(c.Scopes, " ") != "orders:read orders:write" || strings.Join(c.Roles, ",") != "admin" {
				t.Errorf("consumer = %+v", c)
			}
			if len(c.Forward) != 1 || c.Forward[0] != struct{ Name, Value string }{"tenant", "acme"} {
				t.Errorf("forwarded claims = %+v", c.Forward)
			}
		})
	}
}

// TestVerifyAttacks is the table of tokens that must be refused.
func TestVerifyAttacks(t *testing.T) {
	t.Parallel()
	testKeys()
	jwks := newJWKSServer(t, jwkOf("k1", &rsaKey.PublicKey))
	v := newVerifier(t, Options{JWKS: NewJWKS(JWKSOptions{URL: jwks.URL}), MaxTokenBytes: 8 << 10})
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	with := func(edit func(gjwt.MapClaims)) gjwt.MapClaims {
		c := goodClaims()
		edit(c)
		return c
	}
	payload := `{"iss":"https://idp.test/","aud":"portico","sub":"alice","exp":` + fmt.Sprint(time.Now().Add(time.Hour).Unix()) + `}`
	signRaw := func(header, payload string) string {
		ss := b64url([]byte(header)) + "." + b64url([]byte(payload))
		sig, err := gjwt.SigningMethodRS256.Sign(ss, rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return ss + "." + b64url(sig)
	}
	good := sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", goodClaims())
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the verifier fetched a key from a URL named in a token header")
	}))
	defer attacker.Close()
	jkuTok := func(name string, value any) string {
		tok := gjwt.NewWithClaims(gjwt.SigningMethodRS256, goodClaims())
		tok.Header["kid"] = "attacker"
		tok.Header[name] = value
		s, _ := tok.SignedString(rsaKey2)
		return s
	}

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", rawToken(`{"alg":"none","typ":"JWT"}`, payload, ""), ErrMalformed},
		{"alg none with signature", rawToken(`{"alg":"none"}`, payload, "c2ln"), ErrInvalid},
		{"alg None", rawToken(`{"alg":"None"}`, payload, "c2ln"), ErrInvalid},
		{"alg NONE", rawToken(`{"alg":"NONE"}`, payload, "c2ln"), ErrInvalid},
		{"RS256 re-signed with HS256 using the public key", sign(t, gjwt.SigningMethodHS256, pubPEM, "k1", goodClaims()), ErrInvalid},
		{"HS256 with the DER public key", sign(t, gjwt.SigningMethodHS256, pubDER, "k1", goodClaims()), ErrInvalid},
		{"expired", sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", with(func(c gjwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), ErrExpired},
		{"not yet valid", sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", with(func(c gjwt.MapClaims) { c["nbf"] = time.Now().Add(time.Minute).Unix() })), ErrInvalid},
		{"missing exp", sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", with(func(c gjwt.MapClaims) { delete(c, "exp") })), ErrInvalid},
		{"wrong iss", sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", with(func(c gjwt.MapClaims) { c["iss"] = "https://evil.test/" })), ErrInvalid},
		{"wrong aud", sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", with(func(c gjwt.MapClaims) { c["aud"] = []any{"other"} })), ErrInvalid},
		{"missing sub", sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", with(func(c gjwt.MapClaims) { delete(c, "sub") })), ErrInvalid},
		{"bad signature, valid claims", sign(t, gjwt.SigningMethodRS256, rsaKey2, "k1", goodClaims()), ErrInvalid},
		{"tampered payload", strings.Join([]string{strings.Split(good, ".")[0], b64url([]byte(strings.Replace(payload, "alice", "admin", 1))), strings.Split(good, ".")[2]}, "."), ErrInvalid},
		{"100000 dots", strings.Repeat(".", 100000), ErrTooLong},
		{"1 MB segment", "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 1<<20) + ".sig", ErrTooLong},
		{"two dots, junk", "a.b.c", ErrMalformed},
		{"four segments", good + ".x", ErrMalformed},
		{"duplicate claim", signRaw(`{"alg":"RS256","kid":"k1"}`, strings.Replace(payload, `"sub":"alice"`, `"sub":"alice","sub":"admin"`, 1)), ErrMalformed},
		{"duplicate header member", signRaw(`{"alg":"RS256","kid":"k1","alg":"HS256"}`, payload), ErrMalformed},
		{"padded base64", good[:strings.IndexByte(good, '.')] + "=" + good[strings.IndexByte(good, '.'):], ErrMalformed},
		{"jku header", jkuTok("jku", attacker.URL), ErrUnknownKey},
		{"x5u header", jkuTok("x5u", attacker.URL), ErrUnknownKey},
		{"embedded jwk", jkuTok("jwk", jwkOf("attacker", &rsaKey2.PublicKey)), ErrUnknownKey},
		{"crit header", signRaw(`{"alg":"RS256","kid":"k1","crit":["b64"],"b64":false}`, payload), ErrInvalid},
		{"kid not a string", signRaw(`{"alg":"RS256","kid":7}`, payload), ErrInvalid},
		{"empty", "", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if err == nil || c != nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("the good token is refused: %v", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	testKeys()
	v := newVerifier(t, Options{Keys: []*Key{{Public: &rsaKey.PublicKey}}, Leeway: time.Minute})
	c := goodClaims()
	c["exp"] = time.Now().Add(-30 * time.Second).Unix()
	c["nbf"] = time.Now().Add(30 * time.Second).Unix()
	if _, err := v.Verify(context.Background(), sign(t, gjwt.SigningMethodRS256, rsaKey, "", c)); err != nil {
		t.Fatalf("a token within the leeway was refused: %v", err)
	}
}

func TestHS256(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("k", 32))
	v := newVerifier(t, Options{Algorithms: []string{"HS256"}, HMACSecret: secret})
	if _, err := v.Verify(context.Background(), sign(t, gjwt.SigningMethodHS256, secret, "", goodClaims())); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, gjwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", goodClaims())); !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := New(Options{Issuer: "i", Audiences: []string{"a"}, Algorithms: []string{"HS256", "RS256"}, HMACSecret: secret}); err == nil {
		t.Fatal("HS256 combined with RS256 was accepted")
	}
}

func TestCachedTokenCostsNoVerification(t *testing.T) {
	t.Parallel()
	testKeys()
	clk := newClock()
	v := newVerifier(t, Options{Keys: []*Key{{Public: &rsaKey.PublicKey}}, Now: clk.Now, Leeway: time.Second})
	c := goodClaims()
	c["exp"] = clk.Now().Add(time.Minute).Unix()
	tok := sign(t, gjwt.SigningMethodRS256, rsaKey, "", c)
	first, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if again, ok := v.Cached(tok); !ok || again != first {
		t.Fatal("a verified token is not cached")
	}
	clk.Add(2 * time.Minute)
	if _, ok := v.Cached(tok); ok {
		t.Fatal("an expired token is still cached")
	}
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired token: %v", err)
	}
}

// TestUnknownKIDFlood sends tokens with a thousand random key ids at once:
// the issuer's key set is fetched once at first use and at most once more.
func TestUnknownKIDFlood(t *testing.T) {
	t.Parallel()
	testKeys()
	jwks := newJWKSServer(t, jwkOf("k1", &rsaKey.PublicKey))
	v := newVerifier(t, Options{JWKS: NewJWKS(JWKSOptions{URL: jwks.URL, Cooldown: time.Minute})})
	if _, err := v.Verify(context.Background(), sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", goodClaims())); err != nil {
		t.Fatal(err)
	}
	toks := make([]string, 1000)
	for i := range toks {
		toks[i] = sign(t, gjwt.SigningMethodRS256, rsaKey2, fmt.Sprintf("random-%d", i), goodClaims())
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(toks); i += 50 {
				if _, err := v.Verify(context.Background(), toks[i]); err == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 0 {
		t.Fatalf("%d tokens with unknown keys were accepted", accepted.Load())
	}
	if hits := jwks.hits.Load(); hits > 2 {
		t.Fatalf("the key set was fetched %d times; want at most 2", hits)
	}
}

// TestJWKSRotation follows an issuer rotating its keys.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	testKeys()
	clk := newClock()
	srv := newJWKSServer(t, jwkOf("k1", &rsaKey.PublicKey))
	jwks := NewJWKS(JWKSOptions{URL: srv.URL, TTL: time.Minute, Cooldown: 10 * time.Second, Now: clk.Now})
	v := newVerifier(t, Options{JWKS: jwks, Now: clk.Now})
	ctx := context.Background()
	claims := func() gjwt.MapClaims {
		c := goodClaims()
		c["exp"] = clk.Now().Add(time.Hour).Unix()
		c["iat"] = clk.Now().UnixNano() // a distinct token each time
		return c
	}
	tok1 := sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", claims())
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatal(err)
	}

	// The issuer adds k2 and starts signing with it: the unknown kid
	// triggers a fetch (the cooldown has passed) and k2 is accepted.
	srv.set(jwkOf("k1", &rsaKey.PublicKey), jwkOf("k2", &rsaKey2.PublicKey))
	clk.Add(11 * time.Second)
	if _, err := v.Verify(ctx, sign(t, gjwt.SigningMethodRS256, rsaKey2, "k2", claims())); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatalf("old key still published: %v", err)
	}

	// The issuer removes k1. Until the key set expires, k1 is still
	// trusted; after it, the background fetch drops k1 and even the cached
	// token signed with it is refused.
	srv.set(jwkOf("k2", &rsaKey2.PublicKey))
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatalf("before the key set expires: %v", err)
	}
	clk.Add(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(ctx, tok1)
		if errors.Is(err, ErrUnknownKey) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token signed with a removed key is still accepted after the key set expired (err %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", claims())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a new token signed with the removed key: %v", err)
	}

	// The issuer goes down: the known keys keep working, fetches are
	// attempted once per cooldown at most.
	srv.down.Store(true)
	clk.Add(2 * time.Minute)
	hits := srv.hits.Load()
	for range 20 {
		if _, err := v.Verify(ctx, sign(t, gjwt.SigningMethodRS256, rsaKey2, "k2", claims())); err != nil {
			t.Fatalf("cached keys with the issuer down: %v", err)
		}
	}
	waitFetches := time.Now().Add(2 * time.Second)
	for srv.hits.Load() == hits && time.Now().Before(waitFetches) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.hits.Load() - hits; n != 1 {
		t.Fatalf("%d fetches while the issuer is down; want exactly 1 per cooldown", n)
	}
}

func TestColdStartWithIssuerDown(t *testing.T) {
	t.Parallel()
	testKeys()
	srv := newJWKSServer(t)
	srv.down.Store(true)
	v := newVerifier(t, Options{JWKS: NewJWKS(JWKSOptions{URL: srv.URL})})
	if _, err := v.Verify(context.Background(), sign(t, gjwt.SigningMethodRS256, rsaKey, "k1", goodClaims())); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
}

func TestFindWithoutKID(t *testing.T) {
	testKeys()
	a, b := &Key{KID: "a", Public: &rsaKey.PublicKey}, &Key{KID: "b", Public: &rsaKey2.PublicKey}
	if k := find([]*Key{a, b}, "", "RS256"); k != nil {
		t.Errorf("a token without kid matched one of two keys: %v", k.KID)
	}
	if k := find([]*Key{a}, "", "RS256"); k != a {
		t.Error("a token without kid did not match the only key")
	}
	if k := find([]*Key{a, b}, "b", "ES256"); k != nil {
		t.Error("an RSA key matched ES256")
	}
	if k := find([]*Key{{KID: "a", Alg: "PS256", Public: &rsaKey.PublicKey}}, "a", "RS256"); k != nil {
		t.Error("a key pinned to PS256 matched RS256")
	}
}

func BenchmarkVerifyCold(b *testing.B) {
	testKeys()
	v := newVerifier(b, Options{Keys: []*Key{{KID: "k1", Public: &rsaKey.PublicKey}}, CacheSize: 1})
	toks := make([]string, 64)
	for i := range toks {
		c := goodClaims()
		c["jti"] = fmt.Sprint(i)
		toks[i] = sign(b, gjwt.SigningMethodRS256, rsaKey, "k1", c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tok := toks[i%len(toks)]
		v.cache.Delete(tok)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	testKeys()
	v := newVerifier(b, Options{Keys: []*Key{{KID: "k1", Public: &rsaKey.PublicKey}}})
	tok := sign(b, gjwt.SigningMethodRS256, rsaKey, "k1", goodClaims())
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
