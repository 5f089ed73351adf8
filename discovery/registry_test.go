package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/registry"
)

// regWait bounds every wait of these tests: generous, because they poll and
// a loaded machine may stall for a while.
const regWait = 15 * time.Second

// regSink records what a provider delivers, in order.
type regSink struct {
	mu      sync.Mutex
	updates [][]Endpoint
	fails   []error
	order   []string // "update" or "fail", in delivery order
	// gate, when set, makes the next Update block until it is closed;
	// blocked is closed when that Update has started to wait.
	gate    chan struct{}
	blocked chan struct{}
}

func (s *regSink) Update(eps []Endpoint) {
	s.mu.Lock()
	s.updates = append(s.updates, eps)
	s.order = append(s.order, "update")
	gate, blocked := s.gate, s.blocked
	s.gate, s.blocked = nil, nil
	s.mu.Unlock()
	if gate != nil {
		close(blocked)
		<-gate
	}
}

func (s *regSink) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, err)
	s.order = append(s.order, "fail")
}

// hold makes the next Update block until release is closed.
func (s *regSink) hold() (blocked, release chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.blocked = make(chan struct{}), make(chan struct{})
	return s.blocked, s.gate
}

func (s *regSink) counts() (updates, fails int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.updates), len(s.fails)
}

// last returns the last set delivered and whether any was.
func (s *regSink) last() ([]Endpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.updates) == 0 {
		return nil, false
	}
	return s.updates[len(s.updates)-1], true
}

func (s *regSink) lastFail() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) == 0 {
		return nil
	}
	return s.fails[len(s.fails)-1]
}

func (s *regSink) allUpdates() [][]Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updates)
}

func (s *regSink) history() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// waitURLs waits until the last set delivered has exactly urls (in order)
// and returns it.
func (s *regSink) waitURLs(t *testing.T, urls ...string) []Endpoint {
	t.Helper()
	var got []string
	ok := regPoll(func() bool {
		eps, ok := s.last()
		got = regURLs(eps)
		return ok && slices.Equal(got, urls)
	})
	if !ok {
		t.Fatalf("endpoint set is %q after %v, want %q", got, regWait, urls)
	}
	eps, _ := s.last()
	return eps
}

// regPoll polls cond until it holds or regWait passes.
func regPoll(cond func() bool) bool {
	deadline := time.Now().Add(regWait)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func regURLs(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.URL.String()
	}
	return out
}

func newRegStore(t *testing.T, opts registry.MemoryOptions) *registry.Memory {
	t.Helper()
	m := registry.NewMemory(opts)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// register registers in (service "orders" unless set) with a TTL of ttl, or
// one minute when ttl is zero.
func register(t *testing.T, st registry.Store, in registry.Instance, ttl time.Duration) registry.Instance {
	t.Helper()
	if in.Service == "" {
		in.Service = "orders"
	}
	if ttl == 0 {
		ttl = time.Minute
	}
	out, err := st.Register(context.Background(), in, ttl)
	if err != nil {
		t.Fatalf("register %s: %v", in.ID, err)
	}
	return out
}

// runRegistry runs a registry provider on r until the test ends, and checks
// that Run then returns nil promptly.
func runRegistry(t *testing.T, r registry.Reader, f Filter, opts RegistryOptions) *regSink {
	t.Helper()
	p, err := NewRegistry(r, f, opts)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	sink := &regSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended, want nil", err)
			}
		case <-time.After(regWait):
			t.Errorf("Run did not return within %v after its context ended", regWait)
		}
	})
	return sink
}

