package upstream

import "errors"

var errSubset = errors.New("a subset follows its pool and cannot be reconfigured")

// subsetOf is what a subset shows of its root pool.
type subsetOf struct {
	// key and value select the members; an empty key selects all.
	key, value string
	// shadow marks a view for mirrored copies: its requests are not
	// counted against MaxRequests and feed a retry budget of their own, so
	// copies can never take capacity or retries from real requests.
	shadow bool
	budget *Budget
	// bal is the subset's own balancer, so its rotation (or hash table)
	// covers its members only; it is made from the root's balancer kind and
	// remade when the root's balancer changes (from records which).
	bal  Balancer
	from Balancer
}

// Subset returns the view of p's endpoints whose Meta[key] equals value,
// for routing to one version of a service. A subset is a *Pool that shares
// the endpoints themselves with p — their health, ejection, breaker and
// in-flight state, and what each outcome teaches — as well as p's transport,
// retry budget, limits and counters; it has its own balancer and its own
// panic mode over its members. It follows every update of p. Asking twice
// for the same key and value returns the same subset. Update, Reconfigure,
// Start and Close do nothing on a subset; p's do it all.
func (p *Pool) Subset(key, value string) *Pool { return p.view(key, value, false) }

// Shadow returns a view like Subset (all endpoints when key is empty) for
// mirrored copies of requests: it shares the endpoints' state and teaches
// them from every outcome, but its requests do not count against the
// pool's MaxRequests and do not add to its retry budget.
func (p *Pool) Shadow(key, value string) *Pool { return p.view(key, value, true) }

func (p *Pool) view(key, value string, shadow bool) *Pool {
	p = p.root
	p.mu.Lock()
	defer p.mu.Unlock()
	var subs []*Pool
	if cur := p.subsets.Load(); cur != nil {
		subs = *cur
	}
	for _, c := range subs {
		if c.sub.key == key && c.sub.value == value && c.sub.shadow == shadow {
			return c
		}
	}
	c := &Pool{name: p.name, log: p.log, root: p, sub: &subsetOf{key: key, value: value, shadow: shadow}, hcStop: p.hcStop}
	if shadow {
		c.sub.budget, _ = NewBudget(BudgetConfig{})
	}
	c.follow(p.cur.Load())
	c.recount()
	next := make([]*Pool, len(subs), len(subs)+1)
	copy(next, subs)
	next = append(next, c)
	p.subsets.Store(&next)
	return c
}

// Subsets returns the subsets made of p, in the order they were made.
func (p *Pool) Subsets() []*Pool {
	if cur := p.root.subsets.Load(); cur != nil {
		return *cur
	}
	return nil
}

// SubsetOf reports the metadata key and value a subset selects; ok is false
// for a pool that is not a subset.
func (p *Pool) SubsetOf() (key, value string, ok bool) {
	if p.sub == nil {
		return "", "", false
	}
	return p.sub.key, p.sub.value, true
}

// IsShadow reports whether p is a view made by Shadow.
func (p *Pool) IsShadow() bool { return p.sub != nil && p.sub.shadow }

// RetainSubsets drops the subsets (and shadow views) of p for which keep
// returns false: they stop following p's updates. A route of an older
// snapshot still holding one keeps working on its last set until it is
// done. Call it when a new configuration no longer uses some versions.
func (p *Pool) RetainSubsets(keep func(*Pool) bool) {
	p = p.root
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.subsets.Load()
	if cur == nil {
		return
	}
	next := make([]*Pool, 0, len(*cur))
	for _, c := range *cur {
		if keep(c) {
			next = append(next, c)
		}
	}
	if len(next) != len(*cur) {
		p.subsets.Store(&next)
	}
}

// follow publishes the subset of the root's set s. The root's mutex is held.
func (p *Pool) follow(s *set) {
	sub := p.sub
	if sub.bal == nil || sub.from != s.bal {
		sub.bal, sub.from = cloneBalancer(s.bal), s.bal
	}
	eps := make([]*Endpoint, 0, len(s.eps))
	for _, e := range s.eps {
		if v, ok := e.Meta[sub.key]; sub.key == "" || ok && v == sub.value {
			eps = append(eps, e)
		}
	}
	p.cur.Store(&set{eps: eps, bal: sub.bal, state: sub.bal.Prepare(eps), cfg: s.cfg})
}

// cloneBalancer returns a new balancer of b's kind. A balancer of another
// kind (one a caller wrote) is shared, which is correct for balancers whose
// Pick keeps no state between calls.
func cloneBalancer(b Balancer) Balancer {
	switch b := b.(type) {
	case *RoundRobin:
		return NewRoundRobin()
	case *LeastRequest:
		return NewLeastRequest()
	case *P2C:
		return NewP2C()
	case *Random:
		return NewRandom()
	case *Maglev:
		return NewMaglev(b.key)
	}
	return b
}
