// Package tokencache remembers verified credentials until they expire, so a
// token presented again costs one hash and one map lookup instead of a
// signature check or a network call.
//
// The cache is bounded: it holds at most the configured number of entries,
// spread over shards that each evict an expired entry, or else an arbitrary
// one, when full. It stores the credential itself next to the value and
// compares it on every hit, so a hash collision can never hand one
// caller's identity to another.
package tokencache

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

const shardCount = 16

// Cache maps credentials to values of type V until an expiry time. It is
// safe for concurrent use. The zero value is not usable; call New.
type Cache[V any] struct {
	seed     maphash.Seed
	perShard int
	now      func() time.Time
	shards   [shardCount]shard[V]
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[uint64]entry[V]
}

type entry[V any] struct {
	token   string
	value   V
	expires int64 // unix nanoseconds
}

// New returns a cache holding at most size entries (at least one per
// shard). now is the clock; if nil, time.Now.
func New[V any](size int, now func() time.Time) *Cache[V] {
	if now == nil {
		now = time.Now
	}
	per := max(1, (size+shardCount-1)/shardCount)
	c := &Cache[V]{seed: maphash.MakeSeed(), perShard: per, now: now}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]entry[V], min(per, 1024))
	}
	return c
}

// Get returns the value remembered for token, if it has not expired.
func (c *Cache[V]) Get(token string) (V, bool) {
	h := maphash.String(c.seed, token)
	s := &c.shards[h%shardCount]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.token != token || c.now().UnixNano() >= e.expires {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put remembers value for token until expires. An expiry in the past is
// ignored.
func (c *Cache[V]) Put(token string, value V, expires time.Time) {
	now := c.now().UnixNano()
	exp := expires.UnixNano()
	if exp <= now {
		return
	}
	h := maphash.String(c.seed, token)
	s := &c.shards[h%shardCount]
	e := entry[V]{token: strings.Clone(token), value: value, expires: exp}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[h]; !ok && len(s.m) >= c.perShard {
		s.evict(now)
	}
	s.m[h] = e
}

// Delete forgets token.
func (c *Cache[V]) Delete(token string) {
	h := maphash.String(c.seed, token)
	s := &c.shards[h%shardCount]
	s.mu.Lock()
	if e, ok := s.m[h]; ok && e.token == token {
		delete(s.m, h)
	}
	s.mu.Unlock()
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// evict removes one entry: the first expired one among a few visited, or
// else the first visited. Map iteration starts at a random place, so this
// is a random eviction. The caller holds s.mu.
func (s *shard[V]) evict(now int64) {
	const visits = 8
	var victim uint64
	n := 0
	for h, e := range s.m {
		if e.expires <= now {
			victim = h
			break
		}
		if n == 0 {
			victim = h
		}
		if n++; n == visits {
			break
		}
	}
	delete(s.m, victim)
}
