package upstream

import (
	"errors"
	"math"
	"slices"
	"time"
)

// Success-rate outlier detection defaults, used when a SuccessRate field is
// zero.
const (
	DefaultSuccessRateMinimumHosts  = 5
	DefaultSuccessRateRequestVolume = 100
	DefaultSuccessRateStdevFactor   = 1.9
	DefaultSuccessRateInterval      = 10 * time.Second
)

// SuccessRate configures ejection on success-rate deviation. Once per
// Interval the pool computes the success rate of every admitted endpoint
// that served at least RequestVolume requests in the interval; when at least
// MinimumHosts endpoints qualify, those whose rate is below
// mean − StdevFactor × standard deviation are ejected, worst first, for the
// same growing ejection time and within the same MaxEjectionPercent as
// consecutive failures. A failure is what consecutive failures count: no
// response, or a 5xx response.
//
// With n endpoints, a single outlier lies at most √(n−1) standard deviations
// below the mean, so the default factor of 1.9 needs at least five
// endpoints; smaller pools need a smaller factor.
type SuccessRate struct {
	// MinimumHosts is the fewest endpoints with enough requests in an
	// interval for the evaluation to take place; at least 2. Default 5.
	MinimumHosts int
	// RequestVolume is the fewest requests an endpoint must have served in
	// the interval to take part. Default 100.
	RequestVolume int
	// StdevFactor is how many standard deviations below the mean an
	// endpoint's success rate must fall to be ejected. Default 1.9.
	StdevFactor float64
	// Interval is the time between evaluations; requests are counted per
	// interval. Default 10s.
	Interval time.Duration
}

func (s SuccessRate) withDefaults() SuccessRate {
	if s.MinimumHosts == 0 {
		s.MinimumHosts = DefaultSuccessRateMinimumHosts
	}
	if s.RequestVolume == 0 {
		s.RequestVolume = DefaultSuccessRateRequestVolume
	}
	if s.StdevFactor == 0 {
		s.StdevFactor = DefaultSuccessRateStdevFactor
	}
	if s.Interval == 0 {
		s.Interval = DefaultSuccessRateInterval
	}
	return s
}

func (s *SuccessRate) validate() error {
	switch {
	case s.MinimumHosts < 0 || s.MinimumHosts == 1:
		return errors.New("outlier: success rate minimum hosts must be at least 2")
	case s.RequestVolume < 0:
		return errors.New("outlier: success rate request volume must not be negative")
	case s.StdevFactor < 0 || math.IsNaN(s.StdevFactor) || math.IsInf(s.StdevFactor, 0):
		return errors.New("outlier: success rate stdev factor must be a positive number")
	case s.Interval < 0:
		return errors.New("outlier: success rate interval must not be negative")
	}
	return nil
}

// srFailure is what one failed request adds to an endpoint's srCount: the
// high 32 bits count failures, the low 32 bits all requests, so one atomic
// add records a request and one swap reads and resets a consistent pair.
const srFailure = 1<<32 | 1

// countOutcome records one request for success-rate detection. It is on the
// request path: one atomic add, no lock, no allocation.
func (e *Endpoint) countOutcome(failed bool) {
	if failed {
		e.srCount.Add(srFailure)
	} else {
		e.srCount.Add(1)
	}
}

// srEvaluator is the goroutine that evaluates a pool's success rates every
// interval. It is replaced when the interval changes and stopped by Close.
type srEvaluator struct {
	interval time.Duration
	stop     chan struct{}
	done     chan struct{} // closed when the goroutine has returned
	samples  []srSample    // reused between evaluations; guarded by Pool.mu
}

type srSample struct {
	e    *Endpoint
	rate float64
}

// syncSuccessRate starts, restarts or stops the success-rate evaluator to
// match the pool's configuration. The caller holds p.mu.
func (p *Pool) syncSuccessRate() {
	var want time.Duration
	if oc := p.cur.Load().cfg.outlier; oc != nil && oc.SuccessRate != nil && p.started && !p.closed {
		want = oc.SuccessRate.Interval
	}
	if p.sr != nil && p.sr.interval == want {
		return
	}
	p.stopSuccessRate()
	// A new or no evaluator: counts of an earlier interval mean nothing.
	for _, e := range p.cur.Load().eps {
		e.srCount.Store(0)
	}
	if want == 0 {
		return
	}
	ev := &srEvaluator{interval: want, stop: make(chan struct{}), done: make(chan struct{})}
	p.sr = ev
	go p.runSuccessRate(ev)
}

// stopSuccessRate stops the evaluator without waiting for it: it may be
// blocked on p.mu, which the caller holds.
func (p *Pool) stopSuccessRate() {
	if p.sr != nil {
		close(p.sr.stop)
		p.sr = nil
	}
}

func (p *Pool) runSuccessRate(ev *srEvaluator) {
	defer close(ev.done)
	t := time.NewTicker(ev.interval)
	defer t.Stop()
	for {
		select {
		case <-ev.stop:
			return
		case <-t.C:
			p.evaluateSuccessRate(ev)
		}
	}
}

// evaluateSuccessRate ends one interval: it reads and resets every
// endpoint's counts and ejects those whose success rate deviates.
func (p *Pool) evaluateSuccessRate(ev *srEvaluator) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.sr != ev {
		return
	}
	s := p.cur.Load()
	oc := s.cfg.outlier
	if oc == nil || oc.SuccessRate == nil {
		return
	}
	sr := oc.SuccessRate
	samples := ev.samples[:0]
	var sum float64
	for _, e := range s.eps {
		c := e.srCount.Swap(0)
		total, failures := c&math.MaxUint32, c>>32
		if e.has(flagEjected|flagDraining) || total == 0 || total < uint64(sr.RequestVolume) {
			continue
		}
		rate := float64(total-failures) / float64(total)
		samples = append(samples, srSample{e, rate})
		sum += rate
	}
	ev.samples = samples
	defer clear(samples) // keep no endpoint alive through the buffer
	if len(samples) < sr.MinimumHosts {
		return
	}
	n := float64(len(samples))
	mean := sum / n
	var sq float64
	for _, x := range samples {
		sq += (x.rate - mean) * (x.rate - mean)
	}
	threshold := mean - sr.StdevFactor*math.Sqrt(sq/n)
	slices.SortFunc(samples, func(a, b srSample) int { return compareRate(a.rate, b.rate) })
	for _, x := range samples {
		if x.rate >= threshold {
			return
		}
		if !p.ejectLocked(x.e, oc, "success rate",
			"success_rate", round3(x.rate), "threshold", round3(threshold), "mean", round3(mean)) {
			p.log.Warn("endpoint not ejected: max ejection percent reached", "service", p.name,
				"endpoint", x.e.URL.Host, "reason", "success rate", "success_rate", round3(x.rate),
				"threshold", round3(threshold), "max_ejection_percent", oc.MaxEjectionPercent)
			return
		}
	}
}

func compareRate(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
