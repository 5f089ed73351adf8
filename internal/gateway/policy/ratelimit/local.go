package ratelimit

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// localShards is the number of independently locked parts of a
// LocalStore; keys are spread over them by hash.
const localShards = 128

// evictSample is how many entries a full shard looks at to choose the one
// to evict (the one whose bucket is closest to full again).
const evictSample = 8

// DefaultSweepInterval is how often a shard drops its idle keys.
const DefaultSweepInterval = 10 * time.Second

// LocalStore keeps rate-limit state in this process's memory, in sharded
// maps so concurrent requests for different keys rarely share a lock. A
// key whose bucket is full again (or whose quota period ended) holds
// nothing a new key would not, so it is dropped by a periodic sweep of its
// shard; the number of keys is also capped, and a full shard evicts the
// sampled key nearest to expiry. The zero value is not usable; call
// NewLocalStore.
type LocalStore struct {
	seed        maphash.Seed
	maxPerShard int
	sweepEvery  int64
	epoch       time.Time
	epochNano   int64
	// now returns the store's clock in Unix nanoseconds; it is monotonic.
	now    func() int64
	shards [localShards]localShard
}

type localShard struct {
	mu sync.Mutex
	// m holds pointers so that an update never assigns to the map: an
	// assignment to an existing string key replaces the stored key with the
	// caller's string, which may live in reused memory.
	m         map[string]*localEntry
	lastSweep int64
	_         [40]byte // keeps neighbouring shards' locks off one cache line
}

// localEntry is a key's state: for a rate, v is the TAT; for a quota, v is
// the count. The entry means nothing once exp has passed.
type localEntry struct {
	v, exp int64
}

// LocalOptions configure a LocalStore.
type LocalOptions struct {
	// MaxKeys bounds the keys held. Default 1,000,000.
	MaxKeys int
	// SweepInterval is how often each shard drops keys that are idle.
	// Default DefaultSweepInterval.
	SweepInterval time.Duration
	// Now, if set, replaces the clock (for tests); it returns Unix
	// nanoseconds and must not go backwards.
	Now func() int64
}

// NewLocalStore returns an empty store.
func NewLocalStore(o LocalOptions) *LocalStore {
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1_000_000
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	s := &LocalStore{
		seed:        maphash.MakeSeed(),
		maxPerShard: max(1, (o.MaxKeys+localShards-1)/localShards),
		sweepEvery:  int64(o.SweepInterval),
		epoch:       time.Now(),
	}
	s.epochNano = s.epoch.UnixNano()
	s.now = o.Now
	if s.now == nil {
		s.now = s.monotonic
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*localEntry)
	}
	return s
}

// monotonic is wall-clock Unix nanoseconds that never go backwards: the
// wall time at creation plus the monotonic time since.
func (s *LocalStore) monotonic() int64 { return s.epochNano + int64(time.Since(s.epoch)) }

func (s *LocalStore) shard(key string) *localShard {
	return &s.shards[maphash.String(s.seed, key)%localShards]
}

// Allow decides one request for key under l. The key is not retained
// unless it is new; callers may pass a string backed by reused memory.
func (s *LocalStore) Allow(key string, l Limit) Result {
	now := s.now()
	sh := s.shard(key)
	sh.mu.Lock()
	e := sh.m[key]
	var stored int64
	if e != nil {
		stored = e.v
	}
	res, tat := gcra(l, stored, now)
	if res.Allowed {
		if e != nil {
			e.v, e.exp = tat, tat
		} else {
			sh.insert(s, strings.Clone(key), &localEntry{tat, tat}, now)
		}
	}
	sh.mu.Unlock()
	return res
}

// Quota counts one request for key against limit requests in the period
// that ends at end (Unix nanoseconds).
func (s *LocalStore) Quota(key string, limit int64, end int64) Result {
	now := s.now()
	sh := s.shard(key)
	sh.mu.Lock()
	e := sh.m[key]
	if e != nil && e.exp <= now {
		e.v, e.exp = 0, end
	}
	res := Result{Limit: limit, ResetAfter: time.Duration(end - now)}
	var count int64
	if e != nil {
		count = e.v
	}
	if count < limit {
		res.Allowed = true
		res.Remaining = limit - count - 1
		if e != nil {
			e.v++
		} else {
			sh.insert(s, strings.Clone(key), &localEntry{1, end}, now)
		}
	} else {
		res.RetryAfter = res.ResetAfter
	}
	sh.mu.Unlock()
	return res
}

// insert adds a new key, sweeping or evicting first if needed. sh.mu is
// held.
func (sh *localShard) insert(s *LocalStore, key string, e *localEntry, now int64) {
	if now-sh.lastSweep >= s.sweepEvery {
		sh.sweep(now)
	}
	if len(sh.m) >= s.maxPerShard {
		sh.evict(now)
	}
	sh.m[key] = e
}

func (sh *localShard) sweep(now int64) {
	sh.lastSweep = now
	for k, e := range sh.m {
		if e.exp <= now {
			delete(sh.m, k)
		}
	}
}

// evict drops one entry: an expired one if the sample finds it, otherwise
// the sampled entry nearest to expiry, whose state matters least.
func (sh *localShard) evict(now int64) {
	var victim string
	var best int64
	n := 0
	for k, e := range sh.m {
		if e.exp <= now {
			victim = k
			break
		}
		if n == 0 || e.exp < best {
			victim, best = k, e.exp
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(sh.m, victim)
}

// Sweep drops every idle key now, in every shard.
func (s *LocalStore) Sweep() {
	now := s.now()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.sweep(now)
		sh.mu.Unlock()
	}
}

// Len returns the number of keys held.
func (s *LocalStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// localBackend adapts a LocalStore to the backend interface.
type localBackend struct{ s *LocalStore }

func (b localBackend) allow(_ context.Context, key string, l Limit) (Result, error) {
	return b.s.Allow(key, l), nil
}

func (b localBackend) quota(_ context.Context, key string, limit int64, w window) (Result, error) {
	return b.s.Quota(key+"|"+w.id, limit, w.end.UnixNano()), nil
}