func TestRegistryInitialSet(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "b", Address: "10.0.0.2:8080", Protocol: "grpc", Weight: 3,
		Version: "v2", Zone: "eu-1", Contract: "/openapi.json", Metadata: map[string]string{"tier": "gold"}}, 0)
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:8443", Protocol: "https"}, 0)
	register(t, st, registry.Instance{ID: "c", Address: "10.0.0.3:80"}, 0)
	register(t, st, registry.Instance{ID: "x", Service: "billing", Address: "10.0.0.9:80"}, 0)

	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	eps := sink.waitURLs(t, "h2c://10.0.0.2:8080", "http://10.0.0.3:80", "https://10.0.0.1:8443")
	want := []Endpoint{
		{Weight: 3, Meta: map[string]string{"tier": "gold", MetaInstance: "b", MetaVersion: "v2", MetaZone: "eu-1", MetaContract: "/openapi.json"}},
		{Weight: 0, Meta: map[string]string{MetaInstance: "c"}},
		{Weight: 0, Meta: map[string]string{MetaInstance: "a"}},
	}
	for i, w := range want {
		if eps[i].Weight != w.Weight || !maps.Equal(eps[i].Meta, w.Meta) {
			t.Errorf("endpoint %s: weight %d meta %v, want weight %d meta %v",
				eps[i].URL, eps[i].Weight, eps[i].Meta, w.Weight, w.Meta)
		}
	}
	if p, _ := NewRegistry(st, Filter{Service: "orders"}, RegistryOptions{}); p.Kind() != "registry" {
		t.Errorf("Kind() = %q, want registry", p.Kind())
	}
	if p, _ := NewRegistry(st, Filter{Service: "orders"}, RegistryOptions{Kind: "etcd"}); p.Kind() != "etcd" {
		t.Errorf("Kind() = %q, want etcd", p.Kind())
	}
}

func TestRegistryEmptyServiceDeliversEmptySet(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	if !regPoll(func() bool { n, _ := sink.counts(); return n > 0 }) {
		t.Fatal("no set delivered for a service without instances")
	}
	if eps, _ := sink.last(); eps == nil || len(eps) != 0 {
		t.Fatalf("first set = %v, want an empty, non-nil set", eps)
	}
}

func TestRegistryRegistrationAppears(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80"}, 0)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	sink.waitURLs(t, "http://10.0.0.1:80")

	start := time.Now()
	register(t, st, registry.Instance{ID: "b", Address: "10.0.0.2:80"}, 0)
	sink.waitURLs(t, "http://10.0.0.1:80", "http://10.0.0.2:80")
	t.Logf("registration reached the sink in %v (settle window %v)", time.Since(start), defaultSettle)
}

func TestRegistryDeregisterRemoves(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80"}, 0)
	register(t, st, registry.Instance{ID: "b", Address: "10.0.0.2:80"}, 0)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	sink.waitURLs(t, "http://10.0.0.1:80", "http://10.0.0.2:80")
	if err := st.Deregister(context.Background(), "orders", "a"); err != nil {
		t.Fatal(err)
	}
	sink.waitURLs(t, "http://10.0.0.2:80")
	if err := st.Deregister(context.Background(), "orders", "b"); err != nil {
		t.Fatal(err)
	}
	sink.waitURLs(t)
}

func TestRegistryVersionFilter(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80", Version: "v1"}, 0)
	register(t, st, registry.Instance{ID: "b", Address: "10.0.0.2:80", Version: "v2"}, 0)
	register(t, st, registry.Instance{ID: "c", Address: "10.0.0.3:80"}, 0)
	sink := runRegistry(t, st, Filter{Service: "orders", Version: "v2"}, RegistryOptions{})
	sink.waitURLs(t, "http://10.0.0.2:80")

	// A v1 registration changes nothing the filter lets through: no push.
	// The v2 one after it is the next set.
	register(t, st, registry.Instance{ID: "d", Address: "10.0.0.4:80", Version: "v1"}, 0)
	register(t, st, registry.Instance{ID: "e", Address: "10.0.0.5:80", Version: "v2"}, 0)
	sink.waitURLs(t, "http://10.0.0.2:80", "http://10.0.0.5:80")
	for i, eps := range sink.allUpdates() {
		for _, e := range eps {
			if e.Meta[MetaVersion] != "v2" {
				t.Errorf("update %d holds %s of version %q", i, e.URL, e.Meta[MetaVersion])
			}
		}
	}
	if n, _ := sink.counts(); n != 2 {
		t.Errorf("%d updates, want 2 (the v1 registration must not push an unchanged set)", n)
	}
}

