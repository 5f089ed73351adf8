package gateway

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	inFlight        prometheus.Gauge
	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	lastReloadTime  prometheus.Gauge
	configVersion   prometheus.Gauge
	accessLogDrops  prometheus.Counter
	rejectedTargets prometheus.Counter
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
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portico_requests_in_flight", Help: "Requests being served.",
		}),
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
		m.inFlight, m.reloads, m.lastReloadOK, m.lastReloadTime, m.configVersion, m.accessLogDrops, m.rejectedTargets)
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

// forgetRoute drops the series of a route that left the configuration or
// now forwards to another service.
func (m *Metrics) forgetRoute(route, service string) {
	l := prometheus.Labels{"route": route, "service": service}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.bytesIn.DeletePartialMatch(l)
	m.bytesOut.DeletePartialMatch(l)
	m.grpcResponses.DeletePartialMatch(l)
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
