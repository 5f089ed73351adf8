package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Resilience defaults documented on the configuration types.
const (
	DefaultBalancer             = "round_robin"
	DefaultHealthPath           = "/healthz"
	DefaultHealthInterval       = 10 * time.Second
	DefaultHealthTimeout        = 2 * time.Second
	DefaultHealthyThreshold     = 2
	DefaultUnhealthyThreshold   = 3
	DefaultHealthStatuses       = "200-399"
	DefaultConsecutiveFailures  = 5
	DefaultBaseEjectionTime     = 30 * time.Second
	DefaultMaxEjectionTime      = 300 * time.Second
	DefaultMaxEjectionPercent   = 50
	DefaultBreakerFailures      = 5
	DefaultBreakerOpenTime      = 10 * time.Second
	DefaultBreakerHalfOpen      = 1
	DefaultBreakerSuccesses     = 1
	DefaultPanicThreshold       = 50
	DefaultBudgetPercent        = 20
	DefaultBudgetMinPerSecond   = 3
	DefaultBudgetWindow         = 10 * time.Second
	DefaultRetryAttempts        = 2
	DefaultRetryBackoffBase     = 25 * time.Millisecond
	DefaultRetryBackoffMax      = 250 * time.Millisecond
	DefaultRetryMaxBufferBytes  = 64 << 10
	DefaultHedgePercentile      = 95
	MaxRetryAttempts            = 10
	DefaultHealthJitterFraction = 10

	DefaultSuccessRateMinimumHosts  = 5
	DefaultSuccessRateRequestVolume = 100
	DefaultSuccessRateStdevFactor   = 1.9
	DefaultSuccessRateInterval      = 10 * time.Second
	MinSuccessRateInterval          = 100 * time.Millisecond
)

// Balancers are the load_balancer.policy values.
var Balancers = []string{"round_robin", "least_request", "p2c", "consistent_hash", "random"}

// RetryConditions are the retry.on values.
var RetryConditions = []string{"connect-failure", "reset", "timeout", "502", "503", "504", "grpc-unavailable"}

// DefaultRetryOn returns the retry conditions used when retry.on is absent:
// all of them.
func DefaultRetryOn() []string { return append([]string(nil), RetryConditions...) }

// LoadBalancer chooses which endpoint of a service serves each request.
type LoadBalancer struct {
	// Policy is round_robin (smooth weighted), least_request (fewest
	// requests in flight), p2c (two random choices over latency and load),
	// consistent_hash (Maglev, on hash) or random. Default round_robin.
	Policy string `yaml:"policy" json:"policy,omitempty"`
	// Hash says what consistent_hash keys on. Default: the client IP (as
	// derived through trusted_proxies).
	Hash HashOn `yaml:"hash" json:"hash"`
}

// HashOn is the key of consistent hashing. At most one field is set; with
// neither, the client IP is the key.
type HashOn struct {
	// Header keys on the value of this request header.
	Header string `yaml:"header" json:"header,omitempty"`
	// Cookie keys on the value of this cookie.
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
}

// HealthCheck configures active health checks of a service's endpoints.
type HealthCheck struct {
	// Protocol is http (GET Path) or grpc (the gRPC health protocol).
	// Default http.
	Protocol string `yaml:"protocol" json:"protocol,omitempty"`
	// Path is the HTTP path probed. Default /healthz.
	Path string `yaml:"path" json:"path,omitempty"`
	// GRPCService is the service name a gRPC check asks about. Default ""
	// (the server as a whole).
	GRPCService string `yaml:"grpc_service" json:"grpc_service,omitempty"`
	// Host is the Host header of HTTP checks. Default: the endpoint's host.
	Host string `yaml:"host" json:"host,omitempty"`
	// Interval is the time between two checks of an endpoint. Default 10s.
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	// Timeout bounds one check; at most Interval. Default 2s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Jitter adds up to this much random delay to each interval, so checks
	// do not synchronize. Default: a tenth of Interval (1s).
	Jitter Duration `yaml:"jitter" json:"jitter,omitempty"`
	// HealthyThreshold marks an endpoint healthy after this many passed
	// checks in a row. Default 2.
	HealthyThreshold int `yaml:"healthy_threshold" json:"healthy_threshold,omitempty"`
	// UnhealthyThreshold marks an endpoint unhealthy after this many failed
	// checks in a row. Default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold,omitempty"`
	// ExpectedStatuses are the statuses that pass, each a code ("204") or
	// an inclusive range ("200-299"). Default ["200-399"].
	ExpectedStatuses []string `yaml:"expected_statuses" json:"expected_statuses,omitempty"`
}