func TestRegistryMetadataAndZoneFilter(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	gold := map[string]string{"tier": "gold"}
	register(t, st, registry.Instance{ID: "match", Address: "10.0.0.1:80", Zone: "a", Metadata: gold}, 0)
	register(t, st, registry.Instance{ID: "other-zone", Address: "10.0.0.2:80", Zone: "b", Metadata: gold}, 0)
	register(t, st, registry.Instance{ID: "no-tier", Address: "10.0.0.3:80", Zone: "a"}, 0)
	register(t, st, registry.Instance{ID: "silver", Address: "10.0.0.4:80", Zone: "a",
		Metadata: map[string]string{"tier": "silver"}}, 0)
	// The instance's own zone wins over a metadata key of the same name.
	register(t, st, registry.Instance{ID: "zone-in-meta", Address: "10.0.0.5:80", Zone: "b",
		Metadata: map[string]string{"tier": "gold", "zone": "a"}}, 0)
	// Without a zone field, the metadata's zone is the endpoint's zone.
	register(t, st, registry.Instance{ID: "meta-zone", Address: "10.0.0.6:80",
		Metadata: map[string]string{"tier": "gold", "zone": "a"}}, 0)

	sink := runRegistry(t, st, Filter{Service: "orders", Metadata: map[string]string{"zone": "a", "tier": "gold"}},
		RegistryOptions{})
	eps := sink.waitURLs(t, "http://10.0.0.1:80", "http://10.0.0.6:80")
	if eps[0].Meta[MetaZone] != "a" || eps[0].Meta[MetaInstance] != "match" {
		t.Errorf("meta = %v", eps[0].Meta)
	}

	// The filter also selects on the version key.
	register(t, st, registry.Instance{ID: "v9", Address: "10.0.0.7:80", Version: "9", Zone: "a", Metadata: gold}, 0)
	sink2 := runRegistry(t, st, Filter{Service: "orders", Metadata: map[string]string{"version": "9"}}, RegistryOptions{})
	sink2.waitURLs(t, "http://10.0.0.7:80")
}

func TestRegistryCriticalInstanceLeavesAndHeartbeatRevives(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{Grace: time.Hour})
	register(t, st, registry.Instance{ID: "steady", Address: "10.0.0.1:80"}, time.Hour)
	register(t, st, registry.Instance{ID: "flaky", Address: "10.0.0.2:80"}, 150*time.Millisecond)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})

	// No heartbeat: the TTL passes, the instance turns critical and leaves
	// the set (it may already have when the provider first listed).
	sink.waitURLs(t, "http://10.0.0.1:80")
	in, err := st.Instance(context.Background(), "orders", "flaky")
	if err != nil || in.Status != registry.StatusCritical {
		t.Fatalf("flaky = %+v, %v; want it listed as critical", in, err)
	}
	if _, err := st.Heartbeat(context.Background(), "orders", "flaky"); err != nil {
		t.Fatal(err)
	}
	sink.waitURLs(t, "http://10.0.0.1:80", "http://10.0.0.2:80")
}

func TestRegistryRemovedAfterGrace(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{Grace: -1})
	register(t, st, registry.Instance{ID: "steady", Address: "10.0.0.1:80"}, time.Hour)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	sink.waitURLs(t, "http://10.0.0.1:80")
	register(t, st, registry.Instance{ID: "short", Address: "10.0.0.2:80"}, 300*time.Millisecond)
	// The instance may come and go before a push shows it; it must be gone
	// in the end, and no set may hold it once the store removed it.
	if !regPoll(func() bool {
		_, err := st.Instance(context.Background(), "orders", "short")
		return errors.Is(err, registry.ErrNotFound)
	}) {
		t.Fatal("the store did not remove the expired instance")
	}
	sink.waitURLs(t, "http://10.0.0.1:80")
}

func TestRegistryBurstIsCoalesced(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "seed", Address: "10.0.1.0:80"}, 0)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	sink.waitURLs(t, "http://10.0.1.0:80")

	const n = 100
	want := []string{"http://10.0.1.0:80"}
	for i := range n {
		in := register(t, st, registry.Instance{ID: fmt.Sprintf("i%03d", i), Address: fmt.Sprintf("10.0.0.%d:80", i+1)}, 0)
		want = append(want, "http://"+in.Address)
	}
	slices.Sort(want)
	sink.waitURLs(t, want...)

	ups := sink.allUpdates()
	pushes := len(ups) - 1
	t.Logf("%d registrations reached the sink in %d pushes", n, pushes)
	if pushes > n/4 {
		t.Errorf("%d registrations made %d pushes, want them coalesced into at most %d", n, pushes, n/4)
	}
	for i := 1; i < len(ups); i++ {
		if len(ups[i]) <= len(ups[i-1]) {
			t.Errorf("push %d has %d endpoints after %d: registrations only add", i, len(ups[i]), len(ups[i-1]))
		}
	}
}

