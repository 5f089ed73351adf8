package gateway

import (
	"fmt"
	"net/http"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/proxy"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// poolConfig translates a service's resilience settings into the pool's
// configuration.
func (s *Server) poolConfig(sc *config.Service) (upstream.Config, error) {
	c := upstream.Config{
		Logger:      s.logger,
		MaxRequests: sc.CircuitBreaker.MaxRequests,
		MaxRetries:  sc.CircuitBreaker.MaxPendingRetries,
		Budget: upstream.BudgetConfig{
			Percent:      sc.RetryBudget.Percent,
			MinPerSecond: sc.RetryBudget.MinPerSecond,
			Window:       sc.RetryBudget.Window.D(),
		},
	}
	if t := sc.PanicThreshold; t != nil {
		c.PanicThreshold = *t
		if *t == 0 {
			c.PanicThreshold = -1
		}
	}
	switch lb := sc.LoadBalancer; lb.Policy {
	case "least_request":
		c.Balancer = upstream.NewLeastRequest()
	case "p2c":
		c.Balancer = upstream.NewP2C()
	case "random":
		c.Balancer = upstream.NewRandom()
	case "consistent_hash":
		c.Balancer = upstream.NewMaglev(hashKey(lb.Hash))
	default:
		c.Balancer = upstream.NewRoundRobin()
	}
	if h := sc.HealthCheck; h != nil {
		hc := &upstream.HealthCheck{
			Path: h.Path, GRPC: h.Protocol == "grpc", GRPCService: h.GRPCService, Host: h.Host,
			Interval: h.Interval.D(), Timeout: h.Timeout.D(), Jitter: h.Jitter.D(),
			HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold,
		}
		for _, st := range h.ExpectedStatuses {
			lo, hi, err := config.ParseStatusRange(st)
			if err != nil {
				return c, fmt.Errorf("health_check: %w", err)
			}
			hc.Statuses = append(hc.Statuses, upstream.StatusRange{Min: lo, Max: hi})
		}
		c.HealthCheck = hc
	}
	if o := sc.OutlierDetection; o.IsEnabled() {
		c.Outlier = &upstream.Outlier{
			ConsecutiveFailures: o.ConsecutiveFailures, BaseEjectionTime: o.BaseEjectionTime.D(),
			MaxEjectionTime: o.MaxEjectionTime.D(), MaxEjectionPercent: o.MaxEjectionPercent,
		}
		if sr := o.SuccessRate; sr != nil {
			c.Outlier.SuccessRate = &upstream.SuccessRate{MinimumHosts: sr.MinimumHosts, RequestVolume: sr.RequestVolume,
				StdevFactor: float64(sr.StdevFactor), Interval: sr.Interval.D()}
		}
	}
	if b := sc.CircuitBreaker; b.IsEnabled() {
		c.Breaker = &upstream.Breaker{
			FailureThreshold: b.FailureThreshold, OpenTime: b.OpenTime.D(),
			HalfOpenRequests: b.HalfOpenRequests, SuccessThreshold: b.SuccessThreshold,
		}
	}
	return c, c.Validate()
}

// hashKey returns the consistent-hash key function: a header, a cookie, or
// the client IP derived through trusted proxies.
func hashKey(h config.HashOn) upstream.HashFunc {
	switch {
	case h.Header != "":
		return upstream.HashHeader(h.Header)
	case h.Cookie != "":
		return upstream.HashCookie(h.Cookie)
	}
	peer := upstream.HashRemoteAddr()
	return func(r *http.Request) (uint64, bool) {
		if ex := exchange.From(r.Context()); ex != nil && ex.ClientIP.IsValid() {
			b := ex.ClientIP.As16()
			return upstream.HashBytes(b[:]), true
		}
		return peer(r)
	}
}

// reconcileService prepares a changed service whose pool is carried over:
// the pool is reconfigured (and its transport replaced only if the
// transport settings changed) when the snapshot commits.
func (s *Server) reconcileService(old *service, fp string, pcfg upstream.Config, eps []*upstream.Endpoint,
	topts proxy.TransportOptions, tkey string) (*service, error) {
	svc := &service{fingerprint: fp, pool: old.pool, transport: old.transport, transportKey: old.transportKey}
	var tr http.RoundTripper
	if tkey != old.transportKey {
		var err error
		if tr, err = proxy.NewTransport(topts); err != nil {
			return nil, err
		}
		svc.transport, svc.transportKey = tr, tkey
	}
	pool := old.pool
	svc.commit = func() {
		if tr != nil {
			pool.SetTransport(tr)
		}
		// The configuration was validated by poolConfig.
		_ = pool.Reconfigure(pcfg, eps)
	}
	return svc, nil
}

// commitServices applies the changes of carried-over pools; build calls it
// once nothing can fail any more. Sources of prev that snap does not keep
// are detached first, so none of them can overwrite the set a changed
// service now gets from its configuration or its new source.
func commitServices(snap, prev *snapshot) {
	if prev != nil {
		for name, old := range prev.services {
			if old.source == nil {
				continue
			}
			if cur := snap.services[name]; cur == nil || cur.source != old.source {
				old.source.detach()
			}
		}
	}
	for _, svc := range snap.services {
		if svc.commit != nil {
			svc.commit()
			svc.commit = nil
		}
	}
}

// pools returns the serving snapshot's pools by service name.
func (s *Server) pools() map[string]*upstream.Pool {
	snap := s.snap.Load()
	if snap == nil {
		return nil
	}
	out := make(map[string]*upstream.Pool, len(snap.services))
	for name, svc := range snap.services {
		out[name] = svc.pool
	}
	return out
}

// startPools starts the health checks of a snapshot's pools (idempotent).
func startPools(snap *snapshot) {
	for _, svc := range snap.services {
		svc.pool.Start()
	}
}

// retireService releases what a service of the previous snapshot held that
// the next one does not use: a dropped pool is closed (health checks stop)
// and a replaced transport's idle connections are closed. Requests in
// flight finish either way.
func retireService(svc *service, next *snapshot, name string) {
	cur := next.services[name]
	if cur == nil || cur.pool != svc.pool {
		svc.pool.Close()
	}
	if cur != nil && cur.transport == svc.transport {
		return
	}
	if c, ok := svc.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// retryPolicy translates a route's retry settings.
func retryPolicy(rc *config.Route) *proxy.RetryPolicy {
	r := rc.Retry
	attempts := max(r.Attempts, 1)
	on, err := proxy.ParseRetryOn(r.On)
	if err != nil || (r.On != nil && len(r.On) == 0) {
		// "on: []" retries nothing (unknown names are refused by package
		// config); the per-try timeout still applies.
		attempts = 1
	}
	return &proxy.RetryPolicy{
		Attempts: attempts, PerTryTimeout: r.PerTryTimeout.D(), On: on,
		BackoffBase: r.BackoffBase.D(), BackoffMax: r.BackoffMax.D(),
		MaxBufferBytes: int64(r.MaxBufferBytes), AssumeIdempotent: r.AssumeIdempotent,
	}
}

// hedgePolicy translates a route's hedge settings.
func hedgePolicy(rc *config.Route) *proxy.HedgePolicy {
	h := rc.Hedge
	if h == nil {
		return nil
	}
	return &proxy.HedgePolicy{Delay: h.Delay.D(), Percentile: h.Percentile}
}