// OutlierDetection ejects endpoints whose requests keep failing.
type OutlierDetection struct {
	// Enabled turns outlier detection on. Default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// ConsecutiveFailures ejects an endpoint after this many failures in a
	// row (no response, or a 5xx response). Default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures" json:"consecutive_failures,omitempty"`
	// BaseEjectionTime is the first ejection's length; the n-th ejection in
	// a row lasts n times as long. Default 30s.
	BaseEjectionTime Duration `yaml:"base_ejection_time" json:"base_ejection_time,omitempty"`
	// MaxEjectionTime caps one ejection. Default 300s.
	MaxEjectionTime Duration `yaml:"max_ejection_time" json:"max_ejection_time,omitempty"`
	// MaxEjectionPercent caps the share of endpoints ejected at once; one
	// endpoint may always be ejected. Default 50.
	MaxEjectionPercent int `yaml:"max_ejection_percent" json:"max_ejection_percent,omitempty"`
	// SuccessRate also ejects endpoints whose success rate falls well below
	// the other endpoints'. Default: off.
	SuccessRate *SuccessRate `yaml:"success_rate" json:"success_rate,omitempty"`
}

// SuccessRate ejects, once per Interval, the endpoints whose success rate
// in the interval is below mean − StdevFactor × standard deviation of the
// endpoints that served at least RequestVolume requests, when at least
// MinimumHosts did. Ejections follow the outlier detection's ejection times
// and max_ejection_percent.
type SuccessRate struct {
	// MinimumHosts is the fewest endpoints with RequestVolume requests in an
	// interval for the evaluation to take place; at least 2. Default 5.
	MinimumHosts int `yaml:"minimum_hosts" json:"minimum_hosts,omitempty"`
	// RequestVolume is the fewest requests an endpoint must have served in
	// the interval to take part. Default 100.
	RequestVolume int `yaml:"request_volume" json:"request_volume,omitempty"`
	// StdevFactor is how many standard deviations below the mean a success
	// rate must fall to be ejected. Default 1.9.
	StdevFactor Decimal `yaml:"stdev_factor" json:"stdev_factor,omitempty"`
	// Interval is the time between evaluations; requests are counted per
	// interval. At least 100ms. Default 10s.
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
}

// Decimal is a finite number written in decimal notation, such as 1.9.
type Decimal float64

