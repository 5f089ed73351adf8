package ratelimit

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable store clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64              { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestLocalAccuracyUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := NewLocalStore(LocalOptions{})
	l := Limit{Rate: 100, Period: time.Hour}
	if got := countAllowed(300, func() bool { return s.Allow("k", l).Allowed }); got != 100 {
		t.Errorf("%d of 300 concurrent requests passed a limit of 100", got)
	}
}

func TestLocalKeysAreIndependent(t *testing.T) {
	t.Parallel()
	s := NewLocalStore(LocalOptions{})
	l := Limit{Rate: 1, Period: time.Hour}
	if !s.Allow("a", l).Allowed || !s.Allow("b", l).Allowed {
		t.Fatal("first request of a key refused")
	}
	if s.Allow("a", l).Allowed {
		t.Error("second request of key a passed a limit of 1")
	}
}

// TestLocalIdleKeysExpire checks memory stays bounded under many distinct
// keys: once their buckets are full again, a sweep drops them all.
func TestLocalIdleKeysExpire(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	clk.ns.Store(int64(time.Hour))
	s := NewLocalStore(LocalOptions{Now: clk.now, SweepInterval: time.Minute})
	l := Limit{Rate: 10, Period: time.Second}
	const n = 120_000
	buf := make([]byte, 0, 16)
	for i := range n {
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		s.Allow(string(buf), l)
	}
	if got := s.Len(); got != n {
		t.Fatalf("Len = %d after %d distinct keys", got, n)
	}
	clk.advance(500 * time.Millisecond)
	s.Sweep()
	if got := s.Len(); got != 0 {
		t.Errorf("Len = %d after every bucket refilled and a sweep, want 0", got)
	}

	// Without an explicit sweep, inserting keys sweeps their shards.
	for i := range n {
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		s.Allow(string(buf), l)
	}
	clk.advance(2 * time.Minute)
	for i := range 10 * localShards {
		s.Allow("new-"+strconv.Itoa(i), l)
	}
	if got := s.Len(); got > 10*localShards {
		t.Errorf("Len = %d: idle keys were not swept as new ones arrived", got)
	}
}

func TestLocalMaxKeys(t *testing.T) {
	t.Parallel()
	s := NewLocalStore(LocalOptions{MaxKeys: 10_000})
	l := Limit{Rate: 1, Period: time.Hour} // nothing expires during the test
	for i := range 150_000 {
		s.Allow(strconv.Itoa(i), l)
	}
	if got, bound := s.Len(), 10_000+localShards; got > bound {
		t.Errorf("Len = %d, want at most %d", got, bound)
	}
}

func TestLocalQuota(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{}
	clk.ns.Store(int64(time.Hour))
	s := NewLocalStore(LocalOptions{Now: clk.now})
	end := int64(2 * time.Hour)
	for i := range 3 {
		res := s.Quota("q", 3, end)
		if !res.Allowed || res.Remaining != int64(2-i) || res.ResetAfter != time.Hour {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
	if res := s.Quota("q", 3, end); res.Allowed || res.RetryAfter != time.Hour {
		t.Errorf("fourth request: %+v, want refused until the period ends", res)
	}
	clk.advance(time.Hour)
	if res := s.Quota("q", 3, int64(3*time.Hour)); !res.Allowed || res.Remaining != 2 {
		t.Errorf("first request of the next period: %+v", res)
	}
}

func BenchmarkLocalAllow(b *testing.B) {
	s := NewLocalStore(LocalOptions{})
	l := Limit{Rate: 1 << 40, Period: time.Second}
	b.ReportAllocs()
	for b.Loop() {
		s.Allow("route|ip=203.0.113.7", l)
	}
}

func BenchmarkLocalAllowParallel(b *testing.B) {
	s := NewLocalStore(LocalOptions{})
	l := Limit{Rate: 1 << 40, Period: time.Second}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "route|ip=10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Allow(keys[i&1023], l)
			i++
		}
	})
}

// TestLocalKeyInReusedMemory pins down a corruption bug: assigning to an
// existing string key of a Go map stores the caller's string as the key,
// and the policy passes keys that live in reused buffers, so updates must
// never assign to the map.
func TestLocalKeyInReusedMemory(t *testing.T) {
	t.Parallel()
	s := NewLocalStore(LocalOptions{})
	l := Limit{Rate: 2, Period: time.Hour}
	buf := []byte("key-a")
	view := func() string { return unsafeString(buf) }
	s.Allow(view(), l) // inserts a copy
	s.Allow(view(), l) // updates the entry
	copy(buf, "key-b")
	if !s.Allow("key-b", l).Allowed {
		t.Error("key-b was refused: the stored key changed with the caller's buffer")
	}
	if s.Allow("key-a", l).Allowed {
		t.Error("key-a passed a third time")
	}
	if n := s.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
}
