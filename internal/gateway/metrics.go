package gateway

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/portico-dev/portico/internal/gateway/policy/ratelimit"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// Metrics are the gateway's Prometheus collectors. Labels carry only bounded
// values: route and service names from the configuration, a fixed set of
// methods, status classes and gRPC codes; never a raw path or client address.
type Metrics struct {
	Registry *prometheus.Registry

	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	upstreamDur     *prometheus.HistogramVec
	bytesIn         *prometheus.CounterVec
	bytesOut        *prometheus.CounterVec
	grpcResponses   *prometheus.CounterVec
	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	lastReloadTime  prometheus.Gauge
	configVersion   prometheus.Gauge
	accessLogDrops  prometheus.Counter
	rejectedTargets prometheus.Counter

	// Rate limiting, IP filters and CORS.
	rateLimited      *prometheus.CounterVec
	rateLimitErrors  *prometheus.CounterVec
	rateLimitBreaker prometheus.Gauge
	ipDenied         *prometheus.CounterVec
	corsRejected     *prometheus.CounterVec

	// mirrored counts mirrored copies by route and result.
	mirrored *prometheus.CounterVec

	// inFlight counts requests being served; portico_requests_in_flight
	// reads it at scrape time, so the request path pays one atomic add
	// instead of a compare-and-swap loop on a float.
	inFlight atomic.Int64
}

// NewMetrics registers the gateway's collectors, plus the Go runtime and
// process collectors, on a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	durBuckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_requests_total", Help: "Requests answered, by route, service, method and status class.",
		}, []string{"route", "service", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portico_request_duration_seconds", Help: "Time from accepting a request to the end of its response.", Buckets: durBuckets,
		}, []string{"route", "service"}),
		upstreamDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portico_upstream_duration_seconds", Help: "Time from sending a request upstream to receiving its response headers.", Buckets: durBuckets,
		}, []string{"service"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_request_body_bytes_total", Help: "Request body bytes received from clients.",
		}, []string{"route", "service"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_response_body_bytes_total", Help: "Response body bytes sent to clients.",
		}, []string{"route", "service"}),
		grpcResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_grpc_responses_total", Help: "gRPC responses by grpc-status code.",
		}, []string{"route", "service", "grpc_code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portico_config_reloads_total", Help: "Configuration reload attempts by result.",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_config_last_reload_successful", Help: "1 if the last reload attempt succeeded, 0 if it was rejected.",
		}),
		lastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_config_last_reload_success_timestamp_seconds", Help: "When the serving configuration was loaded.",
		}),
		configVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_config_version", Help: "Sequence number of the serving configuration snapshot.",
		}),
		accessLogDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portico_access_log_dropped_total", Help: "Access log lines dropped because the writer fell behind.",
		}),
		rejectedTargets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portico_rejected_request_targets_total", Help: "Requests refused with 400 because their path was ambiguous.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.upstreamDur, m.bytesIn, m.bytesOut, m.grpcResponses,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portico_requests_in_flight", Help: "Requests being served.",
		}, func() float64 { return float64(m.inFlight.Load()) }),
		m.reloads, m.lastReloadOK, m.lastReloadTime, m.configVersion, m.accessLogDrops, m.rejectedTargets)
	m.registerLimitMetrics()
	m.mirrored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_mirror_requests_total",
		Help: "Copies of requests for a route's mirror, by result: sent, dropped (mirror in-flight cap reached), skipped (body over max_body_bytes), failed (no response or 5xx from the shadow).",
	}, []string{"route", "result"})
	m.Registry.MustRegister(m.mirrored)
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	return m
}

// Reloaded records a reload attempt.
func (m *Metrics) Reloaded(ok bool, version int64) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReloadOK.Set(1)
		m.lastReloadTime.Set(float64(time.Now().UnixNano()) / 1e9)
		m.configVersion.Set(float64(version))
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
	m.lastReloadOK.Set(0)
}

// forgetRoute drops the series of a route that now forwards to another
// service or, when removed is set, left the configuration.
func (m *Metrics) forgetRoute(route, service string, removed bool) {
	l := prometheus.Labels{"route": route, "service": service}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.bytesIn.DeletePartialMatch(l)
	m.bytesOut.DeletePartialMatch(l)
	m.grpcResponses.DeletePartialMatch(l)
	if removed {
		rl := prometheus.Labels{"route": route}
		m.rateLimited.DeletePartialMatch(rl)
		m.ipDenied.DeletePartialMatch(rl)
		m.corsRejected.DeletePartialMatch(rl)
	}
}