func TestRegistrySettleWindowDoesNotExtend(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{Settle: 200 * time.Millisecond})
	sink.waitURLs(t)

	// A change every 20ms for about 2s never leaves the stream quiet for a
	// whole window: a window that restarted with every change would push
	// nothing until the end.
	for i := range 100 {
		register(t, st, registry.Instance{ID: fmt.Sprintf("i%03d", i), Address: fmt.Sprintf("10.0.0.%d:80", i+1)}, 0)
		time.Sleep(20 * time.Millisecond)
	}
	during, _ := sink.counts()
	if during < 3 {
		t.Errorf("%d sets pushed during a 2s stream of changes with a 200ms window, want at least 3", during)
	}
}

func TestRegistryNegativeSettlePushesEveryChange(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{Settle: -1})
	sink.waitURLs(t)
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80"}, 0)
	register(t, st, registry.Instance{ID: "b", Address: "10.0.0.2:80"}, 0)
	sink.waitURLs(t, "http://10.0.0.1:80", "http://10.0.0.2:80")
	if n, _ := sink.counts(); n != 3 {
		t.Errorf("%d updates, want 3: the empty set and one per registration", n)
	}
}

func TestRegistryDuplicateAddressKeepsNewest(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "old", Address: "10.0.0.1:80", Version: "v1"}, 0)
	register(t, st, registry.Instance{ID: "new", Address: "10.0.0.1:80", Version: "v2"}, 0)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	eps := sink.waitURLs(t, "http://10.0.0.1:80")
	if eps[0].Meta[MetaInstance] != "new" {
		t.Errorf("kept instance %q, want the most recently changed, new", eps[0].Meta[MetaInstance])
	}
	if err := st.Deregister(context.Background(), "orders", "new"); err != nil {
		t.Fatal(err)
	}
	if !regPoll(func() bool {
		eps, _ := sink.last()
		return len(eps) == 1 && eps[0].Meta[MetaInstance] == "old"
	}) {
		t.Fatal("the remaining instance of the address did not take over")
	}
}

func TestRegistrySinkOwnsItsSets(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80", Metadata: map[string]string{"k": "v"}}, 0)
	sink := runRegistry(t, st, Filter{Service: "orders"}, RegistryOptions{})
	eps := sink.waitURLs(t, "http://10.0.0.1:80")
	// The sink changes what it was given; the provider must neither see it
	// as a change nor hand it out again.
	eps[0].Meta["k"] = "changed"
	eps[0].URL.Host = "10.9.9.9:1"

	register(t, st, registry.Instance{ID: "b", Address: "10.0.0.2:80"}, 0)
	eps = sink.waitURLs(t, "http://10.0.0.1:80", "http://10.0.0.2:80")
	if eps[0].Meta["k"] != "v" {
		t.Errorf("meta k = %q, want v", eps[0].Meta["k"])
	}
	if in, _ := st.Instance(context.Background(), "orders", "a"); in.Metadata["k"] != "v" {
		t.Errorf("the store's metadata changed: %v", in.Metadata)
	}
}

// countingReader counts listings of the Reader it wraps.
type countingReader struct {
	registry.Reader
	lists atomic.Int64
}

func (c *countingReader) Instances(ctx context.Context, service string) ([]registry.Instance, int64, error) {
	c.lists.Add(1)
	return c.Reader.Instances(ctx, service)
}

