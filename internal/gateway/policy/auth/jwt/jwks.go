package jwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrKeysUnavailable means the issuer's key set has never been fetched
// successfully, so no token of the issuer can be verified yet.
var ErrKeysUnavailable = errors.New("jwt: the issuer's keys are unavailable")

// JWKSOptions configure a JWKS.
type JWKSOptions struct {
	// URL is the key set's address. Required.
	URL string
	// TTL is how long a fetched key set is used before it is fetched again
	// (in the background; requests keep using the old keys meanwhile).
	// Default 5m.
	TTL time.Duration
	// Cooldown is the least time between two fetches, whether they
	// succeeded or not and whatever triggered them. Default 30s.
	Cooldown time.Duration
	// Timeout bounds one fetch. Default 5s.
	Timeout time.Duration
	// Client fetches the key set. If nil, a client without redirects.
	Client *http.Client
	// Logger receives fetch failures. If nil, they are discarded.
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// JWKS is an issuer's JSON Web Key Set, fetched from a URL and cached.
//
// Keys are fetched on first use. A token naming an unknown key id triggers
// a fetch, at most one per cooldown however many such tokens arrive. A key
// set older than its TTL is fetched again in the background. When a fetch
// fails, the keys already known stay in use. A JWKS is safe for concurrent
// use and is meant to outlive configuration reloads.
type JWKS struct {
	opts JWKSOptions
	set  atomic.Pointer[keySet]

	mu          sync.Mutex // serializes fetches; guards lastAttempt
	lastAttempt time.Time
	background  atomic.Bool
	fetches     atomic.Int64
}

type keySet struct {
	keys    []*Key
	fetched time.Time
}

// NewJWKS returns a key set cache for opts.URL. It fetches nothing yet.
func NewJWKS(opts JWKSOptions) *JWKS {
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Minute
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &JWKS{opts: opts}
}

// Fetches returns how many fetches were attempted.
func (j *JWKS) Fetches() int64 { return j.fetches.Load() }

// keys returns the current keys, fetching them first if there are none,
// and starting a background fetch when they are older than the TTL.
func (j *JWKS) keys(ctx context.Context) ([]*Key, error) {
	ks := j.set.Load()
	if ks == nil {
		j.refresh(ctx, nil)
		if ks = j.set.Load(); ks == nil {
			return nil, ErrKeysUnavailable
		}
		return ks.keys, nil
	}
	j.revalidate(ks)
	return ks.keys, nil
}

// revalidate starts a background fetch when ks is older than the TTL and
// no other background fetch runs.
func (j *JWKS) revalidate(ks *keySet) {
	if j.opts.Now().Sub(ks.fetched) >= j.opts.TTL && j.background.CompareAndSwap(false, true) {
		go func() {
			defer j.background.Store(false)
			j.refresh(context.Background(), ks)
		}()
	}
}

// refreshUnknown fetches the key set again because a token named a key id
// it does not hold, unless the cooldown forbids it. seen is the key set the
// caller looked in; it reports whether a newer one is now available.
func (j *JWKS) refreshUnknown(ctx context.Context, seen []*Key) bool {
	j.refresh(ctx, seen)
	ks := j.set.Load()
	return ks != nil && !sameSlice(ks.keys, seen)
}

// refresh fetches the key set unless another caller already replaced the
// one the caller saw (seen) or the cooldown has not passed.
func (j *JWKS) refresh(ctx context.Context, seen any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	cur := j.set.Load()
	switch s := seen.(type) {
	case []*Key:
		if cur != nil && !sameSlice(cur.keys, s) {
			return
		}
	case *keySet:
		if cur != s {
			return
		}
	}
	now := j.opts.Now()
	if !j.lastAttempt.IsZero() && now.Sub(j.lastAttempt) < j.opts.Cooldown {
		return
	}
	j.lastAttempt = now
	j.fetches.Add(1)
	keys, err := j.fetch(ctx)
	if err != nil {
		j.opts.Logger.Warn("JWKS fetch failed; keeping the keys already known", "url", j.opts.URL, "err", err)
		return
	}
	if cur != nil {
		keys = reuse(keys, cur.keys)
	}
	j.set.Store(&keySet{keys: keys, fetched: now})
}

func (j *JWKS) fetch(ctx context.Context) ([]*Key, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.opts.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	return ParseJWKS(data)
}

// reuse keeps the *Key values of unchanged keys, so tokens verified with
// them stay cached across fetches.
func reuse(fresh, old []*Key) []*Key {
	for i, k := range fresh {
		for _, o := range old {
			if k.equal(o) {
				fresh[i] = o
				break
			}
		}
	}
	return fresh
}

// has reports whether k is still in the current key set. Like keys, it
// starts a background fetch when the set is older than the TTL, so tokens
// answered from the cache also notice a key removed by the issuer.
func (j *JWKS) has(k *Key) bool {
	ks := j.set.Load()
	if ks == nil {
		return false
	}
	j.revalidate(ks)
	for _, c := range ks.keys {
		if c == k {
			return true
		}
	}
	return false
}

func sameSlice(a, b []*Key) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
