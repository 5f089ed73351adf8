package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// BenchmarkResilience is the proxy round trip (client → gateway handler →
// loopback backend, connections kept alive) with the resilience machinery
// off (one attempt, plain round robin pool) and on (p2c, outlier detection,
// breakers, retry budget, a 3-attempt retry policy with a per-try timeout,
// deadline propagation). Target: under 5% difference in throughput.
func BenchmarkResilience(b *testing.B) {
	backend := benchBackend(b)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			plain := newPool(b, TransportOptions{}, backend.URL, backend.URL+"/")
			target := Target{Pool: plain, Timeout: 30 * time.Second}
			if on {
				pool, err := upstream.New("svc", plain.Transport(), upstream.Config{
					Balancer: upstream.NewP2C(), Outlier: &upstream.Outlier{}, Breaker: &upstream.Breaker{},
					Logger: slog.New(slog.DiscardHandler),
				})
				if err != nil {
					b.Fatal(err)
				}
				pool.Update(newPool(b, TransportOptions{}, backend.URL, backend.URL+"/").Endpoints())
				target = Target{Pool: pool, Timeout: 30 * time.Second, PropagateDeadline: true,
					Retry: &RetryPolicy{Attempts: 3, PerTryTimeout: 10 * time.Second}}
			}
			h, err := New(Config{Logger: slog.New(slog.DiscardHandler)}).Handler(target)
			if err != nil {
				b.Fatal(err)
			}
			g := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ex := &exchange.Exchange{ID: forwarded.NewRequestID(), Path: r.URL.Path}
				h.ServeHTTP(w, r.WithContext(exchange.NewContext(r.Context(), ex)))
			}))
			b.Cleanup(g.Close)
			c := testClient(b)
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := c.Get(g.URL + "/items/42")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
		})
	}
}
