package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

func newMemory(t testing.TB, opts MemoryOptions) *Memory {
	t.Helper()
	m := NewMemory(opts)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func testInstance(service, id string) Instance {
	return Instance{Service: service, ID: id, Address: "127.0.0.1:8080", Version: "v1"}
}

func mustRegister(t testing.TB, m *Memory, in Instance, ttl time.Duration) Instance {
	t.Helper()
	out, err := m.Register(context.Background(), in, ttl)
	if err != nil {
		t.Fatalf("register %s/%s: %v", in.Service, in.ID, err)
	}
	return out
}

// waitFor polls cond every few milliseconds until it holds or timeout
// passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func status(t testing.TB, m *Memory, service, id string) string {
	t.Helper()
	in, err := m.Instance(context.Background(), service, id)
	if errors.Is(err, ErrNotFound) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	return in.Status
}

// nextEvent reads one event within a generous bound.
func nextEvent(t testing.TB, w Watcher) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return ev
}

// noEvent asserts that no event arrives within d.
func noEvent(t testing.TB, w Watcher, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if ev, err := w.Next(ctx); err == nil {
		t.Fatalf("unexpected event %s rev %d (%s)", ev.Type, ev.Revision, ev.Instance.Status)
	}
}

func watch(t testing.TB, m *Memory, service string, after int64) Watcher {
	t.Helper()
	w, err := m.Watch(context.Background(), service, after)
	if err != nil {
		t.Fatalf("watch after %d: %v", after, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestMemoryRegisterListAndSummarize(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	b := testInstance("billing", "b-1")
	b.Metadata = map[string]string{"team": "payments"}
	mustRegister(t, m, b, time.Minute)
	o2 := testInstance("orders", "o-2")
	o2.Version = "v2"
	mustRegister(t, m, o2, time.Minute)
	out := mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	if out.Status != StatusPassing || out.TTL.D() != time.Minute || out.Revision != 3 ||
		out.RegisteredAt.IsZero() || !out.LastHeartbeat.Equal(out.RegisteredAt) {
		t.Fatalf("stored instance: %+v", out)
	}

	all, rev, err := m.Instances(context.Background(), "")
	if err != nil || rev != 3 {
		t.Fatalf("Instances: rev %d, err %v", rev, err)
	}
	var got []string
	for _, in := range all {
		got = append(got, in.Service+"/"+in.ID)
	}
	if want := []string{"billing/b-1", "orders/o-1", "orders/o-2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order: %v, want %v", got, want)
	}
	// Listings are deep copies.
	all[0].Metadata["team"] = "changed"
	again, _, _ := m.Instances(context.Background(), "billing")
	if again[0].Metadata["team"] != "payments" {
		t.Fatal("changing a listed instance's metadata changed the store")
	}
	if none, _, err := m.Instances(context.Background(), "nothing"); err != nil || none == nil || len(none) != 0 {
		t.Fatalf("unknown service: %v, %v; want an empty, non-nil list", none, err)
	}

	sums, err := m.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []ServiceSummary{
		{Name: "billing", Instances: 1, Passing: 1, Versions: []string{"v1"}},
		{Name: "orders", Instances: 2, Passing: 2, Versions: []string{"v1", "v2"}},
	}
	if !reflect.DeepEqual(sums, want) {
		t.Fatalf("services: %+v, want %+v", sums, want)
	}
}

func TestMemoryRegisterRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	bad := testInstance("orders", "o-1")
	bad.Address = "nowhere"
	if _, err := m.Register(context.Background(), bad, time.Minute); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid address: %v, want ErrInvalid", err)
	}
	if _, err := m.Register(context.Background(), testInstance("orders", "o-1"), 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero TTL: %v, want ErrInvalid", err)
	}
	if rev, _ := m.Revision(context.Background()); rev != 0 {
		t.Fatalf("refused registrations moved the revision to %d", rev)
	}
}

