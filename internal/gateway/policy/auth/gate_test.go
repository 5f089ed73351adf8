package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// TestBasicFailuresAreRemembered: a repeated wrong password (or unknown
// user) costs a hash, not a bcrypt run, and does not evict good entries.
func TestBasicFailuresAreRemembered(t *testing.T) {
	t.Parallel()
	gate := NewGate(1, 0)
	s, err := NewStore(testAuthConfig().Consumers, gate)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		if c, err := s.Basic(ctx, "bob", "wrong"); c != nil || err != nil {
			t.Fatalf("wrong password: %v %v", c, err)
		}
		if c, err := s.Basic(ctx, "nobody", "x"); c != nil || err != nil {
			t.Fatalf("unknown user: %v %v", c, err)
		}
	}
	if n := gate.Comparisons(); n != 2 {
		t.Errorf("10 failed checks of 2 distinct credentials ran bcrypt %d times, want 2", n)
	}
	for range 3 {
		if c, err := s.Basic(ctx, "bob", "s3cret-pass"); c == nil || err != nil || c.ID != "bob" {
			t.Fatalf("good password: %v %v", c, err)
		}
	}
	if n := gate.Comparisons(); n != 3 {
		t.Errorf("bcrypt ran %d times, want 3", n)
	}
}

// TestBasicGateBoundsBcrypt: with every slot taken, a basic-auth check
// waits briefly and is then refused with 503 and Retry-After instead of
// running bcrypt.
func TestBasicGateBoundsBcrypt(t *testing.T) {
	t.Parallel()
	gate := NewGate(2, 20*time.Millisecond)
	reg := NewRegistry(nil)
	reg.gate = gate
	h, up := newHandler(t, reg, testAuthConfig(), &config.RouteAuth{Basic: &config.RouteBasic{}})
	for range 2 {
		if !gate.acquire(context.Background()) {
			t.Fatal("empty gate refused")
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth("bob", "s3cret-pass")
	res := do(h, r)
	if res.code != http.StatusServiceUnavailable || res.rec.Header().Get("Retry-After") != "1" ||
		res.rec.Header().Get("Content-Type") != "application/problem+json" || up.hits.Load() != 0 {
		t.Fatalf("full gate: %d %v, upstream hits %d", res.code, res.rec.Header(), up.hits.Load())
	}
	if n := gate.Comparisons(); n != 0 {
		t.Errorf("bcrypt ran %d times with a full gate", n)
	}
	gate.release()
	if res := do(h, r); res.code != http.StatusNoContent {
		t.Fatalf("with a free slot: %d", res.code)
	}
	gate.release()
}

// TestAPIKeyIdentity: each key gets its own stable identity, which is not
// its digest.
func TestAPIKeyIdentity(t *testing.T) {
	t.Parallel()
	cfg := testAuthConfig()
	cfg.Consumers[0].APIKeys = append(cfg.Consumers[0].APIKeys, config.APIKey{SHA256: digest("alice-second-key-0123")})
	s, err := NewStore(cfg.Consumers, nil)
	if err != nil {
		t.Fatal(err)
	}
	a1, a2, b := s.APIKey(aliceKey), s.APIKey("alice-second-key-0123"), s.APIKey(bobKey)
	if a1 == nil || a2 == nil || b == nil || a1.ID != "alice" || a2.ID != "alice" {
		t.Fatal("keys not found")
	}
	if a1.KeyID == "" || a1.KeyID == a2.KeyID || a1.KeyID == b.KeyID {
		t.Errorf("key ids %q %q %q are not distinct", a1.KeyID, a2.KeyID, b.KeyID)
	}
	s2, _ := NewStore(cfg.Consumers, nil)
	if s2.APIKey(aliceKey).KeyID != a1.KeyID {
		t.Error("a key's identity changed when the store was rebuilt")
	}
	if a1.KeyID == digest(aliceKey) || len(a1.KeyID) >= len(digest(aliceKey)) {
		t.Errorf("key id %q is the digest", a1.KeyID)
	}
}

// BenchmarkBasicRepeatedFailure: a repeated wrong password costs a hash
// and a cache lookup, not a bcrypt comparison.
func BenchmarkBasicRepeatedFailure(b *testing.B) {
	s, err := NewStore(testAuthConfig().Consumers, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	_, _ = s.Basic(ctx, "bob", "wrong")
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := s.Basic(ctx, "bob", "wrong"); c != nil {
			b.Fatal("accepted")
		}
	}
}
