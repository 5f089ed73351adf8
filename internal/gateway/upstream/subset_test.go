package upstream

import (
	"errors"
	"net/http"
	"testing"
)

// versioned returns n endpoints whose "version" metadata is versions[i].
func versioned(versions ...string) []*Endpoint {
	eps := endpoints(len(versions))
	for i, v := range versions {
		eps[i].Meta = map[string]string{"version": v}
	}
	return eps
}

func TestSubsetSelectsOnlyItsMembers(t *testing.T) {
	p := newTestPool(t, Config{}, versioned("v1", "v1", "v2"))
	v2 := p.Subset("version", "v2")
	if p.Subset("version", "v2") != v2 {
		t.Fatal("a second Subset call made a new subset")
	}
	if k, v, ok := v2.SubsetOf(); !ok || k != "version" || v != "v2" {
		t.Fatalf("SubsetOf = %q %q %v", k, v, ok)
	}
	if _, _, ok := p.SubsetOf(); ok {
		t.Fatal("the root reports being a subset")
	}
	c := counts(t, v2, 20)
	if len(c) != 1 {
		t.Fatalf("v2 subset used %d endpoints, want 1", len(c))
	}
	for e := range c {
		if e.Meta["version"] != "v2" {
			t.Fatalf("v2 subset picked %s", e.Meta["version"])
		}
	}
	if got := len(p.Subset("version", "v3").Endpoints()); got != 0 {
		t.Fatalf("v3 subset has %d endpoints", got)
	}
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	if _, _, err := p.Subset("version", "v3").Select(r, nil); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("empty subset Select err = %v", err)
	}
}

func TestSubsetFollowsUpdatesAndSharesState(t *testing.T) {
	p := newTestPool(t, Config{Outlier: &Outlier{ConsecutiveFailures: 2, MaxEjectionPercent: 100}}, versioned("v1", "v2", "v2"))
	v2 := p.Subset("version", "v2")
	if n := len(v2.Endpoints()); n != 2 {
		t.Fatalf("v2 has %d endpoints, want 2", n)
	}
	// Failures seen through the subset eject the shared endpoint, which the
	// root then avoids too.
	bad := v2.Endpoints()[0]
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	for range 20 {
		e, done, err := v2.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e == bad {
			done(Outcome{Status: 503})
		} else {
			done(Outcome{Status: 200})
		}
		if !bad.Available() {
			break
		}
	}
	if bad.Available() {
		t.Fatal("endpoint failing through the subset was not ejected")
	}
	if v2.Available() != 1 || p.Available() != 2 {
		t.Fatalf("available: subset %d root %d, want 1 and 2", v2.Available(), p.Available())
	}
	if p.Stats().Attempts.Load() != 0 && v2.Stats() != p.Stats() {
		t.Fatal("subset does not share the root's counters")
	}
	// In-flight requests through the subset count against the root.
	_, done, err := v2.Select(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.root.inflight.Load(); got != 1 {
		t.Fatalf("root in flight = %d, want 1", got)
	}
	done(Outcome{Status: 200})

	// An update of the root reaches the subset; kept endpoints keep state.
	next := versioned("v1", "v2", "v2", "v2")
	next[0].URL, next[1].URL = p.Endpoints()[0].URL, bad.URL
	p.Update(next)
	eps := v2.Endpoints()
	if len(eps) != 3 {
		t.Fatalf("after update v2 has %d endpoints, want 3", len(eps))
	}
	if eps[0] != bad || bad.Available() {
		t.Fatal("the kept endpoint lost its ejection across the update")
	}
	// Moving an endpoint to another version moves it between subsets.
	moved := versioned("v1", "v1", "v2", "v2")
	for i := range moved {
		moved[i].URL = p.Endpoints()[i].URL
	}
	p.Update(moved)
	if n := len(v2.Endpoints()); n != 2 {
		t.Fatalf("after relabel v2 has %d endpoints, want 2", n)
	}
	if n := len(p.Subset("version", "v1").Endpoints()); n != 2 {
		t.Fatalf("v1 has %d endpoints, want 2", n)
	}
}

// A subset has a rotation of its own: interleaving requests to the root and
// to the subset must not starve a subset member.
func TestSubsetRoundRobinIsIndependent(t *testing.T) {
	p := newTestPool(t, Config{}, versioned("v1", "v1", "v2", "v2"))
	v1 := p.Subset("version", "v1")
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	got := map[*Endpoint]int{}
	for range 100 {
		pick(t, p, r, Outcome{Status: 200})
		got[pick(t, v1, r, Outcome{Status: 200})]++
	}
	if len(got) != 2 {
		t.Fatalf("v1 subset used %d endpoints, want both", len(got))
	}
	for e, n := range got {
		if n != 50 {
			t.Fatalf("endpoint %s got %d of 100", e.URL.Host, n)
		}
	}
}

func TestSubsetFollowsBalancerChange(t *testing.T) {
	p := newTestPool(t, Config{}, versioned("v1", "v2"))
	v1 := p.Subset("version", "v1")
	if v1.Balancer() != "round_robin" {
		t.Fatalf("balancer %q", v1.Balancer())
	}
	if err := p.Reconfigure(Config{Balancer: NewP2C(), Logger: quietLogger()}, nil); err != nil {
		t.Fatal(err)
	}
	if v1.Balancer() != "p2c" || len(v1.Endpoints()) != 1 {
		t.Fatalf("after reconfigure: balancer %q, %d endpoints", v1.Balancer(), len(v1.Endpoints()))
	}
	if err := v1.Reconfigure(Config{}, nil); err == nil {
		t.Fatal("reconfiguring a subset succeeded")
	}
}
