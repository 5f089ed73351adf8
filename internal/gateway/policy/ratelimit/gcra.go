// Package ratelimit is the rate_limit policy: request rates (GCRA) and
// calendar quotas per route, keyed by client IP, consumer, API key or
// request headers, counted in this gateway's memory or in Redis shared by
// every replica.
//
// The generic cell rate algorithm keeps one number per key, the theoretical
// arrival time (TAT): the time at which the key's bucket would be full
// again. A request at time now is allowed when TAT - now does not exceed the
// burst tolerance; then TAT moves forward by one emission interval
// (period / rate). There are no windows, so there is no edge at which a
// client can send two windows' worth of requests back to back: at any
// moment at most burst requests pass at once, and after that one per
// emission interval. The counters live outside the configuration snapshots
// (in a LocalStore and a RedisStore held by the gateway Server), so a reload
// does not reset them.
package ratelimit

import (
	"math"
	"time"
)

// Limit is a request rate: Rate requests per Period, of which up to Burst
// may arrive at once. Burst 0 means Rate.
type Limit struct {
	Rate   int64
	Period time.Duration
	Burst  int64
}

// interval is the emission interval in nanoseconds, at least 1.
func (l Limit) interval() int64 {
	if l.Rate <= 0 {
		return int64(l.Period)
	}
	return max(1, int64(l.Period)/l.Rate)
}

func (l Limit) burst() int64 {
	if l.Burst <= 0 {
		return max(1, l.Rate)
	}
	return l.Burst
}

// tolerance is how far ahead of now the TAT may run: burst intervals,
// saturated instead of overflowing.
func (l Limit) tolerance() int64 {
	iv, b := l.interval(), l.burst()
	if b > math.MaxInt64/iv {
		return math.MaxInt64 / 2
	}
	return iv * b
}

// Result is the outcome of one check.
type Result struct {
	// Allowed reports whether the request may pass.
	Allowed bool
	// Limit is the number of requests the key may send at once (the burst,
	// or a quota's limit): the RateLimit-Limit header.
	Limit int64
	// Remaining is how many more requests would pass right now.
	Remaining int64
	// ResetAfter is how long until the full Limit is available again.
	ResetAfter time.Duration
	// RetryAfter is how long to wait before retrying a refused request.
	RetryAfter time.Duration
}

// gcra decides one request at now given the key's stored TAT (0 for a new
// key); all times are nanoseconds on one clock. It returns the result and
// the TAT to store, which is tat unchanged when the request is refused.
func gcra(l Limit, tat, now int64) (Result, int64) {
	iv, tau := l.interval(), l.tolerance()
	if tat < now {
		tat = now
	}
	next := tat + iv
	allowAt := next - tau
	res := Result{Limit: l.burst()}
	if now < allowAt {
		res.ResetAfter = time.Duration(tat - now)
		res.RetryAfter = time.Duration(allowAt - now)
		return res, tat
	}
	res.Allowed = true
	res.ResetAfter = time.Duration(next - now)
	res.Remaining = (tau - (next - now)) / iv
	return res, next
}
