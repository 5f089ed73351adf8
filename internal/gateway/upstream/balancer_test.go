package upstream

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"
)

func balancers() map[string]func() Balancer {
	return map[string]func() Balancer{
		"round_robin":     func() Balancer { return NewRoundRobin() },
		"random":          func() Balancer { return NewRandom() },
		"least_request":   func() Balancer { return NewLeastRequest() },
		"p2c":             func() Balancer { return NewP2C() },
		"consistent_hash": func() Balancer { return NewMaglev(nil) },
	}
}

// TestBalancersSpreadEqualEndpoints: with equal weights and requests that
// finish at once, every balancer spreads keyless traffic evenly.
func TestBalancersSpreadEqualEndpoints(t *testing.T) {
	t.Parallel()
	for name, mk := range balancers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eps := endpoints(4)
			p := newTestPool(t, Config{Balancer: mk()}, eps)
			const n = 8000
			got := counts(t, p, n)
			for _, e := range eps {
				if c := got[e]; math.Abs(float64(c)-n/4) > n/4*0.15 {
					t.Errorf("%s got %d of %d, want about %d", e.Key(), c, n, n/4)
				}
			}
		})
	}
}

// TestWeightedDistribution: round robin follows weights exactly over a
// rotation, random within a few percent.
func TestWeightedDistribution(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"round_robin", "random", "consistent_hash"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eps := endpoints(3, 1, 2, 5)
			var b Balancer = NewRoundRobin()
			switch name {
			case "random":
				b = NewRandom()
			case "consistent_hash":
				b = NewMaglev(HashHeader("X-Key"))
			}
			p := newTestPool(t, Config{Balancer: b}, eps)
			const n = 8000
			got := map[*Endpoint]int{}
			for i := range n {
				r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
				r.Header.Set("X-Key", fmt.Sprint("user-", i))
				got[pick(t, p, r, Outcome{Status: 200})]++
			}
			for _, e := range eps {
				want := float64(n) * float64(e.Weight) / 8
				tol := 0.0
				if name != "round_robin" {
					tol = want * 0.1
				}
				if math.Abs(float64(got[e])-want) > tol {
					t.Errorf("weight %d got %d, want %.0f±%.0f", e.Weight, got[e], want, tol)
				}
			}
		})
	}
}

// TestRoundRobinIsSmooth: a heavy endpoint's turns are interleaved with the
// others', not sent in one burst.
func TestRoundRobinIsSmooth(t *testing.T) {
	t.Parallel()
	eps := endpoints(3, 5, 1, 1)
	p := newTestPool(t, Config{}, eps)
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	run, longest := 0, 0
	var last *Endpoint
	for range 7 {
		e := pick(t, p, r, Outcome{Status: 200})
		if e == last {
			run++
		} else {
			run = 1
		}
		longest = max(longest, run)
		last = e
	}
	if longest > 2 {
		t.Errorf("heavy endpoint picked %d times in a row in one rotation; want interleaving", longest)
	}
}

// TestLeastRequestPrefersIdle: an endpoint with requests in flight is
// avoided while others are idle.
func TestLeastRequestPrefersIdle(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"least_request", "p2c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eps := endpoints(2)
			p := newTestPool(t, Config{Balancer: balancers()[name]()}, eps)
			r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
			busy, done, err := p.Select(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				if e := pick(t, p, r, Outcome{Status: 200}); e == busy {
					t.Fatalf("picked the endpoint with a request in flight")
				}
			}
			done(Outcome{Status: 200})
		})
	}
}

// TestP2CPrefersFastEndpoint: the balancer learns latencies from outcomes.
func TestP2CPrefersFastEndpoint(t *testing.T) {
	t.Parallel()
	eps := endpoints(2)
	p := newTestPool(t, Config{Balancer: NewP2C()}, eps)
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	for range 10 {
		e, done, _ := p.Select(r, nil)
		lat := time.Millisecond
		if e == eps[1] {
			lat = 50 * time.Millisecond
		}
		done(Outcome{Status: 200, Latency: lat})
	}
	got := counts(t, p, 200)
	if got[eps[0]] != 200 {
		t.Errorf("fast endpoint got %d of 200", got[eps[0]])
	}
}