// methods are the method label values; anything else is "OTHER".
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodDelete:
		return 4
	case http.MethodPatch:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodConnect:
		return 7
	case http.MethodTrace:
		return 8
	}
	return 9
}

// grpcCodes are the grpc_code label values: the codes 0-16 and "other".
var grpcCodes = [18]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "other"}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	c := status/100 - 1
	if c < 0 || c > 4 {
		return 4
	}
	return c
}

// routeMetrics holds one route's label children, resolved on first use so
// that recording a request takes no map lookup and creates no series that
// never happen.
type routeMetrics struct {
	m              *Metrics
	route, service string

	requests [len(methods)][len(codeClasses)]atomic.Pointer[prometheus.Counter]
	grpc     [18]atomic.Pointer[prometheus.Counter] // codes 0-16 and "other"
	duration prometheus.Observer
	upstream prometheus.Observer
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
}

func (m *Metrics) forRoute(route, service string) *routeMetrics {
	rm := &routeMetrics{m: m, route: route, service: service}
	rm.duration = m.duration.WithLabelValues(route, service)
	rm.bytesIn = m.bytesIn.WithLabelValues(route, service)
	rm.bytesOut = m.bytesOut.WithLabelValues(route, service)
	if service != "" {
		rm.upstream = m.upstreamDur.WithLabelValues(service)
	}
	return rm
}

func (rm *routeMetrics) observe(method string, status int, d, upstream time.Duration, in, out int64, grpcStatus string) {
	mi, ci := methodIndex(method), classIndex(status)
	slot := &rm.requests[mi][ci]
	c := slot.Load()
	if c == nil {
		nc := rm.m.requests.WithLabelValues(rm.route, rm.service, methods[mi], codeClasses[ci])
		slot.Store(&nc)
		c = &nc
	}
	(*c).Inc()
	rm.duration.Observe(d.Seconds())
	if upstream > 0 && rm.upstream != nil {
		rm.upstream.Observe(upstream.Seconds())
	}
	if in > 0 {
		rm.bytesIn.Add(float64(in))
	}
	if out > 0 {
		rm.bytesOut.Add(float64(out))
	}
	if grpcStatus != "" {
		rm.observeGRPC(grpcStatus)
	}
}

func (rm *routeMetrics) observeGRPC(status string) {
	code, err := strconv.Atoi(status)
	if err != nil || code < 0 || code > 16 {
		code = 17
	}
	label := grpcCodes[code]
	slot := &rm.grpc[code]
	c := slot.Load()
	if c == nil {
		nc := rm.m.grpcResponses.WithLabelValues(rm.route, rm.service, label)
		slot.Store(&nc)
		c = &nc
	}
	(*c).Inc()
}

func (m *Metrics) registerLimitMetrics() {
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_rate_limited_requests_total", Help: "Requests refused with 429 by a rate limit or quota, by route and limit name.",
	}, []string{"route", "limit"})
	m.rateLimitErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_rate_limit_store_errors_total", Help: "Rate-limit checks Redis could not answer, by the failure mode applied (fail_open, fail_closed).",
	}, []string{"outcome"})
	m.rateLimitBreaker = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portico_rate_limit_redis_breaker_open", Help: "1 while the Redis circuit breaker is open and checks use the failure mode without trying Redis.",
	})
	m.ipDenied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_ip_filter_denied_total", Help: "Requests refused with 403 by a route's IP allow or deny list, by route.",
	}, []string{"route"})
	m.corsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_cors_preflight_rejected_total", Help: "CORS preflight requests refused with 403, by route.",
	}, []string{"route"})
	m.Registry.MustRegister(m.rateLimited, m.rateLimitErrors, m.rateLimitBreaker, m.ipDenied, m.corsRejected)
	m.rateLimitErrors.WithLabelValues("fail_open")
	m.rateLimitErrors.WithLabelValues("fail_closed")
}

// rateLimitMetrics returns the collectors the rate_limit policy updates.
func (m *Metrics) rateLimitMetrics() ratelimit.Metrics {
	return ratelimit.Metrics{Limited: m.rateLimited, StoreErrors: m.rateLimitErrors, BreakerOpen: m.rateLimitBreaker}
}

