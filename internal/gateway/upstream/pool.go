// Package upstream holds the live endpoint sets of services: pools, their
// balancers and their transports. Discovery providers push whole endpoint sets
// into a pool; the proxy asks the pool for an endpoint per attempt and reports
// the outcome back.
package upstream

import (
	"errors"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
)

// ErrNoEndpoint is returned by Select when a pool has no available endpoint.
var ErrNoEndpoint = errors.New("no available endpoint")

// Endpoint is one reachable instance of a service.
type Endpoint struct {
	// URL is the scheme and host the endpoint is reached at ("http", "https"
	// or "h2c" scheme); its path, if any, is prefixed to upstream paths.
	URL *url.URL
	// Weight is the relative share of traffic; 0 counts as 1.
	Weight int
	// Meta carries discovery metadata such as zone and version.
	Meta map[string]string

	inflight atomic.Int64
}

// Key identifies an endpoint within a pool across endpoint set updates.
func (e *Endpoint) Key() string { return e.URL.Scheme + "://" + e.URL.Host }

// InFlight reports the number of requests the endpoint is serving.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Done reports the outcome of one request sent to an endpoint. err is nil for a
// response the balancer should count as a success.
type Done func(err error)

// Pool is the live endpoint set of one service with its balancer and transport.
// It is safe for concurrent use; Select takes no lock.
type Pool struct {
	name      string
	transport http.RoundTripper

	mu        sync.Mutex // serializes Update
	endpoints atomic.Pointer[[]*Endpoint]
	next      atomic.Uint64
}

// NewPool returns an empty pool for the named service that sends requests
// through transport.
func NewPool(name string, transport http.RoundTripper) *Pool {
	p := &Pool{name: name, transport: transport}
	empty := []*Endpoint{}
	p.endpoints.Store(&empty)
	return p
}

// Name returns the service name.
func (p *Pool) Name() string { return p.name }

// Transport returns the round tripper requests to this pool's endpoints use.
func (p *Pool) Transport() http.RoundTripper { return p.transport }

// Endpoints returns the current endpoint set. The slice must not be modified.
func (p *Pool) Endpoints() []*Endpoint { return *p.endpoints.Load() }

// Update replaces the endpoint set. Endpoints whose Key is unchanged keep their
// live state (in-flight count); new ones join and missing ones leave.
func (p *Pool) Update(eps []*Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := make(map[string]*Endpoint, len(*p.endpoints.Load()))
	for _, e := range *p.endpoints.Load() {
		old[e.Key()] = e
	}
	next := make([]*Endpoint, 0, len(eps))
	for _, e := range eps {
		if prev, ok := old[e.Key()]; ok && prev.URL.String() == e.URL.String() {
			prev.Weight, prev.Meta = e.Weight, e.Meta
			next = append(next, prev)
			continue
		}
		next = append(next, e)
	}
	p.endpoints.Store(&next)
}

// Select picks an endpoint for r by weighted round robin. The caller must call
// the returned Done exactly once when the attempt ends.
func (p *Pool) Select(r *http.Request) (*Endpoint, Done, error) {
	eps := *p.endpoints.Load()
	switch len(eps) {
	case 0:
		return nil, nil, ErrNoEndpoint
	case 1:
		return p.start(eps[0])
	}
	total := 0
	for _, e := range eps {
		total += weight(e)
	}
	n := int(p.next.Add(1) % uint64(total))
	for _, e := range eps {
		if n -= weight(e); n < 0 {
			return p.start(e)
		}
	}
	return p.start(eps[len(eps)-1])
}

func (p *Pool) start(e *Endpoint) (*Endpoint, Done, error) {
	e.inflight.Add(1)
	return e, e.done, nil
}

func (e *Endpoint) done(error) { e.inflight.Add(-1) }

func weight(e *Endpoint) int {
	if e.Weight <= 0 {
		return 1
	}
	return e.Weight
}
