package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable is returned (wrapped) by RedisStore when Redis could not
// answer: it is unreachable, too slow, or its circuit breaker is open.
var ErrUnavailable = errors.New("rate-limit store unavailable")

// errBreakerOpen is the cause of ErrUnavailable while the breaker is open.
var errBreakerOpen = errors.New("circuit breaker open after recent failures")

// gcraScript runs GCRA on the Redis server's clock, in microseconds, so
// every replica sees the same time and the check and update are atomic.
// KEYS[1] holds the TAT; ARGV are the emission interval and the burst
// tolerance in microseconds. It returns {allowed, reset_after_us,
// retry_after_us}. The key expires when its bucket is full again.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new = tat + interval
local allow_at = new - tau
if now < allow_at then
  return {0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return {1, new - now, 0}
`)

// quotaScript counts one request against a calendar quota. KEYS[1] is the
// period's counter; ARGV are the limit and the period's end as Unix
// seconds. A refused request is not counted. It returns {allowed, count}.
var quotaScript = redis.NewScript(`
local limit = tonumber(ARGV[1])
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c >= limit then return {0, c} end
c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return {1, c}
`)

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	// Address is host:port of the Redis server. Required.
	Address string
	// Username and Password authenticate; both may be empty.
	Username, Password string
	// DB is the database number.
	DB int
	// KeyPrefix starts every key. Default "portico:".
	KeyPrefix string
	// Timeout bounds dialing, each command and the wait for a pooled
	// connection. Default 100ms.
	Timeout time.Duration
	// PoolSize is the number of connections; 0 means go-redis's default
	// (10 per CPU).
	PoolSize int
	// BreakerCooldown is how long calls fail at once after the breaker
	// opens, before one probe is let through. Default 2s.
	BreakerCooldown time.Duration
	// BreakerThreshold is the number of consecutive failures that open the
	// breaker. Default 3.
	BreakerThreshold int
	// OnBreaker, if set, is called with true when the breaker opens and
	// with false when it closes again.
	OnBreaker func(open bool)
}

// RedisStore keeps rate-limit state in Redis, shared by every gateway
// replica that points at the same server and key prefix. Each check is one
// round trip running an atomic Lua script. Calls are bounded by a short
// timeout and guarded by a circuit breaker, so a dead Redis costs at most a
// few timeouts, after which checks fail at once with ErrUnavailable until a
// probe succeeds.
type RedisStore struct {
	client  *redis.Client
	prefix  string
	breaker breaker
}

// NewRedisStore returns a store for the server in o. It does not connect
// until the first check.
func NewRedisStore(o RedisOptions) (*RedisStore, error) {
	if o.Address == "" {
		return nil, errors.New("redis store: address is required")
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "portico:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 2 * time.Second
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 3
	}
	client := redis.NewClient(&redis.Options{
		Addr:         o.Address,
		Username:     o.Username,
		Password:     o.Password,
		DB:           o.DB,
		DialTimeout:  o.Timeout,
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		PoolTimeout:  o.Timeout,
		PoolSize:     o.PoolSize,
		// Retries would multiply the time a dead server costs each request;
		// the breaker decides when to try again instead.
		MaxRetries:         -1,
		DialerRetries:      1,
		DialerRetryTimeout: time.Millisecond,
		DisableIdentity:    true,
		// Maintenance notifications are for managed clusters; the
		// handshake would only add a round trip to each new connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	return &RedisStore{
		client: client,
		prefix: o.KeyPrefix,
		breaker: breaker{
			cooldown:  int64(o.BreakerCooldown),
			threshold: int32(o.BreakerThreshold),
			onChange:  o.OnBreaker,
		},
	}, nil
}

// Close closes the connections to Redis.
func (s *RedisStore) Close() error { return s.client.Close() }

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// BreakerOpen reports whether checks currently fail without trying Redis.
func (s *RedisStore) BreakerOpen() bool { return s.breaker.openUntil.Load() != 0 }

// Allow decides one request for key under l on the Redis server's clock.
// Sub-microsecond parts of the emission interval are dropped.
func (s *RedisStore) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	iv := max(1, l.interval()/1000)
	tau := l.tolerance() / 1000
	vals, err := s.run(ctx, gcraScript, s.prefix+"rl:"+key, iv, tau)
	if err != nil {
		return Result{}, err
	}
	res := Result{Allowed: vals[0] == 1, Limit: l.burst(), ResetAfter: time.Duration(vals[1]) * time.Microsecond,
		RetryAfter: time.Duration(vals[2]) * time.Microsecond}
	if res.Allowed {
		res.Remaining = max(0, (tau-vals[1])/iv)
	}
	return res, nil
}

// Quota counts one request for key against limit requests in the calendar
// period w.
func (s *RedisStore) Quota(ctx context.Context, key string, limit int64, w window) (Result, error) {
	vals, err := s.run(ctx, quotaScript, s.prefix+"q:"+key+"|"+w.id, limit, w.end.Unix()+60)
	if err != nil {
		return Result{}, err
	}
	res := Result{Allowed: vals[0] == 1, Limit: limit, Remaining: max(0, limit-vals[1]), ResetAfter: time.Until(w.end)}
	if !res.Allowed {
		res.RetryAfter = res.ResetAfter
	}
	return res, nil
}

func (s *RedisStore) run(ctx context.Context, script *redis.Script, key string, args ...any) ([]int64, error) {
	probe, ok := s.breaker.allow(time.Now().UnixNano())
	if !ok {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, errBreakerOpen)
	}
	vals, err := script.Run(ctx, s.client, []string{key}, args...).Int64Slice()
	if err == nil && len(vals) < 2 {
		err = fmt.Errorf("unexpected script reply %v", vals)
	}
	if err != nil {
		s.breaker.failure(time.Now().UnixNano(), probe)
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.breaker.success(probe)
	if len(vals) == 2 {
		vals = append(vals, 0)
	}
	return vals, nil
}

// breaker is a circuit breaker over the Redis calls: threshold consecutive
// failures open it for cooldown; then one probe call is let through, and
// its outcome closes the breaker or opens it again.
type breaker struct {
	cooldown  int64
	threshold int32
	onChange  func(open bool)

	fails     atomic.Int32
	openUntil atomic.Int64 // Unix nanoseconds; 0 while closed
	probing   atomic.Bool
}

// allow reports whether a call may go to Redis and whether it is the probe.
func (b *breaker) allow(now int64) (probe, ok bool) {
	until := b.openUntil.Load()
	switch {
	case until == 0:
		return false, true
	case now < until:
		return false, false
	case b.probing.CompareAndSwap(false, true):
		return true, true
	}
	return false, false
}

func (b *breaker) success(probe bool) {
	b.fails.Store(0)
	if b.openUntil.Load() != 0 && b.openUntil.Swap(0) != 0 && b.onChange != nil {
		b.onChange(false)
	}
	if probe {
		b.probing.Store(false)
	}
}

func (b *breaker) failure(now int64, probe bool) {
	if probe {
		b.openUntil.Store(now + b.cooldown)
		b.probing.Store(false)
		return
	}
	if b.fails.Add(1) >= b.threshold && b.openUntil.CompareAndSwap(0, now+b.cooldown) && b.onChange != nil {
		b.onChange(true)
	}
}

// redisBackend adapts a RedisStore to the backend interface.
type redisBackend struct{ s *RedisStore }

func (b redisBackend) allow(ctx context.Context, key string, l Limit) (Result, error) {
	return b.s.Allow(ctx, key, l)
}

func (b redisBackend) quota(ctx context.Context, key string, limit int64, w window) (Result, error) {
	return b.s.Quota(ctx, key, limit, w)
}

// formatSeconds renders d as whole seconds, rounded up, for headers.
func formatSeconds(d time.Duration) string {
	return strconv.FormatInt(ceilSeconds(d), 10)
}