func TestMemoryTTLExpiryMarksCritical(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{Grace: time.Minute})
	const ttl = 50 * time.Millisecond
	start := time.Now()
	out := mustRegister(t, m, testInstance("orders", "o-1"), ttl)
	w := watch(t, m, "", out.Revision)
	ev := nextEvent(t, w)
	if elapsed := time.Since(start); elapsed < ttl {
		t.Fatalf("critical after %v, before the TTL of %v", elapsed, ttl)
	}
	if ev.Type != EventPut || ev.Instance.Status != StatusCritical || ev.Revision != out.Revision+1 || ev.Instance.Revision != ev.Revision {
		t.Fatalf("event: %+v", ev)
	}
	if s := status(t, m, "orders", "o-1"); s != StatusCritical {
		t.Fatalf("status %s, want critical", s)
	}
	sums, _ := m.Services(context.Background())
	if sums[0].Instances != 1 || sums[0].Passing != 0 {
		t.Fatalf("summary of a critical instance: %+v", sums[0])
	}
}

func TestMemoryGraceRemovesCriticalInstance(t *testing.T) {
	t.Parallel()
	const ttl, grace = 30 * time.Millisecond, 60 * time.Millisecond
	m := newMemory(t, MemoryOptions{Grace: grace})
	start := time.Now()
	mustRegister(t, m, testInstance("orders", "o-1"), ttl)
	w := watch(t, m, "", 1)
	if ev := nextEvent(t, w); ev.Type != EventPut || ev.Instance.Status != StatusCritical {
		t.Fatalf("first event: %+v", ev)
	}
	ev := nextEvent(t, w)
	if elapsed := time.Since(start); elapsed < ttl+grace {
		t.Fatalf("removed after %v, before TTL+grace %v", elapsed, ttl+grace)
	}
	if ev.Type != EventDelete || ev.Instance.ID != "o-1" || ev.Instance.Service != "orders" || ev.Revision != 3 {
		t.Fatalf("delete event: %+v", ev)
	}
	if s := status(t, m, "orders", "o-1"); s != "absent" {
		t.Fatalf("status %s, want absent", s)
	}
	if sums, _ := m.Services(context.Background()); len(sums) != 0 {
		t.Fatalf("a service without instances is still listed: %+v", sums)
	}
	if _, err := m.Heartbeat(context.Background(), "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat after removal: %v, want ErrNotFound", err)
	}
}

func TestMemoryNegativeGraceRemovesWithoutCriticalPhase(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{Grace: -1})
	mustRegister(t, m, testInstance("orders", "o-1"), 30*time.Millisecond)
	w := watch(t, m, "", 1)
	if ev := nextEvent(t, w); ev.Type != EventDelete || ev.Revision != 2 {
		t.Fatalf("event: %+v, want the delete at revision 2", ev)
	}
	if s := status(t, m, "orders", "o-1"); s != "absent" {
		t.Fatalf("status %s, want absent", s)
	}
}

func TestMemoryHeartbeatKeepsPassingWithoutEvents(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{Grace: time.Minute})
	const ttl = 100 * time.Millisecond
	out := mustRegister(t, m, testInstance("orders", "o-1"), ttl)
	w := watch(t, m, "", out.Revision)
	last := out.LastHeartbeat
	for end := time.Now().Add(4 * ttl); time.Now().Before(end); {
		time.Sleep(ttl / 10)
		hb, err := m.Heartbeat(context.Background(), "orders", "o-1")
		if err != nil {
			t.Fatal(err)
		}
		if hb.Status != StatusPassing || hb.Revision != out.Revision || hb.LastHeartbeat.Before(last) {
			t.Fatalf("after heartbeat: %+v", hb)
		}
		last = hb.LastHeartbeat
	}
	if !last.After(out.LastHeartbeat) {
		t.Fatal("LastHeartbeat did not advance")
	}
	if rev, _ := m.Revision(context.Background()); rev != out.Revision {
		t.Fatalf("heartbeats moved the revision from %d to %d", out.Revision, rev)
	}
	noEvent(t, w, 10*time.Millisecond)
}

