package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCRA(t *testing.T) {
	t.Parallel()
	l := Limit{Rate: 10, Period: time.Second, Burst: 3} // one per 100ms, 3 at once
	const ms = int64(time.Millisecond)
	type step struct {
		at        int64 // ms
		allowed   bool
		remaining int64
		retry     time.Duration
	}
	steps := []step{
		{0, true, 2, 0},
		{0, true, 1, 0},
		{0, true, 0, 0},
		{0, false, 0, 100 * time.Millisecond},
		{50, false, 0, 50 * time.Millisecond},
		{100, true, 0, 0},
		{150, false, 0, 50 * time.Millisecond},
		{500, true, 2, 0}, // idle long enough: bucket refilled, not beyond burst
		{10_000, true, 2, 0},
	}
	var tat int64
	base := int64(1_000_000) * ms
	for i, s := range steps {
		res, next := gcra(l, tat, base+s.at*ms)
		if res.Allowed != s.allowed || res.Remaining != s.remaining || res.RetryAfter != s.retry || res.Limit != 3 {
			t.Fatalf("step %d at %dms: got %+v, want allowed=%v remaining=%d retry=%s", i, s.at, res, s.allowed, s.remaining, s.retry)
		}
		if !res.Allowed && next != tat {
			t.Fatalf("step %d: a refused request moved the TAT", i)
		}
		tat = next
	}
}

// TestGCRANoWindowEdgeBurst pins down why GCRA was chosen over fixed
// windows: a client that spends its whole limit just before a window edge
// cannot spend it again just after.
func TestGCRANoWindowEdgeBurst(t *testing.T) {
	t.Parallel()
	l := Limit{Rate: 100, Period: time.Minute}
	var tat int64
	now := int64(59 * time.Second) // one second before a minute boundary
	passed := 0
	for i := 0; i < 200; i++ {
		at := now
		if i >= 100 {
			at = now + int64(2*time.Second) // just after the boundary
		}
		res, next := gcra(l, tat, at)
		if res.Allowed {
			passed++
			tat = next
		}
	}
	// 100 at once, then one per 600ms over the 2s that passed: 3 more.
	if passed != 103 {
		t.Errorf("%d requests passed around a window edge, want 103", passed)
	}
}

func TestGCRAResetAfter(t *testing.T) {
	t.Parallel()
	l := Limit{Rate: 60, Period: time.Minute, Burst: 60}
	res, _ := gcra(l, 0, int64(time.Hour))
	if res.ResetAfter != time.Second || res.Remaining != 59 {
		t.Errorf("first request: %+v, want reset after 1s and 59 remaining", res)
	}
}

func TestLimitDefaultsAndOverflow(t *testing.T) {
	t.Parallel()
	if b := (Limit{Rate: 7, Period: time.Second}).burst(); b != 7 {
		t.Errorf("default burst = %d, want the rate", b)
	}
	huge := Limit{Rate: 1, Period: 365 * 24 * time.Hour, Burst: 1 << 40}
	if tol := huge.tolerance(); tol <= 0 {
		t.Errorf("tolerance overflowed: %d", tol)
	}
	res, _ := gcra(huge, 0, int64(time.Hour))
	if !res.Allowed {
		t.Error("a huge burst refused the first request")
	}
}

// countAllowed runs n concurrent checks and returns how many passed.
func countAllowed(n int, check func() bool) int {
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if check() {
				ok.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	return int(ok.Load())
}