// TestSelectSkipsUnavailableAndTried covers the availability bit and the
// exclusion of tried endpoints for every balancer.
func TestSelectSkipsUnavailableAndTried(t *testing.T) {
	t.Parallel()
	for name, mk := range balancers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eps := endpoints(5)
			p := newTestPool(t, Config{Balancer: mk(), PanicThreshold: -1}, eps)
			p.mu.Lock()
			p.setHealthy(eps[0], false, "test")
			p.mu.Unlock()
			var tried Tried
			tried.Add(eps[1])
			r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
			r.RemoteAddr = "192.0.2.1:1234"
			for range 200 {
				e, done, err := p.Select(r, &tried)
				if err != nil {
					t.Fatal(err)
				}
				done(Outcome{Status: 200})
				if e == eps[0] || e == eps[1] {
					t.Fatalf("picked %s (unavailable or tried)", e.Key())
				}
			}
			// When every usable endpoint was tried, a repeat beats nothing.
			for _, e := range eps[2:] {
				tried.Add(e)
			}
			if e := pick(t, p, r, Outcome{}); e == eps[0] {
				t.Fatal("picked the unhealthy endpoint")
			}
		})
	}
}

// TestPanicMode: when fewer than the threshold are available, the pool
// routes to every endpoint except open breakers.
func TestPanicMode(t *testing.T) {
	t.Parallel()
	eps := endpoints(4)
	p := newTestPool(t, Config{}, eps)
	p.mu.Lock()
	for _, e := range eps[:3] {
		p.setHealthy(e, false, "test")
	}
	p.mu.Unlock()
	if !p.Panicking() {
		t.Fatal("1 of 4 available: want panic mode")
	}
	got := counts(t, p, 400)
	if len(got) != 4 {
		t.Fatalf("panic mode used %d endpoints, want all 4", len(got))
	}
	p.mu.Lock()
	eps[0].setFlag(flagOpen, true)
	p.recount()
	p.mu.Unlock()
	if got := counts(t, p, 400); got[eps[0]] != 0 {
		t.Errorf("an open breaker got %d requests in panic mode", got[eps[0]])
	}
	p.mu.Lock()
	for _, e := range eps {
		p.setHealthy(e, true, "")
	}
	p.mu.Unlock()
	if p.Panicking() {
		t.Error("still panicking with 3 of 4 available")
	}
}

func TestNoEndpointAndOverload(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, Config{MaxRequests: 1}, nil)
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	if _, _, err := p.Select(r, nil); err != ErrNoEndpoint {
		t.Fatalf("empty pool: err %v", err)
	}
	p.Update(endpoints(2))
	_, done, err := p.Select(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Select(r, nil); err != ErrOverloaded {
		t.Fatalf("second request with max_requests 1: err %v", err)
	}
	done(Outcome{Status: 200})
	if _, d, err := p.Select(r, nil); err != nil {
		t.Fatalf("after the first finished: %v", err)
	} else {
		d(Outcome{})
	}
}

// TestUpdateKeepsStateAndDrains: unchanged endpoints keep their state, a
// leaver drains until its in-flight requests finish.
func TestUpdateKeepsStateAndDrains(t *testing.T) {
	t.Parallel()
	eps := endpoints(3)
	p := newTestPool(t, Config{Outlier: &Outlier{ConsecutiveFailures: 1, BaseEjectionTime: time.Minute}}, eps)
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	// Eject eps[0] and keep a request in flight on eps[2].
	for eps[0].Available() {
		e, done, _ := p.Select(r, nil)
		o := Outcome{Status: 200}
		if e == eps[0] {
			o = Outcome{Status: 503}
		}
		done(o)
	}
	var inflight Done
	for inflight == nil {
		e, done, _ := p.Select(r, nil)
		if e == eps[2] {
			inflight = done
		} else {
			done(Outcome{Status: 200})
		}
	}
	fresh := endpoints(4)
	p.Update([]*Endpoint{fresh[0], fresh[1], fresh[3]})
	cur := p.Endpoints()
	if cur[0] != eps[0] || cur[1] != eps[1] || cur[2] != fresh[3] {
		t.Fatal("unchanged endpoints were replaced")
	}
	if !cur[0].Status().Ejected {
		t.Error("ejection did not survive the update")
	}
	if d := p.Draining(); len(d) != 1 || d[0] != eps[2] || !d[0].Status().Draining {
		t.Fatalf("draining = %v, want the leaver", d)
	}
	inflight(Outcome{Status: 200})
	if d := p.Draining(); len(d) != 0 {
		t.Errorf("draining after its request finished: %v", d)
	}
}