// TestMemoryHeartbeatRevivesCritical also pins down that a revived instance
// expires one TTL after its last heartbeat, not at the end of the grace
// period its timer was armed for while it was critical.
func TestMemoryHeartbeatRevivesCritical(t *testing.T) {
	t.Parallel()
	const ttl = 40 * time.Millisecond
	m := newMemory(t, MemoryOptions{Grace: time.Minute})
	mustRegister(t, m, testInstance("orders", "o-1"), ttl)
	w := watch(t, m, "", 1)
	if ev := nextEvent(t, w); ev.Instance.Status != StatusCritical {
		t.Fatalf("event: %+v, want critical", ev)
	}
	hb, err := m.Heartbeat(context.Background(), "orders", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	revived := time.Now()
	if hb.Status != StatusPassing || hb.Revision != 3 {
		t.Fatalf("after heartbeat: %+v, want passing at revision 3", hb)
	}
	if ev := nextEvent(t, w); ev.Type != EventPut || ev.Instance.Status != StatusPassing || ev.Revision != 3 {
		t.Fatalf("revival event: %+v", ev)
	}
	ev := nextEvent(t, w)
	if ev.Instance.Status != StatusCritical || ev.Revision != 4 {
		t.Fatalf("event after revival: %+v, want critical again", ev)
	}
	if d := time.Since(revived); d > 10*time.Second {
		t.Fatalf("critical again only after %v; the TTL is %v", d, ttl)
	}
}

func TestMemoryReregistrationReplacesEntry(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{Grace: -1})
	first := mustRegister(t, m, testInstance("orders", "o-1"), 30*time.Millisecond)
	// The instance restarts on another port with the same id and a long
	// TTL: the first registration's timer must not remove the new entry.
	restarted := testInstance("orders", "o-1")
	restarted.Address = "127.0.0.1:9090"
	restarted.Metadata = map[string]string{"boot": "2"}
	w := watch(t, m, "", first.Revision)
	second := mustRegister(t, m, restarted, time.Minute)
	ev := nextEvent(t, w)
	if ev.Type != EventPut || ev.Instance.Address != "127.0.0.1:9090" || ev.Revision != 2 {
		t.Fatalf("replacement event: %+v", ev)
	}
	if second.RegisteredAt.Before(first.RegisteredAt) {
		t.Fatalf("RegisteredAt went back: %v then %v", first.RegisteredAt, second.RegisteredAt)
	}
	// The caller's map was copied.
	restarted.Metadata["boot"] = "changed"
	noEvent(t, w, 150*time.Millisecond)
	all, _, _ := m.Instances(context.Background(), "orders")
	if len(all) != 1 || all[0].Address != "127.0.0.1:9090" || all[0].Status != StatusPassing || all[0].Metadata["boot"] != "2" {
		t.Fatalf("after re-registration: %+v", all)
	}
}

func TestMemoryDeregister(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	w := watch(t, m, "orders", 1)
	if err := m.Deregister(context.Background(), "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Type != EventDelete || ev.Revision != 2 || ev.Instance.ID != "o-1" {
		t.Fatalf("event: %+v", ev)
	}
	if err := m.Deregister(context.Background(), "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second deregister: %v, want ErrNotFound", err)
	}
	if _, err := m.Heartbeat(context.Background(), "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat after deregister: %v, want ErrNotFound", err)
	}
}

