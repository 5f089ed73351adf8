package upstream

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// endpoints returns n endpoints http://10.0.0.i:80 with the given weights
// (1 when weights is shorter).
func endpoints(n int, weights ...int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		u, _ := url.Parse(fmt.Sprintf("http://10.0.%d.%d:80", i/250, i%250+1))
		eps[i] = &Endpoint{URL: u, Weight: 1}
		if i < len(weights) {
			eps[i].Weight = weights[i]
		}
	}
	return eps
}

// newTestPool returns a started pool of eps configured by cfg.
func newTestPool(t testing.TB, cfg Config, eps []*Endpoint) *Pool {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	p, err := New("svc", http.DefaultTransport, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Update(eps)
	p.Start()
	t.Cleanup(p.Close)
	return p
}

// pick selects once and reports the outcome o at once.
func pick(t testing.TB, p *Pool, r *http.Request, o Outcome) *Endpoint {
	t.Helper()
	e, done, err := p.Select(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	done(o)
	return e
}

// counts picks n times and counts the endpoints chosen.
func counts(t testing.TB, p *Pool, n int) map[*Endpoint]int {
	t.Helper()
	out := map[*Endpoint]int{}
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	for range n {
		out[pick(t, p, r, Outcome{Status: 200})]++
	}
	return out
}

func timeNow() time.Time { return time.Now() }
