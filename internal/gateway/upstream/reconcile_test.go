package upstream

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// BenchmarkReconcile1000 measures one Pool.Update of a 1,000-endpoint pool
// where 10 endpoints left and 10 new ones joined, the usual shape of a
// discovery update. Target: under 1ms. The two sets alternate, so every
// iteration is a real change: the leavers drain and the joiners are set up.
func BenchmarkReconcile1000(b *testing.B) {
	for _, tc := range []struct {
		name     string
		bal      func() Balancer
		weighted bool
	}{
		{"round_robin", func() Balancer { return NewRoundRobin() }, false},
		{"round_robin_weighted", func() Balancer { return NewRoundRobin() }, true},
		{"consistent_hash", func() Balancer { return NewMaglev(HashHeader("X-Key")) }, false},
		{"p2c", func() Balancer { return NewP2C() }, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			all := endpoints(1010)
			if tc.weighted {
				for i, e := range all {
					e.Weight = 1 + i%5
				}
			}
			sets := [2][]*Endpoint{all[:1000], all[10:]}
			p := newTestPool(b, Config{Balancer: tc.bal(), Outlier: &Outlier{}, Breaker: &Breaker{}}, sets[0])
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i ^= 1
				p.Update(sets[i])
			}
			if n := len(p.Endpoints()); n != 1000 {
				b.Fatalf("%d endpoints after the updates", n)
			}
		})
	}
}

// TestReconcilePreservesState: an update that keeps endpoints A and B,
// drops C and adds D, given as fresh values, keeps A's and B's objects with
// their live state and takes their new weight and metadata; C drains until
// its request finishes; D joins and is picked.
func TestReconcilePreservesState(t *testing.T) {
	t.Parallel()
	eps := endpoints(4)
	a, b, c := eps[0], eps[1], eps[2]
	p := newTestPool(t, Config{
		Outlier: &Outlier{ConsecutiveFailures: 3, BaseEjectionTime: time.Minute},
		Breaker: &Breaker{FailureThreshold: 3, OpenTime: time.Minute},
	}, []*Endpoint{a, b, c})
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)

	// B fails until outlier detection ejects it and its breaker opens; A
	// records a latency; A keeps two requests in flight and C one.
	var inflightA []Done
	var inflightC Done
	for range 200 {
		if !b.Available() && len(inflightA) == 2 && inflightC != nil {
			break
		}
		e, done, err := p.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e == b:
			done(Outcome{Err: errRefused})
		case e == a && len(inflightA) < 2:
			inflightA = append(inflightA, done)
		case e == c && inflightC == nil:
			inflightC = done
		default:
			done(Outcome{Status: 200, Latency: 5 * time.Millisecond})
		}
	}
	if b.Available() || len(inflightA) != 2 || inflightC == nil {
		t.Fatalf("setup: B available %v, %d requests on A, request on C %v", b.Available(), len(inflightA), inflightC != nil)
	}
	before := struct {
		latency time.Duration
		b       EndpointStatus
	}{a.Latency(), b.Status()}
	if before.latency == 0 || !before.b.Ejected || before.b.Breaker != "open" {
		t.Fatalf("setup: A latency %v, B ejected %v breaker %s", before.latency, before.b.Ejected, before.b.Breaker)
	}

	fresh := endpoints(4)
	fresh[0].Weight, fresh[0].Meta = 3, map[string]string{"version": "v2"}
	fresh[1].Weight, fresh[1].Meta = 2, map[string]string{"version": "v2"}
	d := fresh[3]
	p.Update([]*Endpoint{fresh[0], fresh[1], d})

	if got, want := p.Endpoints(), []*Endpoint{a, b, d}; !slices.Equal(got, want) {
		t.Fatalf("members %v, want the old A and B and the new D", got)
	}
	if a.InFlight() != 2 || a.Latency() != before.latency {
		t.Errorf("A: in flight %d latency %v, want 2 and %v", a.InFlight(), a.Latency(), before.latency)
	}
	if st := b.Status(); !st.Ejected || st.Breaker != "open" || st.Ejections != before.b.Ejections || b.Available() {
		t.Errorf("B: ejected %v breaker %s ejections %d, want its ejection and open breaker kept", st.Ejected, st.Breaker, st.Ejections)
	}
	for _, e := range []*Endpoint{a, b} {
		if e.Meta["version"] != "v2" {
			t.Errorf("%s: meta %v, want the new metadata", e.URL.Host, e.Meta)
		}
	}
	if a.Weight != 3 || b.Weight != 2 {
		t.Errorf("weights A %d B %d, want the new 3 and 2", a.Weight, b.Weight)
	}
	if dr := p.Draining(); !slices.Equal(dr, []*Endpoint{c}) || !c.Status().Draining || c.InFlight() != 1 {
		t.Fatalf("draining %v (C draining %v, in flight %d), want C with its request", dr, c.Status().Draining, c.InFlight())
	}

	got := counts(t, p, 120)
	if got[c] != 0 || got[b] != 0 {
		t.Errorf("picked draining C %d times and ejected B %d times", got[c], got[b])
	}
	// Weights 3 (A) and 1 (D): D takes about a quarter.
	if got[d] < 20 || got[a] < 60 {
		t.Errorf("picks A %d D %d, want about 90 and 30", got[a], got[d])
	}

	inflightC(Outcome{Status: 200})
	if dr := p.Draining(); len(dr) != 0 {
		t.Errorf("draining %v after C's request finished", dr)
	}
	for _, done := range inflightA {
		done(Outcome{Status: 200})
	}
	if a.InFlight() != 0 || p.root.inflight.Load() != 0 {
		t.Errorf("in flight after all finished: A %d, pool %d", a.InFlight(), p.root.inflight.Load())
	}
}

// TestReconcileMovedEndpointIsNew: an endpoint whose key stays but whose
// URL changes (a path prefix added) is a new endpoint, not the old one
// with the old state.
func TestReconcileMovedEndpointIsNew(t *testing.T) {
	t.Parallel()
	eps := endpoints(2)
	p := newTestPool(t, Config{}, eps)
	moved := &Endpoint{URL: mustURL(t, fmt.Sprintf("http://%s/v2", eps[0].URL.Host))}
	p.Update([]*Endpoint{moved, endpoints(2)[1]})
	if got := p.Endpoints(); got[0] != moved || got[1] != eps[1] {
		t.Errorf("members %v, want the moved endpoint new and the other kept", got)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
