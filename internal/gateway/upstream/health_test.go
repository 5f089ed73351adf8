package upstream

import (
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