// TestRegistryResyncAfterCompaction forces a real ErrCompacted: the store
// keeps 8 events and the sink blocks the provider while 50 registrations
// pass, so its watch falls behind the history. The provider must list again
// without reporting a failure.
func TestRegistryResyncAfterCompaction(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{History: 8})
	cr := &countingReader{Reader: st}
	sink := runRegistry(t, cr, Filter{Service: "orders"}, RegistryOptions{})
	sink.waitURLs(t)

	blocked, release := sink.hold()
	register(t, st, registry.Instance{ID: "first", Address: "10.0.1.0:80"}, 0)
	select {
	case <-blocked:
	case <-time.After(regWait):
		t.Fatal("the provider did not push the first registration")
	}
	listsBefore := cr.lists.Load()
	want := []string{"http://10.0.1.0:80"}
	for i := range 50 {
		in := register(t, st, registry.Instance{ID: fmt.Sprintf("i%02d", i), Address: fmt.Sprintf("10.0.0.%d:80", i+1)}, 0)
		want = append(want, "http://"+in.Address)
	}
	close(release)
	slices.Sort(want)
	sink.waitURLs(t, want...)

	if lists := cr.lists.Load(); lists <= listsBefore {
		t.Errorf("the provider listed %d times, as before the burst: it did not resync", lists)
	}
	if _, fails := sink.counts(); fails != 0 {
		t.Errorf("%d failures reported; falling behind the history is no failure", fails)
	}
}

// faultyReader wraps a Reader and fails every call, and every watch in
// progress, with ErrUnavailable while broken.
type faultyReader struct {
	registry.Reader
	mu     sync.Mutex
	broken chan struct{} // closed while broken; nil while healthy
	calls  atomic.Int64  // calls made while broken
}

func (f *faultyReader) setBroken(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case b && f.broken == nil:
		f.broken = make(chan struct{})
		close(f.broken)
	case !b:
		f.broken = nil
	}
}

func (f *faultyReader) brokenCh() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.broken
}

func (f *faultyReader) check() error {
	if f.brokenCh() != nil {
		f.calls.Add(1)
		return fmt.Errorf("registry down: %w", registry.ErrUnavailable)
	}
	return nil
}

func (f *faultyReader) Instances(ctx context.Context, service string) ([]registry.Instance, int64, error) {
	if err := f.check(); err != nil {
		return nil, 0, err
	}
	return f.Reader.Instances(ctx, service)
}

func (f *faultyReader) Watch(ctx context.Context, service string, after int64) (registry.Watcher, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	w, err := f.Reader.Watch(ctx, service, after)
	if err != nil {
		return nil, err
	}
	return &faultyWatcher{Watcher: w, f: f}, nil
}

type faultyWatcher struct {
	registry.Watcher
	f *faultyReader
}

