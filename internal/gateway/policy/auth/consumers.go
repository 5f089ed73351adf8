package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/tokencache"
)

// basicCacheTTL is how long a successful basic-auth check is remembered,
// so a client sending the same password on every request pays for bcrypt
// once. The cache belongs to one snapshot: a reload that changes a password
// starts from an empty cache.
const basicCacheTTL = 5 * time.Minute

// basicFailureTTL is how long a failed basic-auth check is remembered, so
// a client repeating a wrong password costs a hash, not a bcrypt run, and
// basicFailureCacheSize bounds those entries. Failures have a cache of
// their own, so a flood of wrong passwords cannot evict good ones.
const (
	basicFailureTTL       = 10 * time.Second
	basicFailureCacheSize = 4096
)

// dummyBcrypt is compared against when the user name is unknown, so an
// unknown user costs as much time as a wrong password.
var dummyBcrypt = []byte("$2a$10$ajHhcmTk.9S0js1lsVAhwe1fEI9jmDyY5ufvbllVoyAwy2y1Ctx7i")

// Store holds the consumers of one configuration: their API key digests
// and basic-auth credentials. It is immutable apart from its basic-auth
// cache and is rebuilt on every reload, so removed keys stop working with
// the reload.
type Store struct {
	// keys maps the first 8 bytes of a key's SHA-256 digest to the keys
	// sharing them; the full digest is then compared in constant time.
	keys   map[uint64][]storedKey
	users  map[string]storedUser
	basic  *tokencache.Cache[*exchange.Consumer]
	failed *tokencache.Cache[struct{}]
	gate   *Gate
}

type storedKey struct {
	sum      [sha256.Size]byte
	consumer *exchange.Consumer
}

type storedUser struct {
	hash     []byte
	consumer *exchange.Consumer
}

// NewStore builds the store of cs, whose API keys must be SHA-256 digests
// (the loader replaces plaintext keys by their digest). gate bounds its
// bcrypt comparisons; if nil, the store gets a gate of its own sized to
// GOMAXPROCS.
func NewStore(cs []config.Consumer, gate *Gate) (*Store, error) {
	if gate == nil {
		gate = NewGate(0, 0)
	}
	s := &Store{keys: map[uint64][]storedKey{}, users: map[string]storedUser{}, gate: gate,
		basic:  tokencache.New[*exchange.Consumer](1024, nil),
		failed: tokencache.New[struct{}](basicFailureCacheSize, nil)}
	for i := range cs {
		c := &cs[i]
		base := &exchange.Consumer{ID: c.ID, Scopes: c.Scopes, Roles: c.Roles}
		if len(c.Claims) > 0 {
			base.Claims = make(map[string][]string, len(c.Claims))
			for _, k := range slices.Sorted(maps.Keys(c.Claims)) {
				base.Claims[k] = []string{c.Claims[k]}
				base.Forward = append(base.Forward, exchange.Claim{Name: k, Value: c.Claims[k]})
			}
		}
		if len(c.APIKeys) > 0 {
			for j, k := range c.APIKeys {
				var sum [sha256.Size]byte
				if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
					return nil, fmt.Errorf("consumer %q: api_keys[%d]: not a SHA-256 digest", c.ID, j)
				} else {
					copy(sum[:], b)
				}
				// One consumer per key, so rate limits keyed by api_key can
				// tell a consumer's keys apart.
				kc := withMethod(base, exchange.MethodAPIKey)
				kc.KeyID = KeyID(sum)
				idx := binary.BigEndian.Uint64(sum[:8])
				s.keys[idx] = append(s.keys[idx], storedKey{sum: sum, consumer: kc})
			}
		}
		if b := c.Basic; b != nil {
			if _, dup := s.users[b.Username]; dup {
				return nil, fmt.Errorf("consumer %q: duplicate basic-auth user %q", c.ID, b.Username)
			}
			s.users[b.Username] = storedUser{hash: []byte(b.Bcrypt), consumer: withMethod(base, exchange.MethodBasic)}
		}
	}
	return s, nil
}

func withMethod(base *exchange.Consumer, method string) *exchange.Consumer {
	return &exchange.Consumer{ID: base.ID, Method: method, Scopes: base.Scopes, Roles: base.Roles, Claims: base.Claims, Forward: base.Forward}
}

// APIKey returns the consumer owning key, or nil. It hashes key and
// compares the full digest in constant time.
func (s *Store) APIKey(key string) *exchange.Consumer {
	sum := sha256.Sum256([]byte(key))
	var found *exchange.Consumer
	for _, k := range s.keys[binary.BigEndian.Uint64(sum[:8])] {
		if subtle.ConstantTimeCompare(k.sum[:], sum[:]) == 1 {
			found = k.consumer
		}
	}
	return found
}

// KeyID returns the identity recorded for the API key whose SHA-256
// digest is sum: a digest of the digest, so the identity can be kept in
// rate-limit stores and Redis without being usable to recover or test the
// key.
func KeyID(sum [sha256.Size]byte) string {
	id := sha256.Sum256(append([]byte("portico api key id\x00"), sum[:]...))
	return hex.EncodeToString(id[:12])
}

// Basic returns the consumer with user name user and password pass, or
// nil. Successful checks are remembered for a few minutes and failed ones
// for a few seconds, keyed by a digest of both, so a repeated credential
// costs a hash. Other checks wait for the gate; when it stays full, Basic
// returns ErrBusy without checking.
func (s *Store) Basic(ctx context.Context, user, pass string) (*exchange.Consumer, error) {
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	key := string(sum[:])
	if c, ok := s.basic.Get(key); ok {
		return c, nil
	}
	if _, ok := s.failed.Get(key); ok {
		return nil, nil
	}
	hash := dummyBcrypt
	u, known := s.users[user]
	if known {
		hash = u.hash
	}
	if !s.gate.acquire(ctx) {
		return nil, ErrBusy
	}
	// An unknown user is compared against a dummy hash, so it costs as much
	// as a wrong password.
	err := s.gate.compare(hash, pass)
	s.gate.release()
	if !known || err != nil {
		s.failed.Put(key, struct{}{}, time.Now().Add(basicFailureTTL))
		return nil, nil
	}
	s.basic.Put(key, u.consumer, time.Now().Add(basicCacheTTL))
	return u.consumer, nil
}
