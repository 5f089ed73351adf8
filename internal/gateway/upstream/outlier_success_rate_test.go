package upstream

import (
	"net/http"
	"testing"
	"time"
)

// noConsecutive keeps consecutive-failure ejection out of success-rate tests.
const noConsecutive = 1 << 30

// successRatePool returns a started pool of n endpoints with success-rate
// detection whose evaluator never fires on its own; tests call evaluate.
func successRatePool(t *testing.T, n int, o Outlier) (*Pool, []*Endpoint) {
	t.Helper()
	o.ConsecutiveFailures = noConsecutive
	if o.SuccessRate == nil {
		o.SuccessRate = &SuccessRate{}
	}
	if o.SuccessRate.Interval == 0 {
		o.SuccessRate.Interval = time.Hour
	}
	eps := endpoints(n)
	return newTestPool(t, Config{Outlier: &o}, eps), eps
}

// feed reports total outcomes of e, failures of them 503s, interleaved.
func feed(p *Pool, e *Endpoint, total, failures int) {
	for i := range total {
		if i < failures {
			p.learn(e, Outcome{Status: 503})
		} else {
			p.learn(e, Outcome{Status: 200})
		}
	}
}

// evaluate ends the current interval at once.
func evaluate(t *testing.T, p *Pool) {
	t.Helper()
	p.mu.Lock()
	ev := p.sr
	p.mu.Unlock()
	if ev == nil {
		t.Fatal("no success-rate evaluator running")
	}
	p.evaluateSuccessRate(ev)
}

func ejectedSet(eps []*Endpoint) []int {
	var out []int
	for i, e := range eps {
		if e.Status().Ejected {
			out = append(out, i)
		}
	}
	return out
}

func TestSuccessRateEjectsOutlier(t *testing.T) {
	t.Parallel()
	base := 60 * time.Millisecond
	p, eps := successRatePool(t, 5, Outlier{BaseEjectionTime: base, MaxEjectionTime: time.Second})
	feed(p, eps[0], 100, 40)
	for i, e := range eps[1:] {
		feed(p, e, 100, i%2) // 99% or 100%
	}
	evaluate(t, p)
	if got := ejectedSet(eps); len(got) != 1 || got[0] != 0 {
		t.Fatalf("ejected %v, want only endpoint 0 (60%% success against 99-100%%)", got)
	}
	if st := eps[0].Status(); st.Available || st.Ejections != 1 || st.EjectedFor > base {
		t.Fatalf("status after the first ejection: %+v", st)
	}
	// The counts were reset: an evaluation without new requests does nothing.
	for _, e := range eps {
		if c := e.srCount.Load(); c != 0 {
			t.Fatalf("counts not reset after the interval: %x", c)
		}
	}
	waitUntil(t, time.Second, eps[0].Available)
	// Ejected again at once after readmission: the ejection lasts twice as
	// long, as with consecutive failures.
	feed(p, eps[0], 100, 50)
	for _, e := range eps[1:] {
		feed(p, e, 100, 0)
	}
	evaluate(t, p)
	if st := eps[0].Status(); !st.Ejected || st.Ejections != 2 || st.EjectedFor <= base {
		t.Fatalf("second ejection: %+v, want one longer than %v", st, base)
	}
}

func TestSuccessRateUniformPoolKeepsAll(t *testing.T) {
	t.Parallel()
	p, eps := successRatePool(t, 6, Outlier{})
	for i, e := range eps {
		feed(p, e, 200, 6+2*i) // 97% down to 92%: ordinary spread
	}
	evaluate(t, p)
	if got := ejectedSet(eps); len(got) != 0 {
		t.Fatalf("ejected %v from a pool without an outlier", got)
	}
	// Every endpoint failing alike is no deviation either.
	for _, e := range eps {
		feed(p, e, 100, 50)
	}
	evaluate(t, p)
	if got := ejectedSet(eps); len(got) != 0 {
		t.Fatalf("ejected %v from a uniformly failing pool", got)
	}
}

func TestSuccessRateThresholds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		endpoints  int
		minHosts   int
		badVolume  int // requests of endpoint 0, half of them failing
		goodVolume int
		ejected    bool
	}{
		{"enough hosts and volume", 6, 5, 100, 100, true},
		{"outlier below request_volume", 6, 5, 99, 100, false},
		{"others below request_volume", 6, 5, 100, 99, false},
		{"five of six others qualify", 6, 5, 100, 100, true},
		{"fewer hosts than minimum_hosts", 5, 6, 100, 100, false},
		{"exactly minimum_hosts", 5, 5, 100, 100, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, eps := successRatePool(t, tc.endpoints, Outlier{BaseEjectionTime: time.Minute,
				SuccessRate: &SuccessRate{MinimumHosts: tc.minHosts, RequestVolume: 100}})
			feed(p, eps[0], tc.badVolume, tc.badVolume/2)
			for _, e := range eps[1:] {
				feed(p, e, tc.goodVolume, 0)
			}
			evaluate(t, p)
			if got := eps[0].Status().Ejected; got != tc.ejected {
				t.Fatalf("endpoint 0 ejected = %v, want %v", got, tc.ejected)
			}
			if got := ejectedSet(eps); len(got) > 1 {
				t.Fatalf("ejected %v", got)
			}
		})
	}
}