// ParseDecimal parses a finite decimal number such as "1.9" or "2".
func ParseDecimal(s string) (Decimal, error) {
	t := strings.TrimSpace(s)
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || strings.ContainsAny(t, "xXpP_") {
		return 0, errors.New("invalid number " + strconv.Quote(s) + ": write a decimal such as 1.9")
	}
	return Decimal(f), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Decimal) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDecimal(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// CircuitBreaker configures the breaker of each endpoint and the service's
// concurrency limits.
type CircuitBreaker struct {
	// Enabled turns the per-endpoint breakers on. Default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// FailureThreshold opens an endpoint's breaker after this many requests
	// in a row got no response. Default 5.
	FailureThreshold int `yaml:"failure_threshold" json:"failure_threshold,omitempty"`
	// OpenTime is how long an open breaker refuses requests before letting
	// probes through. Default 10s.
	OpenTime Duration `yaml:"open_time" json:"open_time,omitempty"`
	// HalfOpenRequests is how many probes a half-open breaker lets through
	// at once. Default 1.
	HalfOpenRequests int `yaml:"half_open_requests" json:"half_open_requests,omitempty"`
	// SuccessThreshold closes a half-open breaker after this many
	// successful probes. Default 1.
	SuccessThreshold int `yaml:"success_threshold" json:"success_threshold,omitempty"`
	// MaxRequests caps the service's requests in flight; beyond it clients
	// get 503 at once. Default 0, no cap.
	MaxRequests int `yaml:"max_requests" json:"max_requests,omitempty"`
	// MaxPendingRetries caps the service's retries and hedges in flight.
	// Default 0, no cap (the retry budget still applies).
	MaxPendingRetries int `yaml:"max_pending_retries" json:"max_pending_retries,omitempty"`
}

// RetryBudget caps a service's retries as a share of its requests.
type RetryBudget struct {
	// Percent of requests that may be retried (or hedged) over Window,
	// 1 to 100. Default 20.
	Percent int `yaml:"percent" json:"percent,omitempty"`
	// MinPerSecond lets a quiet service retry this many requests per second
	// of Window even when Percent of its requests is fewer. Default 3.
	MinPerSecond int `yaml:"min_per_second" json:"min_per_second,omitempty"`
	// Window is the sliding window counted over, 1s to 60s. Default 10s.
	Window Duration `yaml:"window" json:"window,omitempty"`
}

// Retry says which failed attempts of a route are sent again, to another
// endpoint. Only requests that are safe to repeat are retried: idempotent
// methods (GET, HEAD, OPTIONS, PUT, DELETE), requests with an
// Idempotency-Key header, and any request whose connection could not be
// established (nothing was sent).
type Retry struct {
	// Attempts is the most attempts per request, the first included; 1
	// disables retries. At most 10. Default 2.
	Attempts int `yaml:"attempts" json:"attempts,omitempty"`
	// PerTryTimeout bounds each attempt's wait for response headers; the
	// route's timeout bounds all attempts together. Default: none (an
	// attempt may use what is left of the route's timeout).
	PerTryTimeout Duration `yaml:"per_try_timeout" json:"per_try_timeout,omitempty"`
	// On lists the retried conditions: connect-failure, reset, timeout
	// (the per-try timeout), 502, 503, 504, grpc-unavailable. Default: all.
	On []string `yaml:"on" json:"on,omitempty"`
	// BackoffBase is the first retry's maximum wait; it doubles per retry
	// up to BackoffMax, and the wait is random below it. Default 25ms.
	BackoffBase Duration `yaml:"backoff_base" json:"backoff_base,omitempty"`
	// BackoffMax caps the wait before a retry. Default 250ms.
	BackoffMax Duration `yaml:"backoff_max" json:"backoff_max,omitempty"`
	// MaxBufferBytes is the largest request body kept so it can be sent
	// again. Default 64KiB.
	MaxBufferBytes ByteSize `yaml:"max_buffer_bytes" json:"max_buffer_bytes,omitempty"`
	// AssumeIdempotent treats every request of the route as safe to repeat
	// (for example a read-only gRPC service). Default false.
	AssumeIdempotent bool `yaml:"assume_idempotent" json:"assume_idempotent,omitempty"`
}

// Hedge sends a second attempt of a slow idempotent request to another
// endpoint and relays whichever answers first.
type Hedge struct {
	// Delay is how long the first attempt may take before the hedge is
	// sent. Default: the Percentile of the route's recent latencies.
	Delay Duration `yaml:"delay" json:"delay,omitempty"`
	// Percentile of recent latencies used when Delay is not set, 1 to 99.
	// Default 95.
	Percentile int `yaml:"percentile" json:"percentile,omitempty"`
}

// IsEnabled reports whether outlier detection is on; unset means on.
func (o OutlierDetection) IsEnabled() bool { return o.Enabled == nil || *o.Enabled }

// IsEnabled reports whether the breakers are on; unset means on.
func (b CircuitBreaker) IsEnabled() bool { return b.Enabled == nil || *b.Enabled }

// DeadlinePropagated reports whether the route sends its deadline upstream;
// unset means it does.
func (r Route) DeadlinePropagated() bool { return r.PropagateDeadline == nil || *r.PropagateDeadline }

func (c *Config) applyUpstreamDefaults() {
	for i := range c.Services {
		s := &c.Services[i]
		setDefault(&s.LoadBalancer.Policy, DefaultBalancer)
		if h := s.HealthCheck; h != nil {
			setDefault(&h.Protocol, "http")
			if h.Protocol == "http" {
				setDefault(&h.Path, DefaultHealthPath)
			}
			setDefault(&h.Interval, Duration(DefaultHealthInterval))
			setDefault(&h.Timeout, Duration(min(DefaultHealthTimeout, h.Interval.D())))
			setDefault(&h.Jitter, Duration(h.Interval.D()/DefaultHealthJitterFraction))
			setDefault(&h.HealthyThreshold, DefaultHealthyThreshold)
			setDefault(&h.UnhealthyThreshold, DefaultUnhealthyThreshold)
			if len(h.ExpectedStatuses) == 0 {
				h.ExpectedStatuses = []string{DefaultHealthStatuses}
			}
		}
		o := &s.OutlierDetection
		if o.Enabled == nil {
			o.Enabled = ptr(true)
		}
		setDefault(&o.ConsecutiveFailures, DefaultConsecutiveFailures)
		setDefault(&o.BaseEjectionTime, Duration(DefaultBaseEjectionTime))
		setDefault(&o.MaxEjectionTime, Duration(max(DefaultMaxEjectionTime, o.BaseEjectionTime.D())))
		setDefault(&o.MaxEjectionPercent, DefaultMaxEjectionPercent)
		if sr := o.SuccessRate; sr != nil {
			setDefault(&sr.MinimumHosts, DefaultSuccessRateMinimumHosts)
			setDefault(&sr.RequestVolume, DefaultSuccessRateRequestVolume)
			setDefault(&sr.StdevFactor, DefaultSuccessRateStdevFactor)
			setDefault(&sr.Interval, Duration(DefaultSuccessRateInterval))
		}
		b := &s.CircuitBreaker
		if b.Enabled == nil {
			b.Enabled = ptr(true)
		}
		setDefault(&b.FailureThreshold, DefaultBreakerFailures)
		setDefault(&b.OpenTime, Duration(DefaultBreakerOpenTime))
		setDefault(&b.HalfOpenRequests, DefaultBreakerHalfOpen)
		setDefault(&b.SuccessThreshold, DefaultBreakerSuccesses)
		if s.PanicThreshold == nil {
			s.PanicThreshold = ptr(DefaultPanicThreshold)
		}
		rb := &s.RetryBudget
		setDefault(&rb.Percent, DefaultBudgetPercent)
		setDefault(&rb.MinPerSecond, DefaultBudgetMinPerSecond)
		setDefault(&rb.Window, Duration(DefaultBudgetWindow))
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		rt := &r.Retry
		setDefault(&rt.Attempts, DefaultRetryAttempts)
		if rt.On == nil {
			rt.On = DefaultRetryOn()
		}
		setDefault(&rt.BackoffBase, Duration(DefaultRetryBackoffBase))
		setDefault(&rt.BackoffMax, Duration(max(DefaultRetryBackoffMax, rt.BackoffBase.D())))
		setDefault(&rt.MaxBufferBytes, DefaultRetryMaxBufferBytes)
		if h := r.Hedge; h != nil {
			setDefault(&h.Percentile, DefaultHedgePercentile)
		}
		if r.PropagateDeadline == nil {
			r.PropagateDeadline = ptr(true)
		}
	}
}
