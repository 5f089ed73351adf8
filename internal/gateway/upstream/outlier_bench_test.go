package upstream

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkPickSuccessRate is BenchmarkPick's round robin case with
// success-rate counting on: the request path adds one atomic add.
func BenchmarkPickSuccessRate(b *testing.B) {
	for _, sr := range []*SuccessRate{nil, {Interval: time.Hour}} {
		name := "off"
		if sr != nil {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			p := newTestPool(b, Config{Outlier: &Outlier{SuccessRate: sr}, Breaker: &Breaker{}}, endpoints(3))
			r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
			ok := Outcome{Status: 200, Latency: 1000}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, done, err := p.Select(r, nil)
					if err != nil {
						b.Error(err)
						return
					}
					done(ok)
				}
			})
		})
	}
}