func TestMemoryWatchResumesAfterRevision(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	for i := range 10 {
		mustRegister(t, m, testInstance("orders", fmt.Sprintf("o-%d", i)), time.Minute)
	}
	w := watch(t, m, "", 4)
	for want := int64(5); want <= 10; want++ {
		if ev := nextEvent(t, w); ev.Revision != want {
			t.Fatalf("got revision %d, want %d", ev.Revision, want)
		}
	}
	noEvent(t, w, 10*time.Millisecond)
	// Live changes follow the replayed ones.
	if err := m.Deregister(context.Background(), "orders", "o-0"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Revision != 11 || ev.Type != EventDelete {
		t.Fatalf("live event: %+v", ev)
	}

	// after 0 is "from now on".
	now := watch(t, m, "", 0)
	noEvent(t, now, 10*time.Millisecond)
	mustRegister(t, m, testInstance("orders", "o-new"), time.Minute)
	if ev := nextEvent(t, now); ev.Revision != 12 {
		t.Fatalf("watch from now: revision %d, want 12", ev.Revision)
	}
}

func TestMemoryWatchCompaction(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{History: 5})
	for i := range 10 {
		mustRegister(t, m, testInstance("orders", fmt.Sprintf("o-%d", i)), time.Minute)
	}
	// Revisions 6–10 are kept: resuming after 5 works, after 4 does not.
	w := watch(t, m, "", 5)
	if ev := nextEvent(t, w); ev.Revision != 6 {
		t.Fatalf("first replayed revision %d, want 6", ev.Revision)
	}
	for _, after := range []int64{4, 1, -1, 11} {
		if _, err := m.Watch(context.Background(), "", after); !errors.Is(err, ErrCompacted) {
			t.Errorf("watch after %d: %v, want ErrCompacted", after, err)
		}
	}

	// A watcher that falls further behind than the history fails.
	slow := watch(t, m, "", 10)
	for i := range 6 {
		mustRegister(t, m, testInstance("orders", fmt.Sprintf("p-%d", i)), time.Minute)
	}
	for range 2 {
		if _, err := slow.Next(context.Background()); !errors.Is(err, ErrCompacted) {
			t.Fatalf("slow watcher: %v, want ErrCompacted", err)
		}
	}
}

func TestMemoryWatchFiltersByService(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	w := watch(t, m, "billing", 0)
	mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	mustRegister(t, m, testInstance("billing", "b-1"), time.Minute)
	mustRegister(t, m, testInstance("orders", "o-2"), time.Minute)
	mustRegister(t, m, testInstance("billing-eu", "b-2"), time.Minute)
	if ev := nextEvent(t, w); ev.Instance.Service != "billing" || ev.Revision != 2 {
		t.Fatalf("event: %+v", ev)
	}
	noEvent(t, w, 20*time.Millisecond)
}

func TestMemoryWatchEventsAreCopies(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	in := testInstance("orders", "o-1")
	in.Metadata = map[string]string{"k": "v"}
	a, b := watch(t, m, "", 0), watch(t, m, "", 0)
	mustRegister(t, m, in, time.Minute)
	ev := nextEvent(t, a)
	ev.Instance.Metadata["k"] = "changed"
	if ev := nextEvent(t, b); ev.Instance.Metadata["k"] != "v" {
		t.Fatal("a watcher changing its event's metadata changed another watcher's")
	}
	got, _ := m.Instance(context.Background(), "orders", "o-1")
	if got.Metadata["k"] != "v" {
		t.Fatal("a watcher changing its event's metadata changed the store")
	}
}

func TestMemoryWatchNextContext(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	w := watch(t, m, "", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: %v, want the context's error", err)
	}
	// The watch goes on after a context error.
	mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	if ev := nextEvent(t, w); ev.Revision != 1 {
		t.Fatalf("event after a context error: %+v", ev)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := m.Watch(cctx, "", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch with a canceled context: %v", err)
	}
}

func TestMemoryWatcherClose(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{})
	w := watch(t, m, "", 0)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let Next block (not required for the outcome)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Next: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a blocked Next")
	}
	_ = w.Close() // idempotent
	mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	if _, err := w.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

