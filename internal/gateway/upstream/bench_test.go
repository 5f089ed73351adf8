package upstream

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkPick measures one Select and Done per balancer with 3 and 100
// endpoints, with outlier detection and breakers on (so the outcome path is
// the production one). Target: under 100ns and no allocation.
func BenchmarkPick(b *testing.B) {
	for _, name := range []string{"round_robin", "random", "least_request", "p2c", "consistent_hash"} {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				bal := balancers()[name]()
				if name == "consistent_hash" {
					bal = NewMaglev(HashHeader("X-Key"))
				}
				p := newTestPool(b, Config{Balancer: bal, Outlier: &Outlier{}, Breaker: &Breaker{}}, endpoints(n, 1, 2, 3))
				r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
				r.Header.Set("X-Key", "user-42")
				tried := new(Tried)
				ok := Outcome{Status: 200, Latency: 1000}
				b.ReportAllocs()
				for b.Loop() {
					_, done, err := p.Select(r, tried)
					if err != nil {
						b.Fatal(err)
					}
					done(ok)
				}
			})
		}
	}
}

// BenchmarkPickParallel is round robin and p2c under concurrent callers.
func BenchmarkPickParallel(b *testing.B) {
	for _, name := range []string{"round_robin", "p2c"} {
		b.Run(name, func(b *testing.B) {
			p := newTestPool(b, Config{Balancer: balancers()[name](), Outlier: &Outlier{}, Breaker: &Breaker{}}, endpoints(10))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
				tried := new(Tried)
				for pb.Next() {
					_, done, _ := p.Select(r, tried)
					done(Outcome{Status: 200, Latency: 1000})
				}
			})
		})
	}
}

func BenchmarkBudget(b *testing.B) {
	bud, _ := NewBudget(BudgetConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Deposit(timeNow())
		}
	})
}
