package ratelimit

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the rate_limit policy's collectors. Any field may be nil.
type Metrics struct {
	// Limited counts refused requests by route and limit (or quota) name.
	Limited *prometheus.CounterVec
	// StoreErrors counts checks Redis could not answer, by the outcome the
	// failure mode chose: "fail_open" or "fail_closed".
	StoreErrors *prometheus.CounterVec
	// BreakerOpen is 1 while the Redis circuit breaker is open.
	BreakerOpen prometheus.Gauge
}

// failureLogInterval is the least time between two log lines about Redis
// failures; the ones in between are counted in the next line.
const failureLogInterval = 10 * time.Second

// Shared is what the rate_limit policies of one gateway have in common: the
// stores, which outlive configuration snapshots so that a reload does not
// reset any counter, the metrics and the logger.
type Shared struct {
	// Local is the in-memory store; it also holds the fallback counts of
	// Redis limits while Redis is unavailable.
	Local *LocalStore
	// Redis is the shared store, nil when none is configured.
	Redis *RedisStore

	metrics    Metrics
	logger     *slog.Logger
	lastLog    atomic.Int64
	suppressed atomic.Int64
}

// SharedOptions configure NewShared.
type SharedOptions struct {
	// Local configures the in-memory store.
	Local LocalOptions
	// Redis, if set, configures the shared store.
	Redis *RedisOptions
	// Metrics are updated by the policies and the Redis breaker.
	Metrics Metrics
	// Logger receives store failure lines, at most one per 10s. If nil,
	// they are discarded.
	Logger *slog.Logger
}

// NewShared builds the stores. Redis is not contacted until the first
// check.
func NewShared(o SharedOptions) (*Shared, error) {
	s := &Shared{Local: NewLocalStore(o.Local), metrics: o.Metrics, logger: o.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if o.Redis != nil {
		ro := *o.Redis
		user := ro.OnBreaker
		ro.OnBreaker = func(open bool) {
			if g := s.metrics.BreakerOpen; g != nil {
				g.Set(map[bool]float64{false: 0, true: 1}[open])
			}
			if open {
				s.logger.Warn("rate-limit store unavailable: Redis circuit breaker opened", "address", ro.Address)
			} else {
				s.logger.Info("rate-limit store available again: Redis circuit breaker closed", "address", ro.Address)
			}
			if user != nil {
				user(open)
			}
		}
		rs, err := NewRedisStore(ro)
		if err != nil {
			return nil, err
		}
		s.Redis = rs
	}
	return s, nil
}

// Close closes the Redis connections, if any.
func (s *Shared) Close() error {
	if s == nil || s.Redis == nil {
		return nil
	}
	return s.Redis.Close()
}

// storeFailed counts and (at most every failureLogInterval) logs a check
// the store could not answer.
func (s *Shared) storeFailed(route string, err error, closed bool) {
	outcome := "fail_open"
	if closed {
		outcome = "fail_closed"
	}
	if c := s.metrics.StoreErrors; c != nil {
		c.WithLabelValues(outcome).Inc()
	}
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(failureLogInterval) || !s.lastLog.CompareAndSwap(last, now) {
		s.suppressed.Add(1)
		return
	}
	if errors.Is(err, errBreakerOpen) {
		// The breaker already said so; only count these.
		s.suppressed.Add(1)
		return
	}
	s.logger.Warn("rate-limit store unavailable", "route", route, "outcome", outcome,
		"similar_since_last_line", s.suppressed.Swap(0), "err", err)
}