func TestMemoryClose(t *testing.T) {
	t.Parallel()
	m := NewMemory(MemoryOptions{Grace: -1})
	mustRegister(t, m, testInstance("orders", "o-1"), 20*time.Millisecond)
	w, err := m.Watch(context.Background(), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// Closing beats the 20ms TTL: the watcher sees no event.
		_, err := w.Next(context.Background())
		errc <- err
	}()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("Next: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a blocked Next")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := m.Register(ctx, testInstance("orders", "o-2"), time.Minute); !errors.Is(err, ErrClosed) {
		t.Errorf("Register: %v", err)
	}
	if _, err := m.Heartbeat(ctx, "orders", "o-1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Heartbeat: %v", err)
	}
	if err := m.Deregister(ctx, "orders", "o-1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Deregister: %v", err)
	}
	if _, _, err := m.Instances(ctx, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Instances: %v", err)
	}
	if _, err := m.Services(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Services: %v", err)
	}
	if _, err := m.Watch(ctx, "", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch: %v", err)
	}
	// The stopped timer removes nothing after Close.
	time.Sleep(50 * time.Millisecond)
	if rev := m.rev.Load(); rev != 1 {
		t.Errorf("revision %d after Close, want 1: a timer ran", rev)
	}
}

// TestMemoryConcurrentUse runs registrations, heartbeats, deregistrations,
// expiries and watches at once (run it with -race), then checks that
// replaying the events a watcher saw up to a listing's revision gives
// exactly that listing.
func TestMemoryConcurrentUse(t *testing.T) {
	t.Parallel()
	m := newMemory(t, MemoryOptions{Grace: 20 * time.Millisecond})
	const workers, ops = 8, 300
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var (
		mu     sync.Mutex
		events []Event
		failed error
	)
	collect := func(w Watcher, check bool) {
		for {
			ev, err := w.Next(ctx)
			if err != nil {
				return
			}
			if !check {
				continue
			}
			mu.Lock()
			if n := len(events); failed == nil && n > 0 && ev.Revision != events[n-1].Revision+1 {
				failed = fmt.Errorf("revision %d after %d", ev.Revision, events[n-1].Revision)
			}
			events = append(events, ev)
			mu.Unlock()
		}
	}
	go collect(watch(t, m, "", 0), true)
	go collect(watch(t, m, "svc-1", 0), false)

	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range ops {
				in := testInstance(fmt.Sprintf("svc-%d", rng.IntN(2)), fmt.Sprintf("i-%d", rng.IntN(10)))
				switch rng.IntN(4) {
				case 0:
					_, _ = m.Register(ctx, in, time.Duration(5+rng.IntN(20))*time.Millisecond)
				case 1:
					_ = m.Deregister(ctx, in.Service, in.ID)
				default:
					_, _ = m.Heartbeat(ctx, in.Service, in.ID)
				}
				_, _, _ = m.Instances(ctx, in.Service)
				if rng.IntN(50) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	final, rev, err := m.Instances(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if rev < workers*ops/4 {
		t.Fatalf("only %d revisions; the workload did not run", rev)
	}
	waitFor(t, 20*time.Second, "the watcher to reach the listing's revision", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0 && events[len(events)-1].Revision >= rev
	})
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		t.Fatal(failed)
	}
	replayed := make(map[string]Instance)
	for _, ev := range events {
		if ev.Revision > rev {
			break
		}
		key := ev.Instance.Service + "/" + ev.Instance.ID
		if ev.Type == EventDelete {
			delete(replayed, key)
		} else {
			replayed[key] = ev.Instance
		}
	}
	if len(replayed) != len(final) {
		t.Fatalf("replay has %d instances, the listing %d", len(replayed), len(final))
	}
	for _, in := range final {
		got := replayed[in.Service+"/"+in.ID]
		// Heartbeats move LastHeartbeat without an event.
		got.LastHeartbeat, in.LastHeartbeat = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("replayed %+v\nlisted   %+v", got, in)
		}
	}
}
