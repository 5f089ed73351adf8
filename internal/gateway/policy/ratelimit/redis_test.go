package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// redisAddr is the Redis server the distributed tests use.
const redisAddr = "127.0.0.1:6379"

var prefixSeq atomic.Int64

// testRedis returns a store on the machine's Redis with a key prefix of its
// own, or skips the test when Redis is absent (failing instead when
// PORTICO_REQUIRE_SERVICES=1).
func testRedis(t testing.TB, o RedisOptions) *RedisStore {
	t.Helper()
	c, err := net.DialTimeout("tcp", redisAddr, time.Second)
	if err != nil {
		if os.Getenv("PORTICO_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis is required (PORTICO_REQUIRE_SERVICES=1) but %s is not reachable: %v", redisAddr, err)
		}
		t.Skipf("Redis is not running on %s (start it with .ci/run or redis-server): %v", redisAddr, err)
	}
	c.Close()
	o.Address = redisAddr
	o.KeyPrefix = fmt.Sprintf("portico-test:%d:%d:%s:", os.Getpid(), prefixSeq.Add(1), time.Now().Format("150405.000"))
	s, err := NewRedisStore(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if keys, err := s.client.Keys(ctx, o.KeyPrefix+"*").Result(); err == nil && len(keys) > 0 {
			s.client.Del(ctx, keys...)
		}
		s.Close()
	})
	return s
}

func TestRedisAccuracyUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := testRedis(t, RedisOptions{Timeout: 2 * time.Second, PoolSize: 64})
	l := Limit{Rate: 100, Period: time.Hour}
	ctx := context.Background()
	got := countAllowed(300, func() bool {
		res, err := s.Allow(ctx, "k", l)
		if err != nil {
			t.Error(err)
		}
		return res.Allowed
	})
	if got != 100 {
		t.Errorf("%d of 300 concurrent requests passed a Redis limit of 100", got)
	}
	res, err := s.Allow(ctx, "k", l)
	if err != nil || res.Allowed || res.RetryAfter < 35*time.Second || res.RetryAfter > 36*time.Second {
		t.Errorf("after the burst: %+v, %v; want refused for about 36s", res, err)
	}
}

func TestRedisMatchesLocal(t *testing.T) {
	t.Parallel()
	s := testRedis(t, RedisOptions{})
	l := Limit{Rate: 5, Period: time.Minute, Burst: 3}
	ctx := context.Background()
	for i, want := range []struct {
		allowed   bool
		remaining int64
	}{{true, 2}, {true, 1}, {true, 0}, {false, 0}} {
		res, err := s.Allow(ctx, "m", l)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed != want.allowed || res.Remaining != want.remaining || res.Limit != 3 {
			t.Errorf("request %d: %+v, want allowed=%v remaining=%d", i, res, want.allowed, want.remaining)
		}
	}
	ttl, err := s.client.PTTL(ctx, s.prefix+"rl:m").Result()
	if err != nil || ttl <= 0 || ttl > 37*time.Second {
		t.Errorf("key TTL = %s, %v; want the time until the bucket is full (36s)", ttl, err)
	}
}

func TestRedisQuota(t *testing.T) {
	t.Parallel()
	s := testRedis(t, RedisOptions{})
	ctx := context.Background()
	w := windowAt(Day, time.Now())
	for i := range 3 {
		res, err := s.Quota(ctx, "alice", 3, w)
		if err != nil || !res.Allowed || res.Remaining != int64(2-i) {
			t.Fatalf("request %d: %+v, %v", i, res, err)
		}
	}
	res, err := s.Quota(ctx, "alice", 3, w)
	if err != nil || res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > 24*time.Hour {
		t.Errorf("fourth request: %+v, %v; want refused until the day ends", res, err)
	}
	ttl, _ := s.client.TTL(ctx, s.prefix+"q:alice|"+w.id).Result()
	if ttl <= 0 || ttl > 24*time.Hour+2*time.Minute {
		t.Errorf("quota counter TTL = %s, want until the end of the day", ttl)
	}
	next := windowAt(Day, w.end)
	if res, err := s.Quota(ctx, "alice", 3, next); err != nil || !res.Allowed {
		t.Errorf("next day: %+v, %v", res, err)
	}
}

// TestRedisBreaker checks that an unreachable Redis costs a few failed
// calls, after which calls fail at once, and that a probe after the
// cooldown is let through.
func TestRedisBreaker(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var opened, closed atomic.Int32
	s, err := NewRedisStore(RedisOptions{Address: addr, Timeout: 50 * time.Millisecond, BreakerCooldown: 200 * time.Millisecond,
		OnBreaker: func(open bool) {
			if open {
				opened.Add(1)
			} else {
				closed.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	l := Limit{Rate: 1, Period: time.Second}
	for range 3 {
		if _, err := s.Allow(ctx, "k", l); !errors.Is(err, ErrUnavailable) || errors.Is(err, errBreakerOpen) {
			t.Fatalf("call to a dead Redis: %v", err)
		}
	}
	if !s.BreakerOpen() || opened.Load() != 1 {
		t.Fatalf("breaker open = %v after 3 failures (opened %d times)", s.BreakerOpen(), opened.Load())
	}
	start := time.Now()
	for range 1000 {
		if _, err := s.Allow(ctx, "k", l); !errors.Is(err, errBreakerOpen) {
			t.Fatalf("call with the breaker open: %v", err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("1000 calls with the breaker open took %s", d)
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := s.Allow(ctx, "k", l); errors.Is(err, errBreakerOpen) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("probe after the cooldown: %v, want a real attempt", err)
	}
	if !s.BreakerOpen() || closed.Load() != 0 {
		t.Error("a failed probe closed the breaker")
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	s := testRedis(b, RedisOptions{})
	l := Limit{Rate: 1 << 40, Period: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Allow(ctx, "bench", l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisAllowParallel(b *testing.B) {
	s := testRedis(b, RedisOptions{PoolSize: 32})
	l := Limit{Rate: 1 << 40, Period: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Allow(ctx, "bench", l); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
