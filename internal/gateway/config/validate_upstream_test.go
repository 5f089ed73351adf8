package config

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

const upstreamBase = `
services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80"}]
`

const upstreamRoute = `
routes:
  - name: r
    match: {path: /}
    service: s
`

func TestUpstreamDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, upstreamBase+`    health_check: {interval: 30s}
`+upstreamRoute+`    hedge: {delay: 20ms}
`, nil)
	s := cfg.Services[0]
	if s.LoadBalancer.Policy != "round_robin" || *s.PanicThreshold != 50 {
		t.Errorf("balancer %q, panic %d", s.LoadBalancer.Policy, *s.PanicThreshold)
	}
	h := s.HealthCheck
	if h.Protocol != "http" || h.Path != "/healthz" || h.Timeout.D() != 2*time.Second || h.Jitter.D() != 3*time.Second ||
		h.HealthyThreshold != 2 || h.UnhealthyThreshold != 3 || len(h.ExpectedStatuses) != 1 {
		t.Errorf("health check defaults = %+v", h)
	}
	if o := s.OutlierDetection; !o.IsEnabled() || o.ConsecutiveFailures != 5 || o.MaxEjectionPercent != 50 || o.MaxEjectionTime.D() != 5*time.Minute {
		t.Errorf("outlier defaults = %+v", o)
	}
	if b := s.CircuitBreaker; !b.IsEnabled() || b.FailureThreshold != 5 || b.OpenTime.D() != 10*time.Second {
		t.Errorf("breaker defaults = %+v", b)
	}
	if b := s.RetryBudget; b.Percent != 20 || b.MinPerSecond != 3 || b.Window.D() != 10*time.Second {
		t.Errorf("budget defaults = %+v", b)
	}
	r := cfg.Routes[0]
	if rt := r.Retry; rt.Attempts != 2 || len(rt.On) != 7 || rt.MaxBufferBytes != 64<<10 || rt.BackoffMax.D() != 250*time.Millisecond {
		t.Errorf("retry defaults = %+v", rt)
	}
	if !r.DeadlinePropagated() || r.Hedge.Percentile != 95 {
		t.Errorf("propagate %v, hedge %+v", r.DeadlinePropagated(), r.Hedge)
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"balancer", upstreamBase + `    load_balancer: {policy: round-robin, hash: {header: "X Y"}}
`, []string{
			`test.yaml:5:29: services[0].load_balancer.policy: unknown policy "round-robin"`, `did you mean "round_robin"?`,
			"services[0].load_balancer.hash: hash is used only by policy consistent_hash",
		}},
		{"hash", upstreamBase + `    load_balancer: {policy: consistent_hash, hash: {header: X, cookie: y}}
`, []string{"services[0].load_balancer.hash: set at most one of header and cookie"}},
		{"health", upstreamBase + `    health_check:
      protocol: tcp
      path: healthz
      interval: 50ms
      timeout: 1s
      healthy_threshold: -1
      expected_statuses: ["200-199", "abc", "700"]
`, []string{
			`test.yaml:6:17: services[0].health_check.protocol: unknown protocol "tcp"`,
			`services[0].health_check.path: invalid path "healthz"`,
			"services[0].health_check.interval: interval 50ms is shorter than 100ms",
			"services[0].health_check.timeout: timeout 1s is longer than the interval 50ms",
			"services[0].health_check.healthy_threshold: must not be negative",
			`services[0].health_check.expected_statuses[0]: invalid status "200-199"`,
			`services[0].health_check.expected_statuses[1]: invalid status "abc"`,
			`services[0].health_check.expected_statuses[2]: invalid status "700"`,
		}},
		{"grpc health", upstreamBase + `    health_check: {protocol: grpc, path: /x}
`, []string{"services[0].health_check.path: a gRPC health check has no path"}},
		{"outlier and breaker", upstreamBase + `    outlier_detection: {max_ejection_percent: 150, base_ejection_time: 1m, max_ejection_time: 10s, consecutive_failures: -1}
    circuit_breaker: {failure_threshold: -2, max_requests: -1}
    panic_threshold: 101
    retry_budget: {percent: 200, window: 90s}
`, []string{
			"services[0].outlier_detection.consecutive_failures: must not be negative",
			"services[0].outlier_detection.max_ejection_percent: 150 is not a percentage",
			"services[0].outlier_detection.max_ejection_time: 10s is shorter than base_ejection_time 1m",
			"services[0].circuit_breaker.failure_threshold: must not be negative",
			"services[0].circuit_breaker.max_requests: must not be negative",
			"services[0].panic_threshold: 101 is not a percentage",
			"services[0].retry_budget.percent: 200 is not a percentage",
			"services[0].retry_budget.window: window 1m30s must be whole seconds from 1s to 60s",
		}},
		{"success rate", upstreamBase + `    outlier_detection:
      success_rate: {minimum_hosts: 1, request_volume: -5, stdev_factor: -1, interval: 10ms}
`, []string{
			"test.yaml:6:37: services[0].outlier_detection.success_rate.minimum_hosts: 1 must be at least 2",
			"services[0].outlier_detection.success_rate.request_volume: must not be negative",
			"services[0].outlier_detection.success_rate.stdev_factor: -1 must be a positive number",
			"services[0].outlier_detection.success_rate.interval: interval 10ms is shorter than 100ms",
		}},
		{"success rate factor", upstreamBase + `    outlier_detection: {success_rate: {stdev_factor: 1.9x}}
`, []string{`test.yaml:5:54: services[0].outlier_detection.success_rate.stdev_factor: invalid number "1.9x"`}},
		{"retry", upstreamBase + upstreamRoute + `    timeout: 1s
    retry: {attempts: 11, on: [reset, "500", reset], per_try_timeout: 2s, backoff_base: 1s, backoff_max: 10ms}
    hedge: {percentile: 100, delay: 5s}
`, []string{
			"routes[0].retry.attempts: attempts 11 must be 1 to 10",
			`routes[0].retry.on[1]: unknown condition "500"`,
			`routes[0].retry.on[2]: duplicate condition "reset"`,
			"routes[0].retry.per_try_timeout: per_try_timeout 2s is longer than the route's timeout 1s",
			"routes[0].retry.backoff_max: 10ms is shorter than backoff_base 1s",
			"routes[0].hedge.percentile: percentile 100 must be 1 to 99",
			"routes[0].hedge.delay: delay 5s is longer than the route's timeout 1s",
		}},
		{"retry on direct response", `
routes:
  - name: r
    match: {path: /}
    direct_response: {body: hi}
    retry: {attempts: 3}
`, []string{"routes[0].retry: retry and hedge apply only to routes with a service"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnv("test.yaml", []byte(tc.yaml), envMap(nil))
			if err == nil {
				t.Fatal("ParseEnv succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors do not contain %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestSuccessRateConfig(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, upstreamBase+`    outlier_detection: {success_rate: {}}
  - name: tuned
    endpoints: [{url: "http://10.0.0.2:80"}]
    outlier_detection:
      success_rate: {minimum_hosts: 3, request_volume: 20, stdev_factor: 1.2, interval: 2s}
  - name: off
    endpoints: [{url: "http://10.0.0.3:80"}]
`, nil)
	want := SuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1.9, Interval: Duration(10 * time.Second)}
	if sr := cfg.Services[0].OutlierDetection.SuccessRate; sr == nil || *sr != want {
		t.Errorf("success_rate defaults = %+v, want %+v", sr, want)
	}
	want = SuccessRate{MinimumHosts: 3, RequestVolume: 20, StdevFactor: 1.2, Interval: Duration(2 * time.Second)}
	if sr := cfg.Services[1].OutlierDetection.SuccessRate; sr == nil || *sr != want {
		t.Errorf("success_rate = %+v, want %+v", sr, want)
	}
	if sr := cfg.Services[2].OutlierDetection.SuccessRate; sr != nil {
		t.Errorf("success_rate is on without being configured: %+v", sr)
	}
	if cfg.Services[0].Fingerprint() == cfg.Services[2].Fingerprint() {
		t.Error("success_rate does not change the service fingerprint")
	}
}

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Decimal{"1.9": 1.9, " 2 ": 2, "0.5": 0.5, "1e1": 10, "-1": -1} {
		if got, err := ParseDecimal(in); err != nil || got != want {
			t.Errorf("ParseDecimal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "1.9x", "NaN", "Inf", "-inf", "1e999", "0x1p3", "1_0", "1,9"} {
		if got, err := ParseDecimal(in); err == nil {
			t.Errorf("ParseDecimal(%q) = %v, want an error", in, got)
		}
	}
}

// FuzzParseDecimal checks that ParseDecimal never panics and that what it
// accepts is finite and reads back the same.
func FuzzParseDecimal(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDecimal(s)
		if err != nil {
			return
		}
		x := float64(d)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("%q parsed to %v", s, x)
		}
		again, err := ParseDecimal(strconv.FormatFloat(x, 'g', -1, 64))
		if err != nil || again != d {
			t.Fatalf("%q: %v does not read back (%v, %v)", s, x, again, err)
		}
	})
}

func TestUpstreamValid(t *testing.T) {
	t.Parallel()
	mustParse(t, upstreamBase+`    load_balancer: {policy: consistent_hash, hash: {cookie: sid}}
    health_check: {protocol: grpc, grpc_service: shop.Orders, expected_statuses: ["204"]}
    outlier_detection: {enabled: false}
    circuit_breaker: {enabled: false}
    panic_threshold: 0
`+upstreamRoute+`    retry: {attempts: 1, on: []}
    propagate_deadline: false
`, nil)
}

func TestParseStatusRange(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]int{"200": {200, 200}, "200-299": {200, 299}, " 301 - 302 ": {301, 302}} {
		lo, hi, err := ParseStatusRange(in)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("%q = %d-%d, %v", in, lo, hi, err)
		}
	}
}