// TestSuccessRateMaxEjectionPercent: of three outliers only the worst two
// are ejected when the cap is 20% of ten, and an endpoint already ejected
// counts towards the cap.
func TestSuccessRateMaxEjectionPercent(t *testing.T) {
	t.Parallel()
	p, eps := successRatePool(t, 10, Outlier{BaseEjectionTime: time.Minute, MaxEjectionPercent: 20,
		SuccessRate: &SuccessRate{StdevFactor: 1}})
	rates := []int{20, 0, 10} // successes of 100 for endpoints 0-2; the rest 100
	for i, e := range eps {
		ok := 100
		if i < len(rates) {
			ok = rates[i]
		}
		feed(p, e, 100, 100-ok)
	}
	evaluate(t, p)
	if got := ejectedSet(eps); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("ejected %v, want [1 2]: the two worst within 20%% of 10", got)
	}

	q, qeps := successRatePool(t, 10, Outlier{BaseEjectionTime: time.Minute, MaxEjectionPercent: 20,
		SuccessRate: &SuccessRate{StdevFactor: 1}})
	q.eject(qeps[9], q.cur.Load().cfg.outlier, noConsecutive)
	for i, e := range qeps[:9] {
		ok := 100
		if i < len(rates) {
			ok = rates[i]
		}
		feed(q, e, 100, 100-ok)
	}
	evaluate(t, q)
	if got := ejectedSet(qeps); len(got) != 2 || got[0] != 1 || got[1] != 9 {
		t.Fatalf("ejected %v, want [1 9]: one slot was already taken", got)
	}
}

// TestSuccessRateEvaluatorLifecycle: the pool's timer evaluates every
// interval once started, a reconfiguration replaces or stops it, and Close
// stops it; without success_rate nothing is counted.
func TestSuccessRateEvaluatorLifecycle(t *testing.T) {
	t.Parallel()
	eps := endpoints(5)
	cfg := Config{Outlier: &Outlier{ConsecutiveFailures: noConsecutive, BaseEjectionTime: time.Minute,
		SuccessRate: &SuccessRate{Interval: 20 * time.Millisecond, RequestVolume: 50}}}
	p, err := New("svc", http.DefaultTransport, Config{Outlier: cfg.Outlier, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Update(eps)
	if p.sr != nil {
		t.Fatal("evaluator running before Start")
	}
	p.Start()
	waitUntil(t, 2*time.Second, func() bool {
		feed(p, eps[0], 50, 25)
		for _, e := range eps[1:] {
			feed(p, e, 50, 0)
		}
		return eps[0].Status().Ejected
	})

	p.mu.Lock()
	first := p.sr
	p.mu.Unlock()
	slower := *cfg.Outlier.SuccessRate
	slower.Interval = time.Hour
	cfg.Outlier.SuccessRate = &slower
	cfg.Logger = quietLogger()
	if err := p.Reconfigure(cfg, nil); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, first.done)
	p.mu.Lock()
	second := p.sr
	p.mu.Unlock()
	if second == nil || second.interval != time.Hour {
		t.Fatalf("evaluator after a new interval: %+v", second)
	}

	if err := p.Reconfigure(Config{Outlier: &Outlier{ConsecutiveFailures: noConsecutive}, Logger: quietLogger()}, nil); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, second.done)
	if p.sr != nil {
		t.Fatal("evaluator still set after success_rate was removed")
	}
	feed(p, eps[1], 10, 5)
	if c := eps[1].srCount.Load(); c != 0 {
		t.Fatalf("requests counted without success_rate: %x", c)
	}

	if err := p.Reconfigure(cfg, nil); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	third := p.sr
	p.mu.Unlock()
	p.Close()
	waitClosed(t, third.done)
	if p.sr != nil {
		t.Fatal("evaluator still set after Close")
	}
}

func waitClosed(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Second):
		t.Fatal("success-rate evaluator did not stop")
	}
}

// TestSuccessRateCountingAllocatesNothing pins the request path's cost.
func TestSuccessRateCountingAllocatesNothing(t *testing.T) {
	p, eps := successRatePool(t, 3, Outlier{})
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	allocs := testing.AllocsPerRun(1000, func() {
		_, done, err := p.Select(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		done(Outcome{Status: 503})
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
	var total uint64
	for _, e := range eps {
		c := e.srCount.Load()
		total += c & 0xffffffff
		if c>>32 != c&0xffffffff {
			t.Fatalf("failures %d of %d requests, want all", c>>32, c&0xffffffff)
		}
	}
	if total < 1000 {
		t.Fatalf("counted %d requests", total)
	}
}

func TestSuccessRateValidate(t *testing.T) {
	t.Parallel()
	for _, sr := range []SuccessRate{{MinimumHosts: 1}, {MinimumHosts: -1}, {RequestVolume: -1}, {StdevFactor: -0.5}, {Interval: -time.Second}} {
		if err := (Config{Outlier: &Outlier{SuccessRate: &sr}}).Validate(); err == nil {
			t.Errorf("%+v accepted", sr)
		}
	}
	if err := (Config{Outlier: &Outlier{SuccessRate: &SuccessRate{MinimumHosts: 2, StdevFactor: 0.5}}}).Validate(); err != nil {
		t.Error(err)
	}
}