// Next waits for the wrapped watcher's next event, or fails as soon as the
// reader breaks.
func (w *faultyWatcher) Next(ctx context.Context) (registry.Event, error) {
	for {
		if err := w.f.check(); err != nil {
			return registry.Event{}, err
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		ev, err := w.Watcher.Next(nctx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return ev, err
		}
	}
}

func TestRegistryFailureKeepsLastSetAndRecovers(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80"}, 0)
	fr := &faultyReader{Reader: st}
	sink := runRegistry(t, fr, Filter{Service: "orders"},
		RegistryOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	sink.waitURLs(t, "http://10.0.0.1:80")

	for episode := 1; episode <= 2; episode++ {
		fr.setBroken(true)
		if !regPoll(func() bool { _, f := sink.counts(); return f == episode }) {
			t.Fatalf("episode %d: no failure reported", episode)
		}
		// Let it retry a few times: still one failure per episode, and
		// no set pushed while the registry is down.
		calls := fr.calls.Load()
		if !regPoll(func() bool { return fr.calls.Load() >= calls+3 }) {
			t.Fatalf("episode %d: the provider stopped retrying", episode)
		}
		ups, fails := sink.counts()
		if fails != episode {
			t.Errorf("episode %d: %d failures reported, want one per episode", episode, fails)
		}
		if err := sink.lastFail(); !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("failure = %v, want it to wrap ErrUnavailable", err)
		}
		register(t, st, registry.Instance{ID: fmt.Sprintf("late%d", episode), Address: fmt.Sprintf("10.0.0.%d:80", episode+1)}, 0)
		if h := sink.history(); h[len(h)-1] != "fail" {
			t.Errorf("episode %d: history %v, want it to end with the failure", episode, h)
		}
		fr.setBroken(false)
		want := []string{"http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.3:80"}[:episode+1]
		sink.waitURLs(t, want...)
		if n, _ := sink.counts(); n != ups+1 {
			t.Errorf("episode %d: %d updates after recovery, want one", episode, n-ups)
		}
	}

	// Recovery with an unchanged set still delivers an Update, which
	// clears the failure.
	fr.setBroken(true)
	if !regPoll(func() bool { _, f := sink.counts(); return f == 3 }) {
		t.Fatal("no failure reported")
	}
	fr.setBroken(false)
	if !regPoll(func() bool { h := sink.history(); return h[len(h)-1] == "update" }) {
		t.Fatalf("no update after recovering with an unchanged set: %v", sink.history())
	}
}

func TestRegistryStartsWhileUnavailable(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80"}, 0)
	fr := &faultyReader{Reader: st}
	fr.setBroken(true)
	sink := runRegistry(t, fr, Filter{Service: "orders"},
		RegistryOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if !regPoll(func() bool { _, f := sink.counts(); return f == 1 }) {
		t.Fatal("no failure reported")
	}
	fr.setBroken(false)
	sink.waitURLs(t, "http://10.0.0.1:80")
	if h := sink.history(); !slices.Equal(h, []string{"fail", "update"}) {
		t.Errorf("history %v, want [fail update]", h)
	}
}

// raceReader registers an instance between the provider's first listing
// and its watch.
type raceReader struct {
	registry.Reader
	st   registry.Store
	once sync.Once
	t    *testing.T
}

func (r *raceReader) Watch(ctx context.Context, service string, after int64) (registry.Watcher, error) {
	r.once.Do(func() {
		in := registry.Instance{Service: "orders", ID: "early", Address: "10.0.0.1:80"}
		if _, err := r.st.Register(ctx, in, time.Minute); err != nil {
			r.t.Errorf("register: %v", err) // not Fatal: this is the provider's goroutine
		}
	})
	return r.Reader.Watch(ctx, service, after)
}

// TestRegistryChangeBetweenEmptyListingAndWatch pins down a lost update:
// an empty store lists at revision 0, and a watch after revision 0 means
// "from now on", so a registration between the two was never seen.
func TestRegistryChangeBetweenEmptyListingAndWatch(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	sink := runRegistry(t, &raceReader{Reader: st, st: st, t: t}, Filter{Service: "orders"}, RegistryOptions{})
	sink.waitURLs(t, "http://10.0.0.1:80")
}

func TestRegistryOverHTTP(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	h, err := registry.NewHandler(st, registry.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var watches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/watch") {
			watches.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := registry.NewClient(srv.URL, registry.ClientOptions{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	register(t, st, registry.Instance{ID: "a", Address: "10.0.0.1:80", Version: "v1"}, 0)
	sink := runRegistry(t, c, Filter{Service: "orders"}, RegistryOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	sink.waitURLs(t, "http://10.0.0.1:80")

	if _, err := c.Register(context.Background(), registry.Instance{Service: "orders", ID: "b", Address: "10.0.0.2:80", Protocol: "h2c"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	eps := sink.waitURLs(t, "h2c://10.0.0.2:80", "http://10.0.0.1:80")
	if eps[1].Meta[MetaVersion] != "v1" {
		t.Errorf("meta over HTTP = %v", eps[1].Meta)
	}

	// Drop the watch stream mid-watch; the changes made meanwhile and
	// after must still arrive.
	for i := range 3 {
		srv.CloseClientConnections()
		register(t, st, registry.Instance{ID: fmt.Sprintf("c%d", i), Address: fmt.Sprintf("10.0.0.%d:80", i+3)}, 0)
	}
	if err := st.Deregister(context.Background(), "orders", "a"); err != nil {
		t.Fatal(err)
	}
	sink.waitURLs(t, "h2c://10.0.0.2:80", "http://10.0.0.3:80", "http://10.0.0.4:80", "http://10.0.0.5:80")
	if n := watches.Load(); n < 2 {
		t.Errorf("%d watch requests: the stream was never dropped and resumed", n)
	}
}

func TestNewRegistryValidation(t *testing.T) {
	t.Parallel()
	st := newRegStore(t, registry.MemoryOptions{})
	tests := []struct {
		name string
		r    registry.Reader
		f    Filter
		opts RegistryOptions
		want string
	}{
		{"nil reader", nil, Filter{Service: "s"}, RegistryOptions{}, "reader is nil"},
		{"no service", st, Filter{}, RegistryOptions{}, "service is required"},
		{"negative min backoff", st, Filter{Service: "s"}, RegistryOptions{MinBackoff: -1}, "MinBackoff"},
		{"negative max backoff", st, Filter{Service: "s"}, RegistryOptions{MaxBackoff: -1}, "MaxBackoff"},
		{"min above max", st, Filter{Service: "s"}, RegistryOptions{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "above MaxBackoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRegistry(tc.r, tc.f, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// Only MaxBackoff below the default minimum: the minimum follows it.
	if _, err := NewRegistry(st, Filter{Service: "s"}, RegistryOptions{MaxBackoff: 10 * time.Millisecond}); err != nil {
		t.Errorf("MaxBackoff 10ms alone: %v", err)
	}
	// A nil sink cannot run.
	p, _ := NewRegistry(st, Filter{Service: "s"}, RegistryOptions{})
	if err := p.Run(context.Background(), nil); err == nil {
		t.Error("Run with a nil sink returned nil")
	}
}

func TestInstanceURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, proto, want string
	}{
		{"10.0.0.1:80", "", "http://10.0.0.1:80"},
		{"[::1]:8443", "https", "https://[::1]:8443"},
		{"svc.local:9000", "grpc", "h2c://svc.local:9000"},
		{"10.0.0.1", "", ""},
		{"10.0.0.1:0", "", ""},
		{"10.0.0.1:70000", "", ""},
		{":80", "", ""},
		{"user@host:80", "", ""},
		{"host:80/path", "", ""},
		{"host:80?q", "", ""},
		{"ho st:80", "", ""},
		{"\xca:1", "", ""},
		{"h%41:1", "", ""},
		{"[::1]:+80", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		u, ok := instanceURL(&registry.Instance{Address: tc.addr, Protocol: tc.proto})
		got := ""
		if ok {
			got = u.String()
		}
		if got != tc.want {
			t.Errorf("instanceURL(%q, %q) = %q, want %q", tc.addr, tc.proto, got, tc.want)
		}
	}
}

// FuzzInstanceURL: an address from the registry (etcd may hold anything)
// either becomes scheme://address exactly, with a valid port, or is
// refused.
func FuzzInstanceURL(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "[::1]:443", "host:0", "a@b:1", "h:1/x", "[fe80::1%25eth0]:80", "h:65536", "\xca:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		u, ok := instanceURL(&registry.Instance{Address: addr})
		if !ok {
			return
		}
		if s := u.String(); s != "http://"+addr {
			t.Fatalf("address %q gave URL %q", addr, s)
		}
		if u.Hostname() == "" || u.Port() == "" {
			t.Fatalf("address %q gave URL %q without host or port", addr, u)
		}
	})
}

// BenchmarkRegistryChange measures what one change costs the provider: the
// event applied, and the set rebuilt, compared and copied for the sink.
func BenchmarkRegistryChange(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			p, err := NewRegistry(registry.NewMemory(registry.MemoryOptions{}), Filter{Service: "orders"}, RegistryOptions{})
			if err != nil {
				b.Fatal(err)
			}
			run := &registryRun{p: p.(*registryProvider), sink: discardSink{}, instances: map[string]*tracked{}, noted: map[string]bool{}}
			list := make([]registry.Instance, n)
			for i := range list {
				list[i] = registry.Instance{ID: fmt.Sprintf("i%04d", i), Service: "orders",
					Address: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1), Version: "v1", Zone: "a",
					Status: registry.StatusPassing, Revision: int64(i + 1), Metadata: map[string]string{"k": "v"}}
			}
			run.reset(list, int64(n))
			run.push()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// Every change alters the set: the weight of one
				// instance moves between 1 and 2.
				in := list[i%n]
				in.Weight = (i/n)%2 + 1
				run.apply(registry.Event{Type: registry.EventPut, Instance: in, Revision: int64(n + 1 + i)})
				run.push()
			}
		})
	}
}

type discardSink struct{}

func (discardSink) Update([]Endpoint) {}
func (discardSink) Fail(error)        {}
