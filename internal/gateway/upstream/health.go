package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Active health check defaults, used when a HealthCheck field is zero.
const (
	DefaultHealthPath         = "/healthz"
	DefaultHealthInterval     = 10 * time.Second
	DefaultHealthTimeout      = 2 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
)

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// HealthCheck configures active health checks: each endpoint is probed on
// its own schedule and marked unhealthy after UnhealthyThreshold failed
// checks in a row, healthy again after HealthyThreshold passed ones.
// Endpoints start healthy, so a new pool serves at once.
type HealthCheck struct {
	// Path is the HTTP path probed with GET. Default "/healthz". Ignored
	// for gRPC checks.
	Path string
	// GRPC probes with the gRPC health protocol
	// (grpc.health.v1.Health/Check) instead of an HTTP GET; the endpoint
	// passes when it reports SERVING.
	GRPC bool
	// GRPCService is the service name sent in a gRPC check. Default "", the
	// server as a whole.
	GRPCService string
	// Host is the Host header of HTTP checks. Default: the endpoint's host.
	Host string
	// Interval is the time between two checks of one endpoint. Default 10s.
	Interval time.Duration
	// Timeout bounds one check. Default 2s.
	Timeout time.Duration
	// Jitter adds a random delay of up to this much to every interval, so
	// checks of many endpoints and gateways do not synchronize. Default
	// Interval/10.
	Jitter time.Duration
	// HealthyThreshold marks an unhealthy endpoint healthy after this many
	// passed checks in a row. Default 2.
	HealthyThreshold int
	// UnhealthyThreshold marks a healthy endpoint unhealthy after this many
	// failed checks in a row. Default 3.
	UnhealthyThreshold int
	// Statuses are the HTTP statuses that pass. Default 200-399.
	Statuses []StatusRange
}

func (h HealthCheck) withDefaults() HealthCheck {
	if h.Path == "" {
		h.Path = DefaultHealthPath
	}
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = min(DefaultHealthTimeout, h.Interval)
	}
	if h.Jitter == 0 {
		h.Jitter = h.Interval / 10
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if len(h.Statuses) == 0 {
		h.Statuses = []StatusRange{{200, 399}}
	}
	return h
}

func (h *HealthCheck) validate() error {
	switch {
	case h.Interval < 0 || h.Timeout < 0 || h.Jitter < 0:
		return errors.New("health check: times must not be negative")
	case h.HealthyThreshold < 0 || h.UnhealthyThreshold < 0:
		return errors.New("health check: thresholds must not be negative")
	case h.Path != "" && !strings.HasPrefix(h.Path, "/"):
		return fmt.Errorf("health check: path %q must start with /", h.Path)
	}
	for _, r := range h.Statuses {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			return fmt.Errorf("health check: invalid status range %d-%d", r.Min, r.Max)
		}
	}
	return nil
}

func sameHealth(a, b *HealthCheck) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Path == b.Path && a.GRPC == b.GRPC && a.GRPCService == b.GRPCService && a.Host == b.Host &&
		a.Interval == b.Interval && a.Timeout == b.Timeout && a.Jitter == b.Jitter &&
		a.HealthyThreshold == b.HealthyThreshold && a.UnhealthyThreshold == b.UnhealthyThreshold &&
		slices.Equal(a.Statuses, b.Statuses)
}

// healthState is an endpoint's run of check results, guarded by Endpoint.mu.
type healthState struct {
	passed, failed int
	lastErr        string
}

// startChecker runs e's health checks until stopChecker or Close. The
// caller holds p.mu.
func (p *Pool) startChecker(e *Endpoint, hc *HealthCheck) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopHealth != nil {
		return
	}
	stop := make(chan struct{})
	e.stopHealth = func() { close(stop) }
	go p.runChecks(e, hc, stop)
}

// stopChecker stops e's health checks. The caller holds p.mu.
func (p *Pool) stopChecker(e *Endpoint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopHealth != nil {
		e.stopHealth()
		e.stopHealth = nil
		e.health = healthState{}
	}
}

func (p *Pool) runChecks(e *Endpoint, hc *HealthCheck, stop chan struct{}) {
	// The first check comes after a random part of one interval, so the
	// endpoints of a pool (and pools of many gateways) spread out.
	t := time.NewTimer(rand.N(hc.Interval) + 1)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-p.hcStop:
			return
		case <-t.C:
		}
		err := p.check(e, hc, stop)
		if !p.recordCheck(e, hc, stop, err) {
			return
		}
		next := hc.Interval
		if hc.Jitter > 0 {
			next += rand.N(hc.Jitter)
		}
		t.Reset(next)
	}
}

// recordCheck records one check result. It drops the result, and reports
// false, once the checker was stopped or the pool closed: a check that was
// running then speaks for a configuration or a pool that is gone. Both are
// decided under p.mu, so no result lands after Close or stopChecker
// returned.
func (p *Pool) recordCheck(e *Endpoint, hc *HealthCheck, stop chan struct{}, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	select {
	case <-stop:
		return false
	default:
	}
	e.mu.Lock()
	h := &e.health
	if err == nil {
		h.passed++
		h.failed = 0
		h.lastErr = ""
	} else {
		h.failed++
		h.passed = 0
		h.lastErr = err.Error()
	}
	flip := (err == nil && h.passed == hc.HealthyThreshold) || (err != nil && h.failed == hc.UnhealthyThreshold)
	e.mu.Unlock()
	if flip {
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		p.setHealthy(e, err == nil, reason)
	}
	return true
}

