package upstream

import (
	"errors"
	"slices"
	"time"
)

// Outlier detection defaults, used when an Outlier field is zero.
const (
	DefaultConsecutiveFailures = 5
	DefaultBaseEjectionTime    = 30 * time.Second
	DefaultMaxEjectionTime     = 300 * time.Second
	DefaultMaxEjectionPercent  = 50
)

// Outlier configures passive outlier detection: an endpoint whose requests
// keep failing is ejected from the pool for a while.
type Outlier struct {
	// ConsecutiveFailures ejects an endpoint after this many failures in a
	// row: no response (refused, reset, timed out, truncated) or a 5xx
	// response. Default 5.
	ConsecutiveFailures int
	// BaseEjectionTime is the first ejection's length; each further
	// ejection of the same endpoint adds it again (30s, 60s, 90s, ...), and
	// the multiplier shrinks by one for every BaseEjectionTime the endpoint
	// then stays admitted. Default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps one ejection. Default 300s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of the pool ejected at once (at
	// least one endpoint may always be ejected). Default 50.
	MaxEjectionPercent int
	// SuccessRate also ejects endpoints whose success rate falls well below
	// the other endpoints'. If nil, it is off.
	SuccessRate *SuccessRate
}

func (o Outlier) withDefaults() Outlier {
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if o.BaseEjectionTime == 0 {
		o.BaseEjectionTime = DefaultBaseEjectionTime
	}
	if o.MaxEjectionTime == 0 {
		o.MaxEjectionTime = max(DefaultMaxEjectionTime, o.BaseEjectionTime)
	}
	if o.MaxEjectionPercent == 0 {
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	if o.SuccessRate != nil {
		sr := o.SuccessRate.withDefaults()
		o.SuccessRate = &sr
	}
	return o
}

func (o *Outlier) validate() error {
	switch {
	case o.ConsecutiveFailures < 0:
		return errors.New("outlier: consecutive failures must not be negative")
	case o.BaseEjectionTime < 0 || o.MaxEjectionTime < 0:
		return errors.New("outlier: ejection times must not be negative")
	case o.MaxEjectionTime > 0 && o.MaxEjectionTime < o.BaseEjectionTime:
		return errors.New("outlier: max ejection time is shorter than the base ejection time")
	case o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100:
		return errors.New("outlier: max ejection percent must be 0 to 100")
	case o.SuccessRate != nil:
		return o.SuccessRate.validate()
	}
	return nil
}

// maxEjected returns how many of n endpoints may be ejected at once.
func (o *Outlier) maxEjected(n int) int {
	return max(1, n*o.MaxEjectionPercent/100)
}

// eject takes e out of rotation after n consecutive failures, unless that
// would eject more than the allowed share of the pool.
func (p *Pool) eject(e *Endpoint, oc *Outlier, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || e.has(flagEjected|flagDraining) || !slices.Contains(p.cur.Load().eps, e) {
		return
	}
	if !p.ejectLocked(e, oc, "consecutive failures", "consecutive_failures", n) && n == oc.ConsecutiveFailures {
		s := p.cur.Load()
		p.log.Warn("endpoint not ejected: max ejection percent reached", "service", p.name,
			"endpoint", e.URL.Host, "ejected", p.ejectedLocked(), "endpoints", len(s.eps), "max_ejection_percent", oc.MaxEjectionPercent)
	}
}

// ejectedLocked counts the members that are ejected. The caller holds p.mu.
func (p *Pool) ejectedLocked() int {
	n := 0
	for _, x := range p.cur.Load().eps {
		if x.has(flagEjected) {
			n++
		}
	}
	return n
}

// ejectLocked ejects e, a member that is neither ejected nor draining, for
// its next ejection time, unless the pool already has its share of ejected
// endpoints; it reports whether it did. attrs describe the reason in the
// log. The caller holds p.mu.
func (p *Pool) ejectLocked(e *Endpoint, oc *Outlier, reason string, attrs ...any) bool {
	if p.ejectedLocked() >= oc.maxEjected(len(p.cur.Load().eps)) {
		return false
	}
	now := time.Now()
	e.mu.Lock()
	if !e.readmittedAt.IsZero() && e.ejections > 0 {
		calm := int(now.Sub(e.readmittedAt) / oc.BaseEjectionTime)
		e.ejections = max(0, e.ejections-calm)
	}
	e.ejections++
	d := min(time.Duration(e.ejections)*oc.BaseEjectionTime, oc.MaxEjectionTime)
	e.ejectedUntil = now.Add(d)
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
	}
	e.ejectTimer = time.AfterFunc(d, func() { p.readmit(e) })
	mult := e.ejections
	e.mu.Unlock()
	e.setFlag(flagEjected, true)
	e.ejectionsTotal.Add(1)
	p.log.Warn("endpoint ejected", append([]any{"service", p.name, "endpoint", e.URL.Host, "reason", reason,
		"ejection_time", d.String(), "ejections", mult}, attrs...)...)
	p.recount()
	return true
}

// readmit ends e's ejection when its time is up.
func (p *Pool) readmit(e *Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readmitLocked(e, "ejection time passed")
}

func (p *Pool) readmitLocked(e *Endpoint, reason string) {
	if !e.setFlag(flagEjected, false) {
		return
	}
	e.consec.Store(0)
	e.mu.Lock()
	e.readmittedAt = time.Now()
	e.ejectedUntil = time.Time{}
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
		e.ejectTimer = nil
	}
	e.mu.Unlock()
	p.log.Info("endpoint readmitted", "service", p.name, "endpoint", e.URL.Host, "reason", reason)
	p.recount()
}
