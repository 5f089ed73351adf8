package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/tokencache"
)

// basicCacheTTL is how long a successful basic-auth check is remembered,
// so a client sending the same password on every request pays for bcrypt
// once. The cache belongs to one snapshot: a reload that changes a password
// starts from an empty cache.
const basicCacheTTL = 5 * time.Minute

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
	keys  map[uint64][]storedKey
	users map[string]storedUser
	basic *tokencache.Cache[*exchange.Consumer]
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
// (the loader replaces plaintext keys by their digest).
func NewStore(cs []config.Consumer) (*Store, error) {
	s := &Store{keys: map[uint64][]storedKey{}, users: map[string]storedUser{}, basic: tokencache.New[*exchange.Consumer](1024, nil)}
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
			kc := withMethod(base, exchange.MethodAPIKey)
			for j, k := range c.APIKeys {
				var sum [sha256.Size]byte
				if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
					return nil, fmt.Errorf("consumer %q: api_keys[%d]: not a SHA-256 digest", c.ID, j)
				} else {
					copy(sum[:], b)
				}
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

// Basic returns the consumer with user name user and password pass, or
// nil. Successful checks are remembered for a few minutes, keyed by a
// digest of both.
func (s *Store) Basic(user, pass string) *exchange.Consumer {
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	key := string(sum[:])
	if c, ok := s.basic.Get(key); ok {
		return c
	}
	u, ok := s.users[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyBcrypt, []byte(pass))
		return nil
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(pass)) != nil {
		return nil
	}
	s.basic.Put(key, u.consumer, time.Now().Add(basicCacheTTL))
	return u.consumer
}
