package upstream

import (
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
