package config

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// resilience checks the load balancing, health, outlier, breaker and budget
// settings of every service and the retry and hedge settings of every route.
func (v *validator) resilience() {
	for i := range v.cfg.Services {
		v.serviceResilience(joinIndex("services", i), &v.cfg.Services[i])
	}
	for i := range v.cfg.Routes {
		v.routeResilience(joinIndex("routes", i), &v.cfg.Routes[i])
	}
}

func (v *validator) serviceResilience(p string, s *Service) {
	lb := s.LoadBalancer
	if lb.Policy != "" && !slices.Contains(Balancers, lb.Policy) {
		v.errorf(p+".load_balancer.policy", "unknown policy %q: use %s%s", lb.Policy, strings.Join(Balancers, ", "), suggest(lb.Policy, Balancers))
	}
	hp := p + ".load_balancer.hash"
	switch {
	case lb.Hash.Header != "" && lb.Hash.Cookie != "":
		v.errorf(hp, "set at most one of header and cookie")
	case (lb.Hash.Header != "" || lb.Hash.Cookie != "") && lb.Policy != "consistent_hash":
		v.errorf(hp, "hash is used only by policy consistent_hash")
	case lb.Hash.Header != "" && !httpguts.ValidHeaderFieldName(lb.Hash.Header):
		v.errorf(hp+".header", "%q is not a valid header name", lb.Hash.Header)
	case lb.Hash.Cookie != "" && strings.ContainsAny(lb.Hash.Cookie, " \t;=,\""):
		v.errorf(hp+".cookie", "%q is not a valid cookie name", lb.Hash.Cookie)
	}
	if h := s.HealthCheck; h != nil {
		v.healthCheck(p+".health_check", h)
	}
	o := s.OutlierDetection
	op := p + ".outlier_detection"
	v.nonNegative(op+".consecutive_failures", o.ConsecutiveFailures)
	v.percent(op+".max_ejection_percent", o.MaxEjectionPercent)
	if o.MaxEjectionTime != 0 && o.MaxEjectionTime < o.BaseEjectionTime {
		v.errorf(op+".max_ejection_time", "%s is shorter than base_ejection_time %s", o.MaxEjectionTime, o.BaseEjectionTime)
	}
	if sr := o.SuccessRate; sr != nil {
		v.successRate(op+".success_rate", sr)
	}
	b := s.CircuitBreaker
	bp := p + ".circuit_breaker"
	v.nonNegative(bp+".failure_threshold", b.FailureThreshold)
	v.nonNegative(bp+".half_open_requests", b.HalfOpenRequests)
	v.nonNegative(bp+".success_threshold", b.SuccessThreshold)
	v.nonNegative(bp+".max_requests", b.MaxRequests)
	v.nonNegative(bp+".max_pending_retries", b.MaxPendingRetries)
	if t := s.PanicThreshold; t != nil {
		v.percent(p+".panic_threshold", *t)
	}
	rb := s.RetryBudget
	if rb.Percent != 0 {
		v.percent(p+".retry_budget.percent", rb.Percent)
	}
	v.nonNegative(p+".retry_budget.min_per_second", rb.MinPerSecond)
	if w := rb.Window.D(); w != 0 && (w < time.Second || w > time.Minute || w%time.Second != 0) {
		v.errorf(p+".retry_budget.window", "window %s must be whole seconds from 1s to 60s", rb.Window)
	}
}

func (v *validator) successRate(p string, sr *SuccessRate) {
	if sr.MinimumHosts < 0 || sr.MinimumHosts == 1 {
		v.errorf(p+".minimum_hosts", "%d must be at least 2: a success rate is compared with the other endpoints'", sr.MinimumHosts)
	}
	v.nonNegative(p+".request_volume", sr.RequestVolume)
	if sr.StdevFactor < 0 {
		v.errorf(p+".stdev_factor", "%v must be a positive number of standard deviations", float64(sr.StdevFactor))
	}
	if sr.Interval != 0 && sr.Interval.D() < MinSuccessRateInterval {
		v.errorf(p+".interval", "interval %s is shorter than %s", sr.Interval, Duration(MinSuccessRateInterval))
	}
}

