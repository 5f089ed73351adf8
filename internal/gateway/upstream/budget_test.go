package upstream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBudgetArithmetic(t *testing.T) {
	t.Parallel()
	b, err := NewBudget(BudgetConfig{Percent: 20, MinPerSecond: 1, Window: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	// A quiet service: the minimum, 1/s over 10s, allows 10 retries.
	for range 10 {
		b.Deposit(now)
	}
	allowed := 0
	for range 50 {
		if b.Withdraw(now) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("quiet service: %d retries allowed, want 10", allowed)
	}
	// 200 more requests: 20% of 210 = 42 retries in the window.
	for range 200 {
		b.Deposit(now)
	}
	for range 100 {
		if b.Withdraw(now) {
			allowed++
		}
	}
	if allowed != 42 {
		t.Fatalf("busy service: %d retries allowed, want 42", allowed)
	}
	// The window slides: 11s later nothing is counted any more.
	later := now.Add(11 * time.Second)
	if r := b.Remaining(later); r != 10 {
		t.Errorf("remaining after the window = %d, want the minimum 10", r)
	}
	// Requests spread over the window all count.
	for i := range 10 {
		for range 100 {
			b.Deposit(later.Add(time.Duration(i) * time.Second))
		}
	}
	if r := b.Remaining(later.Add(9 * time.Second)); r != 200 {
		t.Errorf("remaining = %d, want 200 (20%% of 1000)", r)
	}
}

func TestBudgetConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewBudget(BudgetConfig{Window: 500 * time.Millisecond}); err == nil {
		t.Error("window under 1s accepted")
	}
	b, _ := NewBudget(BudgetConfig{Percent: -1})
	if !b.Withdraw(time.Now()) || b.Remaining(time.Now()) != -1 {
		t.Error("a disabled budget refused a retry")
	}
}

func TestBudgetRefund(t *testing.T) {
	t.Parallel()
	b, err := NewBudget(BudgetConfig{Percent: 20, MinPerSecond: 1, Window: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	if !b.Withdraw(now) || b.Remaining(now) != 1 {
		t.Fatalf("remaining %d after one of two retries", b.Remaining(now))
	}
	b.Refund(now)
	if b.Remaining(now) != 2 {
		t.Fatalf("remaining %d after a refund, want 2", b.Remaining(now))
	}
	b.Refund(now) // nothing left to refund
	if b.Remaining(now) != 2 {
		t.Fatalf("remaining %d after a second refund, want 2", b.Remaining(now))
	}
	// A withdrawal that left the window is not refunded into a later one.
	b.Withdraw(now)
	later := now.Add(2 * time.Second) // same bucket, next window
	b.Withdraw(later)
	b.Refund(now)
	if r := b.Remaining(later); r != 1 {
		t.Fatalf("remaining %d: a stale refund reached a later second", r)
	}
}

// TestBudgetConcurrentTurnover pins down a race where a bucket reused for a
// new second was cleared after other callers had already counted retries
// in it, so the budget forgot them and allowed more than its share.
func TestBudgetConcurrentTurnover(t *testing.T) {
	t.Parallel()
	const callers = 16
	b, err := NewBudget(BudgetConfig{Percent: 20, MinPerSecond: 1, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for sec := range int64(3000) {
		now := time.Unix(2_000_000+sec, 0) // every round starts a new second in the one bucket
		var granted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range callers {
			wg.Go(func() {
				<-start
				for range 4 {
					if b.Withdraw(now) {
						granted.Add(1)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		// No requests: the minimum alone, 1 per second of a 1s window.
		if granted.Load() > 1 {
			t.Fatalf("second %d: %d retries granted, budget allows 1", sec, granted.Load())
		}
	}
}
