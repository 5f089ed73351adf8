package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// Hedging defaults, used when a HedgePolicy field is zero.
const (
	DefaultHedgePercentile = 95
	DefaultHedgeMinDelay   = time.Millisecond
)

// hedgeSamples is the number of recent latencies the hedge delay is
// computed from; hedgeEvery is how often (in samples) it is recomputed.
// Until hedgeEvery samples have been seen, a route without a fixed delay
// does not hedge.
const (
	hedgeSamples = 512
	hedgeEvery   = 64
)

// HedgePolicy sends a second attempt of a slow request to another endpoint
// and relays whichever answers first; the other is canceled. Only requests
// that are safe to repeat (as for retries) and whose body is empty or
// buffered are hedged, and each hedge needs the pool's retry budget.
type HedgePolicy struct {
	// Delay is how long the first attempt may take before the hedge is
	// sent. If zero, the Percentile of the route's recent latencies is used.
	Delay time.Duration
	// Percentile (1 to 99) of recent time-to-headers latencies that sets
	// the delay when Delay is zero. Default 95.
	Percentile int
	// MinDelay is the smallest delay a percentile may give. Default 1ms.
	MinDelay time.Duration
}

// hedger is the transport of a hedging route.
type hedger struct {
	h      *handler
	pool   *upstream.Pool
	policy HedgePolicy

	next   atomic.Uint64
	ring   [hedgeSamples]atomic.Int64
	cached atomic.Int64
}

func newHedger(h *handler, pool *upstream.Pool, p HedgePolicy) (*hedger, error) {
	if p.Delay < 0 || p.MinDelay < 0 || p.Percentile < 0 || p.Percentile > 99 {
		return nil, errors.New("hedge: delay must not be negative and percentile must be 1 to 99")
	}
	if p.Percentile == 0 {
		p.Percentile = DefaultHedgePercentile
	}
	if p.MinDelay == 0 {
		p.MinDelay = DefaultHedgeMinDelay
	}
	return &hedger{h: h, pool: pool, policy: p}, nil
}

// delay returns the current hedge delay; 0 means do not hedge.
func (hg *hedger) delay() time.Duration {
	if hg.policy.Delay > 0 {
		return hg.policy.Delay
	}
	return time.Duration(hg.cached.Load())
}

// record adds one time-to-headers sample.
func (hg *hedger) record(d time.Duration) {
	if hg.policy.Delay > 0 {
		return
	}
	i := hg.next.Add(1)
	hg.ring[i%hedgeSamples].Store(int64(d))
	if i%hedgeEvery != 0 {
		return
	}
	var buf [hedgeSamples]int64
	n := min(int(i), hedgeSamples)
	for k := range n {
		buf[k] = hg.ring[k].Load()
	}
	s := buf[:n]
	slices.Sort(s)
	p := s[min(n-1, n*hg.policy.Percentile/100)]
	hg.cached.Store(max(p, int64(hg.policy.MinDelay)))
}

// leg is one of a hedged attempt's two requests.
type leg struct {
	ep     *upstream.Endpoint
	done   upstream.Done
	cancel context.CancelFunc
	start  time.Time
	slot   bool // holds a pool retry slot
	res    *http.Response
	err    error
}

// RoundTrip implements http.RoundTripper. It runs on the request's
// goroutine, called by ReverseProxy for attempt a.
func (hg *hedger) RoundTrip(req *http.Request) (*http.Response, error) {
	a := attemptFrom(req.Context())
	d := hg.delay()
	if a == nil || !a.c.hedge || d <= 0 {
		res, err := hg.pool.RoundTrip(req)
		if err == nil && a != nil {
			hg.record(time.Since(a.start))
		}
		return res, err
	}
	return hg.race(a, req, d)
}