// upstreamCollector exports the live state of the serving snapshot's pools
// at scrape time: the pools count on their own, so the request path pays
// nothing for these series. Labels are the service name and the endpoint
// address, both from the configuration or discovery.
type upstreamCollector struct {
	pools func() map[string]*upstream.Pool

	attempts, retries, denied, hedges, overflows, panics *prometheus.Desc
	panicking, available, endpoints                      *prometheus.Desc
	endpointUp, ejections, transitions, inFlight         *prometheus.Desc
}

// watchUpstreams registers the collector of pool metrics; pools returns the
// serving pools by service name.
func (m *Metrics) watchUpstreams(pools func() map[string]*upstream.Pool) {
	svc := []string{"service"}
	ep := []string{"service", "endpoint"}
	d := prometheus.NewDesc
	m.Registry.MustRegister(&upstreamCollector{
		pools:       pools,
		attempts:    d("portico_upstream_attempts_total", "Requests sent to endpoints, retries and hedges included.", svc, nil),
		retries:     d("portico_upstream_retries_total", "Retries sent after a failed attempt.", svc, nil),
		denied:      d("portico_upstream_retries_denied_total", "Retries and hedges refused by the retry budget or the pending retry limit.", svc, nil),
		hedges:      d("portico_upstream_hedges_total", "Hedged requests sent.", svc, nil),
		overflows:   d("portico_upstream_overflows_total", "Requests refused with 503 because the service had max_requests in flight.", svc, nil),
		panics:      d("portico_upstream_panic_mode_entered_total", "Times the pool entered panic mode.", svc, nil),
		panicking:   d("portico_upstream_panic_mode", "1 while too few endpoints are available and the pool routes to all of them.", svc, nil),
		available:   d("portico_upstream_endpoints_available", "Endpoints taking new requests.", svc, nil),
		endpoints:   d("portico_upstream_endpoints", "Endpoints in the pool.", svc, nil),
		endpointUp:  d("portico_upstream_endpoint_available", "1 if the endpoint takes new requests (healthy, not ejected, breaker not open, not draining).", ep, nil),
		ejections:   d("portico_upstream_ejections_total", "Outlier ejections of the endpoint.", ep, nil),
		transitions: d("portico_upstream_breaker_transitions_total", "Circuit breaker transitions of the endpoint, by the state entered.", append(ep, "state"), nil),
		inFlight:    d("portico_upstream_endpoint_in_flight", "Requests the endpoint is serving.", ep, nil),
	})
}

// Describe implements prometheus.Collector.
func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.attempts, c.retries, c.denied, c.hedges, c.overflows, c.panics,
		c.panicking, c.available, c.endpoints, c.endpointUp, c.ejections, c.transitions, c.inFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for name, p := range c.pools() {
		st := p.Stats()
		counter(c.attempts, st.Attempts.Load(), name)
		counter(c.retries, st.Retries.Load(), name)
		counter(c.denied, st.RetriesDenied.Load(), name)
		counter(c.hedges, st.Hedges.Load(), name)
		counter(c.overflows, st.Overflows.Load(), name)
		counter(c.panics, st.PanicEntered.Load(), name)
		gauge(c.panicking, b2f(p.Panicking()), name)
		gauge(c.available, float64(p.Available()), name)
		eps := p.Endpoints()
		gauge(c.endpoints, float64(len(eps)), name)
		for _, e := range eps {
			addr := e.URL.Host
			gauge(c.endpointUp, b2f(e.Available()), name, addr)
			gauge(c.inFlight, float64(e.InFlight()), name, addr)
			counter(c.ejections, e.Status().Ejections, name, addr)
			closed, open, half := e.BreakerTransitions()
			counter(c.transitions, closed, name, addr, "closed")
			counter(c.transitions, open, name, addr, "open")
			counter(c.transitions, half, name, addr, "half-open")
		}
	}
}

// mirrorMetrics are one route's mirror counters, resolved once per route.
type mirrorMetrics struct {
	sent, dropped, skipped, failed prometheus.Counter
}

// forMirror returns the mirror counters of a route.
func (m *Metrics) forMirror(route string) *mirrorMetrics {
	return &mirrorMetrics{
		sent:    m.mirrored.WithLabelValues(route, "sent"),
		dropped: m.mirrored.WithLabelValues(route, "dropped"),
		skipped: m.mirrored.WithLabelValues(route, "skipped"),
		failed:  m.mirrored.WithLabelValues(route, "failed"),
	}
}
