package upstream

import (
	"math/rand/v2"
	"net/http"
	"sync/atomic"
)

// Balancer chooses the endpoint of each attempt among a pool's usable
// endpoints. A balancer belongs to one pool.
type Balancer interface {
	// Name is the balancer's configuration name, such as "round_robin".
	Name() string
	// Prepare derives what Pick needs from an endpoint set (a rotation, a
	// hash table). The pool calls it, under its lock, for every new set and
	// hands the result back to Pick with that same set.
	Prepare(eps []*Endpoint) any
	// Pick returns one of c's usable endpoints, or nil when none is usable.
	// It is called concurrently and must neither block nor allocate.
	Pick(c Candidates) *Endpoint
}

// Interface guards.
var (
	_ Balancer = (*RoundRobin)(nil)
	_ Balancer = (*Random)(nil)
	_ Balancer = (*LeastRequest)(nil)
	_ Balancer = (*P2C)(nil)
	_ Balancer = (*Maglev)(nil)
)

// Candidates is the endpoint set one Pick chooses from.
type Candidates struct {
	eps   []*Endpoint
	state any
	req   *http.Request
	tried *Tried
	mask  uint32
}

// Len returns the number of endpoints, usable or not.
func (c Candidates) Len() int { return len(c.eps) }

// At returns the i-th endpoint.
func (c Candidates) At(i int) *Endpoint { return c.eps[i] }

// State returns what the balancer's Prepare returned for this set.
func (c Candidates) State() any { return c.state }

// Request returns the request being balanced.
func (c Candidates) Request() *http.Request { return c.req }

// Usable reports whether e may take this request: available (or, in panic
// mode, at least not open or draining), not already tried, and not a
// half-open endpoint whose probe slots are taken.
func (c Candidates) Usable(e *Endpoint) bool {
	return e.flags.Load()&c.mask == 0 && e.br.usable() && !c.tried.Has(e)
}

// Scan returns the first usable endpoint at or after index start, wrapping
// around, or nil.
func (c Candidates) Scan(start int) *Endpoint {
	n := len(c.eps)
	for k := range n {
		if e := c.eps[(start+k)%n]; c.Usable(e) {
			return e
		}
	}
	return nil
}

// randomUsable returns a usable endpoint chosen uniformly by a few random
// draws, then by a scan from a random start.
func (c Candidates) randomUsable() *Endpoint {
	n := len(c.eps)
	for range 3 {
		if e := c.eps[rand.IntN(n)]; c.Usable(e) {
			return e
		}
	}
	return c.Scan(rand.IntN(n))
}

// RoundRobin is smooth weighted round robin: over sum-of-weights picks each
// endpoint is chosen weight times, interleaved rather than in bursts (the
// nginx algorithm, precomputed per endpoint set so a pick is one atomic
// add). An unusable endpoint's turn goes to the next usable one.
type RoundRobin struct{ next atomic.Uint64 }

// NewRoundRobin returns a smooth weighted round robin balancer.
func NewRoundRobin() *RoundRobin { return &RoundRobin{} }

// Name implements Balancer.
func (*RoundRobin) Name() string { return "round_robin" }

// maxRotation bounds the precomputed rotation; larger weight sums are
// scaled down to it.
const maxRotation = 4096

// rotation is the precomputed order of picks; nil means equal weights, where
// the order is simply the set's.
type rotation []int32

// Prepare implements Balancer.
func (*RoundRobin) Prepare(eps []*Endpoint) any {
	weights, equal := scaledWeights(eps)
	if equal {
		return rotation(nil)
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	seq := make(rotation, 0, total)
	cur := make([]int, len(eps))
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, int32(best))
	}
	return seq
}