func (hg *hedger) race(a *attempt, req *http.Request, d time.Duration) (*http.Response, error) {
	results := make(chan *leg, 2)
	ctx, cancel := context.WithCancel(req.Context())
	primary := &leg{ep: a.ep, done: a.done, cancel: cancel, start: a.start}
	go hg.send(primary, req.WithContext(ctx), results)
	timer := time.NewTimer(d)
	defer timer.Stop()
	var second, failed *leg
	pending := 1
	for {
		select {
		case l := <-results:
			pending--
			if l.err == nil {
				hg.record(time.Since(l.start))
				var loser *leg
				if pending > 0 {
					loser = primary
					if l == primary {
						loser = second
					}
				}
				hg.adopt(a, l, failed, loser, results)
				return l.res, nil
			}
			if pending == 0 {
				if l == primary {
					return nil, hg.settleFailed(l, failed)
				}
				return nil, hg.settleFailed(failed, l)
			}
			failed = l
		case <-timer.C:
			if second == nil && failed == nil {
				if second = hg.launch(a, req, results); second != nil {
					pending++
				}
			}
		}
	}
}

// settleFailed keeps the primary leg's failure as the attempt's and reports
// the other leg's outcome. It returns the error to hand to ReverseProxy.
func (hg *hedger) settleFailed(primary, other *leg) error {
	primary.cancel()
	if other != nil {
		other.cancel()
		hg.finishLeg(other, upstream.Outcome{Err: other.err})
	}
	return primary.err
}

// adopt makes the winning leg the attempt's. A leg still running (loser)
// is canceled at once, as soon as the winner's headers are in rather than
// when its response ends, so a hung endpoint does not hold a connection,
// an in-flight count and a retry slot for the length of a streamed
// response; its outcome is reported in the background once it returns.
func (hg *hedger) adopt(a *attempt, win, failed, loser *leg, results chan *leg) {
	if win.ep != a.ep {
		a.ep, a.done, a.start = win.ep, win.done, win.start
		a.ex.Endpoint = win.ep.URL.Host
	}
	a.hedgeCancel = win.cancel
	if win.slot {
		// The hedge is over: its leg is now the attempt itself.
		hg.pool.ReleaseRetry()
		win.slot = false
	}
	if failed != nil {
		failed.cancel()
		hg.finishLeg(failed, upstream.Outcome{Err: failed.err})
	}
	if loser != nil {
		loser.cancel()
		go func() {
			l := <-results
			if l.res != nil {
				l.res.Body.Close()
			}
			// Canceled by the hedge: no verdict on the endpoint.
			hg.finishLeg(l, upstream.Outcome{})
		}()
	}
}

// finishLeg reports a leg that is not the attempt's and frees its slot.
func (hg *hedger) finishLeg(l *leg, o upstream.Outcome) {
	l.done(o)
	if l.slot {
		hg.pool.ReleaseRetry()
	}
}

func (hg *hedger) send(l *leg, req *http.Request, results chan<- *leg) {
	l.res, l.err = hg.pool.RoundTrip(req)
	results <- l
}

// launch sends the hedge to another endpoint, if the budget, the retry limit
// and the pool allow it.
func (hg *hedger) launch(a *attempt, req *http.Request, results chan<- *leg) *leg {
	pool := hg.pool
	if !pool.AcquireRetry() {
		pool.Stats().RetriesDenied.Add(1)
		return nil
	}
	withdrawn := time.Now()
	if !pool.Budget().Withdraw(withdrawn) {
		pool.ReleaseRetry()
		pool.Stats().RetriesDenied.Add(1)
		return nil
	}
	ep, done, err := pool.Select(a.in, &a.c.tried)
	if err != nil || a.c.tried.Has(ep) {
		// No other endpoint: no hedge is sent, so nothing is spent.
		if err == nil {
			done(upstream.Outcome{})
		}
		pool.Budget().Refund(withdrawn)
		pool.ReleaseRetry()
		return nil
	}
	a.c.tried.Add(ep)
	pool.Stats().Hedges.Add(1)
	pool.Stats().Attempts.Add(1)
	// Derived from the attempt, so ModifyResponse finds it.
	ctx, cancel := context.WithCancel(a)
	out := req.Clone(ctx)
	u := out.URL
	path := strings.TrimPrefix(u.Path, strings.TrimSuffix(a.ep.URL.Path, "/"))
	u.Scheme, u.Host, u.User = scheme(ep.URL.Scheme), ep.URL.Host, ep.URL.User
	u.Path, u.RawPath = joinPath(ep.URL.Path, path), ""
	out.Body = nil
	if a.c.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(a.c.body))
	}
	l := &leg{ep: ep, done: done, cancel: cancel, start: time.Now(), slot: true}
	go hg.send(l, out, results)
	return l
}