// setHealthy records the health verdict. The caller holds p.mu.
func (p *Pool) setHealthy(e *Endpoint, healthy bool, reason string) {
	if !e.setFlag(flagUnhealthy, !healthy) {
		return
	}
	if healthy {
		p.log.Info("endpoint health changed", "service", p.name, "endpoint", e.URL.Host, "healthy", true)
	} else {
		p.log.Warn("endpoint health changed", "service", p.name, "endpoint", e.URL.Host, "healthy", false, "reason", reason)
	}
	p.recount()
}

// maxHealthBody bounds how much of a check's response is read.
const maxHealthBody = 64 << 10

// check probes e once. The check is canceled when its checker stops or
// the pool closes.
func (p *Pool) check(e *Endpoint, hc *HealthCheck, stop chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), hc.Timeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-p.hcStop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := healthRequest(ctx, e, hc)
	if err != nil {
		return err
	}
	res, err := p.RoundTrip(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("health check timed out after %s", hc.Timeout)
		}
		return fmt.Errorf("health check failed: %w", unwrapURL(err))
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxHealthBody))
	if err != nil {
		return fmt.Errorf("health check body: %w", err)
	}
	if hc.GRPC {
		return grpcHealthVerdict(res, body)
	}
	for _, r := range hc.Statuses {
		if res.StatusCode >= r.Min && res.StatusCode <= r.Max {
			return nil
		}
	}
	return fmt.Errorf("health check status %d", res.StatusCode)
}

// unwrapURL drops the request URL a *url.Error adds to a transport error.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// healthRequest builds the probe request for e.
func healthRequest(ctx context.Context, e *Endpoint, hc *HealthCheck) (*http.Request, error) {
	u := *e.URL
	if u.Scheme == "h2c" {
		u.Scheme = "http"
	}
	base := strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	if hc.GRPC {
		u.Path = base + "/grpc.health.v1.Health/Check"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(grpcHealthRequest(hc.GRPCService)))
		if err != nil {
			return nil, err
		}
		req.Header["Content-Type"] = []string{"application/grpc"}
		req.Header["Te"] = []string{"trailers"}
		req.Header["User-Agent"] = []string{"portico-health-check"}
		return req, nil
	}
	path, query, _ := strings.Cut(hc.Path, "?")
	u.Path, u.RawQuery = base+path, query
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if hc.Host != "" {
		req.Host = hc.Host
	}
	req.Header["User-Agent"] = []string{"portico-health-check"}
	return req, nil
}

// grpcHealthRequest frames a grpc.health.v1.HealthCheckRequest.
func grpcHealthRequest(service string) []byte {
	msg := []byte{}
	if service != "" {
		msg = append(msg, 0x0a) // field 1, length-delimited
		msg = appendVarint(msg, uint64(len(service)))
		msg = append(msg, service...)
	}
	frame := make([]byte, 5, 5+len(msg))
	frame[1], frame[2], frame[3], frame[4] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
	return append(frame, msg...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// grpcServing is HealthCheckResponse.ServingStatus SERVING.
const grpcServing = 1

func grpcHealthVerdict(res *http.Response, body []byte) error {
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("gRPC health check HTTP status %d", res.StatusCode)
	}
	code := res.Trailer.Get("Grpc-Status")
	if code == "" {
		code = res.Header.Get("Grpc-Status")
	}
	if code != "0" {
		if _, err := strconv.Atoi(code); err != nil {
			code = strconv.Quote(code)
		}
		return fmt.Errorf("gRPC health check grpc-status %s", code)
	}
	status, err := ParseGRPCHealthResponse(body)
	if err != nil {
		return err
	}
	if status != grpcServing {
		return fmt.Errorf("gRPC health check status %d, not SERVING", status)
	}
	return nil
}

// ParseGRPCHealthResponse reads the serving status out of one framed
// grpc.health.v1.HealthCheckResponse (a 5-byte gRPC frame header and the
// protobuf message). Unknown fields are skipped; compressed frames are
// refused.
func ParseGRPCHealthResponse(b []byte) (int, error) {
	if len(b) < 5 {
		return 0, errors.New("gRPC health response: short frame")
	}
	if b[0] != 0 {
		return 0, errors.New("gRPC health response: compressed frames are not supported")
	}
	n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
	if n < 0 || n > len(b)-5 {
		return 0, errors.New("gRPC health response: truncated frame")
	}
	msg := b[5 : 5+n]
	status := 0
	for len(msg) > 0 {
		key, k := readVarint(msg)
		if k <= 0 {
			return 0, errors.New("gRPC health response: bad field key")
		}
		msg = msg[k:]
		field, wire := key>>3, key&7
		switch wire {
		case 0:
			v, k := readVarint(msg)
			if k <= 0 {
				return 0, errors.New("gRPC health response: bad varint")
			}
			msg = msg[k:]
			if field == 1 {
				status = int(v & 0x7fffffff)
			}
		case 1:
			if len(msg) < 8 {
				return 0, errors.New("gRPC health response: truncated field")
			}
			msg = msg[8:]
		case 2:
			l, k := readVarint(msg)
			if k <= 0 || l > uint64(len(msg)-k) {
				return 0, errors.New("gRPC health response: truncated field")
			}
			msg = msg[k+int(l):]
		case 5:
			if len(msg) < 4 {
				return 0, errors.New("gRPC health response: truncated field")
			}
			msg = msg[4:]
		default:
			return 0, fmt.Errorf("gRPC health response: unsupported wire type %d", wire)
		}
	}
	return status, nil
}

// readVarint decodes a protobuf varint; it returns 0 bytes read on error.
func readVarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