// scaledWeights returns the endpoints' weights divided by their greatest
// common divisor and scaled so they sum to at most maxRotation, and whether
// they are all equal.
func scaledWeights(eps []*Endpoint) ([]int, bool) {
	w := make([]int, len(eps))
	g, sum, equal := 0, 0, true
	for i, e := range eps {
		w[i] = e.weight()
		g = gcd(g, w[i])
		sum += w[i]
		equal = equal && w[i] == w[0]
	}
	if equal {
		return w, true
	}
	sum /= g
	for i := range w {
		w[i] /= g
		if sum > maxRotation {
			w[i] = max(1, w[i]*maxRotation/sum)
		}
	}
	return w, false
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Pick implements Balancer.
func (rr *RoundRobin) Pick(c Candidates) *Endpoint {
	i := rr.next.Add(1) - 1
	seq, _ := c.state.(rotation)
	if seq == nil {
		n := uint64(len(c.eps))
		if e := c.eps[i%n]; c.Usable(e) {
			return e
		}
		return c.Scan(int(i % n))
	}
	n := uint64(len(seq))
	for k := range n {
		if e := c.eps[seq[(i+k)%n]]; c.Usable(e) {
			return e
		}
	}
	return nil
}

// Random picks an endpoint at random in proportion to its weight.
type Random struct{}

// NewRandom returns a weighted random balancer.
func NewRandom() *Random { return &Random{} }

// Name implements Balancer.
func (*Random) Name() string { return "random" }

// cumulative holds running weight sums; nil means equal weights.
type cumulative []int

// Prepare implements Balancer.
func (*Random) Prepare(eps []*Endpoint) any {
	if _, equal := scaledWeights(eps); equal {
		return cumulative(nil)
	}
	cum := make(cumulative, len(eps))
	sum := 0
	for i, e := range eps {
		sum += e.weight()
		cum[i] = sum
	}
	return cum
}

// Pick implements Balancer.
func (*Random) Pick(c Candidates) *Endpoint {
	cum, _ := c.state.(cumulative)
	if cum == nil {
		return c.randomUsable()
	}
	for range 3 {
		x := rand.IntN(cum[len(cum)-1])
		lo, hi := 0, len(cum)-1
		for lo < hi {
			mid := (lo + hi) / 2
			if cum[mid] > x {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		if e := c.eps[lo]; c.Usable(e) {
			return e
		}
	}
	return c.Scan(rand.IntN(len(c.eps)))
}

// LeastRequest sends each request to the endpoint with the fewest requests
// in flight relative to its weight. Small sets (up to 8 endpoints) are
// scanned whole, from a rotating start so ties take turns; larger ones
// compare two random choices, which is nearly as good and costs the same at
// any size.
type LeastRequest struct{ next atomic.Uint64 }

// NewLeastRequest returns a least outstanding requests balancer.
func NewLeastRequest() *LeastRequest { return &LeastRequest{} }

// Name implements Balancer.
func (*LeastRequest) Name() string { return "least_request" }

// Prepare implements Balancer.
func (*LeastRequest) Prepare([]*Endpoint) any { return nil }

// fullScanMax is the largest set LeastRequest scans whole.
const fullScanMax = 8

// Pick implements Balancer.
func (lr *LeastRequest) Pick(c Candidates) *Endpoint {
	n := len(c.eps)
	if n <= fullScanMax {
		start := int(lr.next.Add(1) % uint64(n))
		var best *Endpoint
		for k := range n {
			e := c.eps[(start+k)%n]
			if c.Usable(e) && (best == nil || lessLoaded(e, best)) {
				best = e
			}
		}
		return best
	}
	a := c.randomUsable()
	if a == nil {
		return nil
	}
	b := c.randomUsable()
	if b != nil && lessLoaded(b, a) {
		return b
	}
	return a
}

// lessLoaded compares in-flight requests per unit of weight without
// division: ia/wa < ib/wb. Idle endpoints tie, and ties take turns, so
// weights matter once requests overlap.
func lessLoaded(a, b *Endpoint) bool {
	return a.inflight.Load()*int64(b.weight()) < b.inflight.Load()*int64(a.weight())
}

// P2C is the power of two choices over a latency estimate: it draws two
// usable endpoints at random and sends the request to the one with the
// lower cost, the moving average latency times (in-flight requests + 1),
// divided by weight. An endpoint without a latency sample yet costs
// nothing, so new endpoints are tried at once.
type P2C struct{}

// NewP2C returns a power-of-two-choices balancer over latency and load.
func NewP2C() *P2C { return &P2C{} }

// Name implements Balancer.
func (*P2C) Name() string { return "p2c" }

// Prepare implements Balancer.
func (*P2C) Prepare([]*Endpoint) any { return nil }

// Pick implements Balancer.
func (*P2C) Pick(c Candidates) *Endpoint {
	n := len(c.eps)
	if n == 1 {
		return c.Scan(0)
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := c.eps[i], c.eps[j]
	ua, ub := c.Usable(a), c.Usable(b)
	switch {
	case !ua && !ub:
		return c.Scan(i)
	case !ua:
		return b
	case !ub:
		return a
	}
	if cost(b) < cost(a) {
		return b
	}
	return a
}

func cost(e *Endpoint) float64 {
	return float64(e.Latency()+1) * float64(e.inflight.Load()+1) / float64(e.weight())
}
