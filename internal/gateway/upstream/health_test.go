package upstream

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

func TestActiveHealthChecks(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	healthy.Store(true)
	var checks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base/ready" || r.URL.RawQuery != "deep=1" || r.Host != "svc.internal" {
			t.Errorf("check request %s %s host %s", r.URL.Path, r.URL.RawQuery, r.Host)
		}
		checks.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/base")
	e := &Endpoint{URL: u}
	hc := &HealthCheck{Path: "/ready?deep=1", Host: "svc.internal", Interval: 10 * time.Millisecond,
		Jitter: time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2}
	p := newTestPool(t, Config{HealthCheck: hc}, []*Endpoint{e})
	waitUntil(t, 2*time.Second, func() bool { return checks.Load() >= 3 })
	if !e.Available() {
		t.Fatal("healthy endpoint marked down")
	}
	healthy.Store(false)
	waitUntil(t, 2*time.Second, func() bool { return !e.Status().Healthy })
	if e.Status().HealthError == "" {
		t.Error("no health error recorded")
	}
	healthy.Store(true)
	waitUntil(t, 2*time.Second, func() bool { return e.Available() })

	// Close stops the checks.
	p.Close()
	time.Sleep(30 * time.Millisecond)
	n := checks.Load()
	time.Sleep(50 * time.Millisecond)
	if checks.Load() > n {
		t.Error("checks continue after Close")
	}
}

// TestHealthCheckLeaverStops: an endpoint that leaves the set is no longer
// checked.
func TestHealthCheckLeaverStops(t *testing.T) {
	t.Parallel()
	var checks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { checks.Add(1) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	p := newTestPool(t, Config{HealthCheck: &HealthCheck{Interval: 10 * time.Millisecond}}, []*Endpoint{{URL: u}})
	waitUntil(t, 2*time.Second, func() bool { return checks.Load() > 0 })
	p.Update(nil)
	time.Sleep(30 * time.Millisecond)
	n := checks.Load()
	time.Sleep(50 * time.Millisecond)
	if checks.Load() > n {
		t.Error("a removed endpoint is still checked")
	}
}

func TestGRPCHealthMessages(t *testing.T) {
	t.Parallel()
	req := grpcHealthRequest("shop.v1.Orders")
	if len(req) != 5+2+len("shop.v1.Orders") || req[5] != 0x0a || int(req[4]) != len(req)-5 {
		t.Errorf("request frame % x", req)
	}
	for _, tc := range []struct {
		name   string
		in     []byte
		status int
		ok     bool
	}{
		{"serving", []byte{0, 0, 0, 0, 2, 0x08, 0x01}, 1, true},
		{"not serving", []byte{0, 0, 0, 0, 2, 0x08, 0x02}, 2, true},
		{"empty message", []byte{0, 0, 0, 0, 0}, 0, true},
		{"unknown field first", []byte{0, 0, 0, 0, 6, 0x12, 0x02, 'h', 'i', 0x08, 0x01}, 1, true},
		{"compressed", []byte{1, 0, 0, 0, 2, 0x08, 0x01}, 0, false},
		{"truncated", []byte{0, 0, 0, 0, 9, 0x08}, 0, false},
		{"bad varint", []byte{0, 0, 0, 0, 2, 0x08, 0x80}, 0, false},
		{"short", []byte{0, 0}, 0, false},
	} {
		got, err := ParseGRPCHealthResponse(tc.in)
		if (err == nil) != tc.ok || got != tc.status {
			t.Errorf("%s: status %d, err %v", tc.name, got, err)
		}
	}
}

// countingHandler is a slog handler that counts records.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countingHandler) WithGroup(string) slog.Handler             { return h }

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHealthCheckAfterClose pins down a bug where a check that was running
// when the pool closed still recorded its result: it flipped the
// endpoint's health and logged on a closed pool.
func TestHealthCheckAfterClose(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("http://10.0.0.1:80")

	t.Run("result arriving during Close", func(t *testing.T) {
		t.Parallel()
		checked := make(chan struct{}, 1)
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			select {
			case checked <- struct{}{}:
			default:
			}
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: r}, nil
		})
		var logs atomic.Int64
		hc := &HealthCheck{Interval: 100 * time.Millisecond, UnhealthyThreshold: 1}
		p, err := New("svc", rt, Config{HealthCheck: hc, Logger: slog.New(countingHandler{&logs})})
		if err != nil {
			t.Fatal(err)
		}
		e := &Endpoint{URL: u}
		p.Update([]*Endpoint{e})
		p.Start()
		// Hold the pool's lock across the check, so its result reaches the
		// pool only once the pool is closed.
		p.mu.Lock()
		select {
		case <-checked:
		case <-time.After(2 * time.Second):
			p.mu.Unlock()
			t.Fatal("no health check")
		}
		time.Sleep(50 * time.Millisecond)
		healthy, before := e.Status().Healthy, logs.Load()
		p.closeLocked()
		p.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		if e.Status().Healthy != healthy || logs.Load() != before {
			t.Errorf("after Close: healthy %v -> %v, %d more log lines", healthy, e.Status().Healthy, logs.Load()-before)
		}
	})

	t.Run("slow check", func(t *testing.T) {
		t.Parallel()
		started, canceled := make(chan struct{}), make(chan time.Time, 1)
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			close(started)
			select {
			case <-r.Context().Done():
				canceled <- time.Now()
				return nil, r.Context().Err()
			case <-time.After(5 * time.Second):
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: r}, nil
			}
		})
		var logs atomic.Int64
		hc := &HealthCheck{Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, UnhealthyThreshold: 1}
		p, err := New("svc", rt, Config{HealthCheck: hc, Logger: slog.New(countingHandler{&logs})})
		if err != nil {
			t.Fatal(err)
		}
		e := &Endpoint{URL: u}
		p.Update([]*Endpoint{e})
		p.Start()
		<-started
		closing := time.Now()
		p.Close()
		if d := time.Since(closing); d > 100*time.Millisecond {
			t.Errorf("Close took %v", d)
		}
		select {
		case at := <-canceled:
			if d := at.Sub(closing); d > 100*time.Millisecond {
				t.Errorf("running check canceled %v after Close", d)
			}
		case <-time.After(time.Second):
			t.Fatal("running check not canceled by Close")
		}
		time.Sleep(50 * time.Millisecond)
		if !e.Status().Healthy || logs.Load() != 0 {
			t.Errorf("after Close: healthy %v, %d log lines", e.Status().Healthy, logs.Load())
		}
	})
}
