package upstream

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Retry budget defaults, used when a BudgetConfig field is zero.
const (
	DefaultBudgetPercent      = 20
	DefaultBudgetMinPerSecond = 3
	DefaultBudgetWindow       = 10 * time.Second
)

// maxBudgetWindow bounds the budget window, which is kept in one-second
// buckets.
const maxBudgetWindow = 60

// BudgetConfig configures a retry budget.
type BudgetConfig struct {
	// Percent is the share of requests that may be retried, over Window.
	// Default 20; negative disables the budget (retries are then limited
	// only by attempts per request).
	Percent int
	// MinPerSecond lets a quiet service retry this many requests per second
	// of Window even when Percent of its requests is fewer. Default 3.
	MinPerSecond int
	// Window is the sliding window requests and retries are counted over,
	// in whole seconds from 1s to 60s. Default 10s.
	Window time.Duration
}

// Budget caps retries as a share of requests, so that retries cannot
// multiply the load on a service that is already failing. Over the last
// Window, retries may number whichever is larger: Percent of the requests,
// or MinPerSecond times the window's seconds. It is safe for concurrent use
// and never lets more retries through than allowed (concurrent withdrawals
// may be refused slightly early instead).
type Budget struct {
	percent   atomic.Int64
	minPerSec atomic.Int64
	secs      atomic.Int64
	buckets   [maxBudgetWindow]budgetBucket
	turnover  sync.Mutex // serializes reusing a bucket for a new second
}

type budgetBucket struct {
	sec      atomic.Int64
	requests atomic.Int64
	retries  atomic.Int64
}

// NewBudget returns a budget configured by c.
func NewBudget(c BudgetConfig) (*Budget, error) {
	b := &Budget{}
	if err := b.Configure(c); err != nil {
		return nil, err
	}
	return b, nil
}

// Configure changes the budget's settings; the counts are kept.
func (b *Budget) Configure(c BudgetConfig) error {
	if c.MinPerSecond < 0 || c.Window < 0 {
		return errors.New("retry budget: values must not be negative")
	}
	if c.Window != 0 && (c.Window < time.Second || c.Window > maxBudgetWindow*time.Second) {
		return errors.New("retry budget: window must be 1s to 60s")
	}
	if c.Percent == 0 {
		c.Percent = DefaultBudgetPercent
	}
	if c.MinPerSecond == 0 {
		c.MinPerSecond = DefaultBudgetMinPerSecond
	}
	if c.Window == 0 {
		c.Window = DefaultBudgetWindow
	}
	b.percent.Store(int64(c.Percent))
	b.minPerSec.Store(int64(c.MinPerSecond))
	b.secs.Store(int64(c.Window / time.Second))
	return nil
}

// bucket returns the bucket of now's second, cleared if it held an older
// second. The counts are cleared before the new second is published, so a
// count added by a caller that saw the new second is never wiped out.
func (b *Budget) bucket(now time.Time) *budgetBucket {
	sec := now.Unix()
	bk := &b.buckets[uint64(sec)%uint64(b.secs.Load())]
	if bk.sec.Load() != sec {
		b.turnover.Lock()
		if bk.sec.Load() != sec {
			bk.requests.Store(0)
			bk.retries.Store(0)
			bk.sec.Store(sec)
		}
		b.turnover.Unlock()
	}
	return bk
}

// Deposit counts one request (not a retry) made at now.
func (b *Budget) Deposit(now time.Time) {
	b.bucket(now).requests.Add(1)
}

// Withdraw asks for one retry at now; it counts and allows it if the budget
// has room.
func (b *Budget) Withdraw(now time.Time) bool {
	if b.percent.Load() < 0 {
		return true
	}
	bk := b.bucket(now)
	bk.retries.Add(1)
	requests, retries := b.totals(now)
	if retries > b.allowed(requests) {
		bk.retries.Add(-1)
		return false
	}
	return true
}

// Refund gives back one retry withdrawn at the given time that was not
// sent after all. A withdrawal that already left the window is not
// refunded: it no longer counts.
func (b *Budget) Refund(withdrawnAt time.Time) {
	if b.percent.Load() < 0 {
		return
	}
	sec := withdrawnAt.Unix()
	bk := &b.buckets[uint64(sec)%uint64(b.secs.Load())]
	b.turnover.Lock()
	if bk.sec.Load() == sec && bk.retries.Load() > 0 {
		bk.retries.Add(-1)
	}
	b.turnover.Unlock()
}

// allowed is the number of retries a window with this many requests allows.
func (b *Budget) allowed(requests int64) int64 {
	return max(requests*b.percent.Load()/100, b.minPerSec.Load()*b.secs.Load())
}

// totals sums the requests and retries of the window ending at now.
func (b *Budget) totals(now time.Time) (requests, retries int64) {
	sec, n := now.Unix(), b.secs.Load()
	for i := range n {
		bk := &b.buckets[i]
		if s := bk.sec.Load(); s > sec-n && s <= sec {
			requests += bk.requests.Load()
			retries += bk.retries.Load()
		}
	}
	return requests, retries
}

// Remaining returns how many more retries the budget allows at now.
func (b *Budget) Remaining(now time.Time) int64 {
	if b.percent.Load() < 0 {
		return -1
	}
	requests, retries := b.totals(now)
	return max(0, b.allowed(requests)-retries)
}