func (v *validator) healthCheck(p string, h *HealthCheck) {
	switch h.Protocol {
	case "", "http":
		if h.GRPCService != "" {
			v.errorf(p+".grpc_service", "grpc_service needs protocol: grpc")
		}
	case "grpc":
		if h.Path != "" {
			v.errorf(p+".path", "a gRPC health check has no path; it calls grpc.health.v1.Health/Check")
		}
	default:
		v.errorf(p+".protocol", "unknown protocol %q: use http or grpc", h.Protocol)
	}
	if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n#")) {
		v.errorf(p+".path", "invalid path %q: start with / and use no spaces or fragment", h.Path)
	}
	if h.Host != "" && !httpguts.ValidHostHeader(h.Host) {
		v.errorf(p+".host", "invalid host %q", h.Host)
	}
	interval := h.Interval.D()
	if interval == 0 {
		interval = DefaultHealthInterval
	}
	if h.Timeout.D() > interval {
		v.errorf(p+".timeout", "timeout %s is longer than the interval %s", h.Timeout, Duration(interval))
	}
	if h.Interval != 0 && h.Interval.D() < 100*time.Millisecond {
		v.errorf(p+".interval", "interval %s is shorter than 100ms", h.Interval)
	}
	v.nonNegative(p+".healthy_threshold", h.HealthyThreshold)
	v.nonNegative(p+".unhealthy_threshold", h.UnhealthyThreshold)
	for i, s := range h.ExpectedStatuses {
		if _, _, err := ParseStatusRange(s); err != nil {
			v.errorf(joinIndex(p+".expected_statuses", i), "%v", err)
		}
	}
}

// ParseStatusRange parses an expected status: "200" or "200-299", within
// 100-599.
func ParseStatusRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, &statusRangeError{s}
	}
	return lo, hi, nil
}

type statusRangeError struct{ s string }

func (e *statusRangeError) Error() string {
	return "invalid status " + strconv.Quote(e.s) + `: write a code such as "204" or a range such as "200-299" within 100-599`
}

func (v *validator) routeResilience(p string, r *Route) {
	rt := r.Retry
	rp := p + ".retry"
	if rt.Attempts < 0 || rt.Attempts > MaxRetryAttempts {
		v.errorf(rp+".attempts", "attempts %d must be 1 to %d (1 disables retries)", rt.Attempts, MaxRetryAttempts)
	}
	seen := map[string]bool{}
	for i, c := range rt.On {
		cp := joinIndex(rp+".on", i)
		switch {
		case !slices.Contains(RetryConditions, c):
			v.errorf(cp, "unknown condition %q: use %s%s", c, strings.Join(RetryConditions, ", "), suggest(c, RetryConditions))
		case seen[c]:
			v.errorf(cp, "duplicate condition %q", c)
		}
		seen[c] = true
	}
	if rt.BackoffMax != 0 && rt.BackoffMax < rt.BackoffBase {
		v.errorf(rp+".backoff_max", "%s is shorter than backoff_base %s", rt.BackoffMax, rt.BackoffBase)
	}
	if rt.MaxBufferBytes < 0 {
		v.errorf(rp+".max_buffer_bytes", "must not be negative")
	}
	timeout := r.Timeout.D()
	if timeout == 0 {
		timeout = DefaultRouteTimeout
	}
	if rt.PerTryTimeout.D() > timeout {
		v.errorf(rp+".per_try_timeout", "per_try_timeout %s is longer than the route's timeout %s, which bounds all attempts", rt.PerTryTimeout, Duration(timeout))
	}
	if h := r.Hedge; h != nil {
		if h.Percentile != 0 && (h.Percentile < 1 || h.Percentile > 99) {
			v.errorf(p+".hedge.percentile", "percentile %d must be 1 to 99", h.Percentile)
		}
		if h.Delay.D() > timeout {
			v.errorf(p+".hedge.delay", "delay %s is longer than the route's timeout %s", h.Delay, Duration(timeout))
		}
	}
	if r.DirectResponse != nil && (r.Hedge != nil || v.cfg.src.has(rp)) {
		v.errorf(rp, "retry and hedge apply only to routes with a service")
	}
}

// has reports whether the file set path.
func (s *source) has(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.pos[path]
	return ok
}

func (v *validator) nonNegative(path string, n int) {
	if n < 0 {
		v.errorf(path, "must not be negative")
	}
}

func (v *validator) percent(path string, n int) {
	if n < 0 || n > 100 {
		v.errorf(path, "%d is not a percentage from 0 to 100", n)
	}
}
