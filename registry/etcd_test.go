package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/etcdtest"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdEndpoints returns the shared etcd server when CI runs one, and a
// private one otherwise. Tests that stop, compact or time a server use
// etcdtest.Start instead.
func etcdEndpoints(t *testing.T) []string {
	t.Helper()
	if os.Getenv(etcdtest.SharedEnv) != "" {
		return etcdtest.Shared(t)
	}
	return etcdtest.Start(t).Endpoints()
}

var etcdPrefixSeq atomic.Int64

// etcdPrefix returns a key prefix no other test uses, on a shared server
// too.
func etcdPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/portico-test/%s-%d-%d-%d/", name, os.Getpid(), time.Now().UnixNano(), etcdPrefixSeq.Add(1))
}

// newEtcd opens a store on endpoints, closed when the test ends. An empty
// opts.Prefix gets a prefix of the test's own.
func newEtcd(t testing.TB, endpoints []string, opts EtcdOptions) *Etcd {
	t.Helper()
	opts.Endpoints = endpoints
	if opts.Prefix == "" {
		opts.Prefix = etcdPrefix(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewEtcd(ctx, opts)
	if err != nil {
		t.Fatalf("NewEtcd: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func etcdInstance(service, id string) Instance {
	return Instance{Service: service, ID: id, Address: "127.0.0.1:8080", Version: "v1",
		Metadata: map[string]string{"team": "core"}}
}

func etcdRegister(t testing.TB, s Store, in Instance, ttl time.Duration) Instance {
	t.Helper()
	out, err := s.Register(context.Background(), in, ttl)
	if err != nil {
		t.Fatalf("register %s/%s: %v", in.Service, in.ID, err)
	}
	return out
}

// etcdStatus returns the instance's status in a listing, or "absent".
func etcdStatus(t testing.TB, s Store, service, id string) string {
	t.Helper()
	list, _, err := s.Instances(context.Background(), service)
	if err != nil {
		t.Fatalf("list %s: %v", service, err)
	}
	for _, in := range list {
		if in.ID == id {
			return in.Status
		}
	}
	return "absent"
}

func etcdWatch(t testing.TB, s Store, service string, after int64) Watcher {
	t.Helper()
	w, err := s.Watch(context.Background(), service, after)
	if err != nil {
		t.Fatalf("watch %q after %d: %v", service, after, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// etcdNext reads one event within bound.
func etcdNext(t testing.TB, w Watcher, bound time.Duration) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("next event within %v: %v", bound, err)
	}
	return ev
}

// etcdNoEvent asserts that no event arrives within d.
func etcdNoEvent(t testing.TB, w Watcher, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if ev, err := w.Next(ctx); err == nil {
		t.Fatalf("unexpected event %s %s rev %d (%s)", ev.Type, ev.Instance.ID, ev.Revision, ev.Instance.Status)
	}
}

func wantEvent(t testing.TB, ev Event, typ, id, status string) {
	t.Helper()
	if ev.Type != typ || ev.Instance.ID != id || typ == EventPut && ev.Instance.Status != status {
		t.Fatalf("event %s %s (%s) rev %d, want %s %s (%s)", ev.Type, ev.Instance.ID, ev.Instance.Status, ev.Revision, typ, id, status)
	}
	if ev.Revision <= 0 || ev.Instance.Revision != ev.Revision {
		t.Fatalf("event revision %d, instance revision %d", ev.Revision, ev.Instance.Revision)
	}
}

func etcdPoll(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEtcdRegisterListHeartbeatDeregister(t *testing.T) {
	t.Parallel()
	s := newEtcd(t, etcdEndpoints(t), EtcdOptions{})
	ctx := context.Background()

	o1 := etcdRegister(t, s, etcdInstance("orders", "o-1"), 10*time.Second)
	if o1.Status != StatusPassing || o1.Revision <= 0 || o1.TTL.D() != 10*time.Second || o1.RegisteredAt.IsZero() {
		t.Fatalf("registered %+v", o1)
	}
	o2in := etcdInstance("orders", "o-2")
	o2in.Version = "v2"
	etcdRegister(t, s, o2in, 1500*time.Millisecond)
	b1 := etcdRegister(t, s, etcdInstance("billing-api", "b-1"), 10*time.Second)

	list, rev, err := s.Instances(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range list {
		got = append(got, in.Service+"/"+in.ID+"/"+in.Status)
		if in.Revision <= 0 || in.Revision > rev {
			t.Errorf("%s/%s: revision %d, listing revision %d", in.Service, in.ID, in.Revision, rev)
		}
	}
	if want := "billing-api/b-1/passing orders/o-1/passing orders/o-2/passing"; strings.Join(got, " ") != want {
		t.Fatalf("listing %v, want %s", got, want)
	}
	if rev < b1.Revision {
		t.Fatalf("listing revision %d before the last registration %d", rev, b1.Revision)
	}
	if list[2].TTL.D() != 2*time.Second {
		t.Errorf("TTL 1.5s stored as %v, want it rounded up to 2s", list[2].TTL.D())
	}
	if list[1].Metadata["team"] != "core" {
		t.Errorf("metadata lost: %v", list[1].Metadata)
	}
	orders, _, err := s.Instances(ctx, "orders")
	if err != nil || len(orders) != 2 {
		t.Fatalf("orders: %v, %v", orders, err)
	}
	none, _, err := s.Instances(ctx, "nothing")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("unknown service: %#v, %v; want an empty list", none, err)
	}

	svcs, err := s.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].Name != "billing-api" || svcs[1].Name != "orders" ||
		svcs[1].Instances != 2 || svcs[1].Passing != 2 || strings.Join(svcs[1].Versions, ",") != "v1,v2" {
		t.Fatalf("services %+v", svcs)
	}

	before := time.Now()
	hb, err := s.Heartbeat(ctx, "orders", "o-1")
	if err != nil || hb.Status != StatusPassing || hb.LastHeartbeat.Before(before.Add(-time.Second)) || hb.Address != o1.Address {
		t.Fatalf("heartbeat: %+v, %v", hb, err)
	}
	if _, err := s.Heartbeat(ctx, "orders", "o-9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat of an unknown instance: %v, want ErrNotFound", err)
	}
	one, err := s.Instance(ctx, "orders", "o-1")
	if err != nil || one.ID != "o-1" || one.Status != StatusPassing {
		t.Fatalf("Instance: %+v, %v", one, err)
	}

	if err := s.Deregister(ctx, "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Deregister(ctx, "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second deregister: %v, want ErrNotFound", err)
	}
	if _, err := s.Heartbeat(ctx, "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat after deregister: %v, want ErrNotFound", err)
	}
	if _, err := s.Instance(ctx, "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Instance after deregister: %v, want ErrNotFound", err)
	}
	if st := etcdStatus(t, s, "orders", "o-1"); st != "absent" {
		t.Fatalf("deregistered instance listed as %s", st)
	}
}

// TestEtcdLeasesOutlastEachOther: the instance lease outlasts the alive
// lease by the grace period even when the cluster raised the TTL asked
// for (etcd's default minimum is 2s), and Instance.TTL is what etcd
// granted.
func TestEtcdLeasesOutlastEachOther(t *testing.T) {
	t.Parallel()
	eps := etcdEndpoints(t)
	s := newEtcd(t, eps, EtcdOptions{Grace: time.Second})
	cli := etcdtest.Client(t, eps)
	ctx := context.Background()
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), time.Second)
	resp, err := cli.Get(ctx, s.instanceKey("orders", "o-1"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get instance key: %v", err)
	}
	var rec etcdRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.LeaseID != resp.Kvs[0].Lease || rec.AliveLeaseID == rec.LeaseID {
		t.Fatalf("record leases %x/%x, key lease %x", rec.LeaseID, rec.AliveLeaseID, resp.Kvs[0].Lease)
	}
	lease, err := cli.TimeToLive(ctx, clientv3.LeaseID(rec.LeaseID))
	if err != nil {
		t.Fatal(err)
	}
	alive, err := cli.TimeToLive(ctx, clientv3.LeaseID(rec.AliveLeaseID))
	if err != nil {
		t.Fatal(err)
	}
	if lease.GrantedTTL < alive.GrantedTTL+1 {
		t.Fatalf("instance lease %ds, alive lease %ds: no grace period", lease.GrantedTTL, alive.GrantedTTL)
	}
	if in.TTL.D() != time.Duration(alive.GrantedTTL)*time.Second {
		t.Fatalf("Instance.TTL %v, granted %ds", in.TTL.D(), alive.GrantedTTL)
	}
}

func TestEtcdRegisterRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	s := newEtcd(t, etcdEndpoints(t), EtcdOptions{})
	bad := etcdInstance("orders", "o-1")
	bad.Address = "nowhere"
	if _, err := s.Register(context.Background(), bad, time.Second); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "address") {
		t.Fatalf("bad address: %v, want ErrInvalid naming address", err)
	}
	if _, err := s.Register(context.Background(), etcdInstance("orders", "o-1"), 0); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ttl") {
		t.Fatalf("zero ttl: %v, want ErrInvalid naming ttl", err)
	}
}

// TestEtcdCriticalThenRemoved: without heartbeats an instance turns
// critical after its TTL and is removed after its grace period.
func TestEtcdCriticalThenRemoved(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newEtcd(t, srv.Endpoints(), EtcdOptions{Grace: time.Second})
	start := time.Now()
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), time.Second)
	w := etcdWatch(t, s, "orders", in.Revision)

	ev := etcdNext(t, w, 15*time.Second)
	critical := time.Since(start)
	wantEvent(t, ev, EventPut, "o-1", StatusCritical)
	if ev.Instance.Address != in.Address || ev.Instance.Metadata["team"] != "core" {
		t.Fatalf("critical event lost the instance's fields: %+v", ev.Instance)
	}
	ev2 := etcdNext(t, w, 15*time.Second)
	removed := time.Since(start)
	wantEvent(t, ev2, EventDelete, "o-1", "")
	if ev2.Revision <= ev.Revision {
		t.Fatalf("delete revision %d not after critical revision %d", ev2.Revision, ev.Revision)
	}
	// etcd expires a lease no sooner than its TTL.
	if critical < time.Second || removed < 2*time.Second {
		t.Fatalf("critical after %v, removed after %v; want ≥ 1s and ≥ 2s", critical, removed)
	}
	if st := etcdStatus(t, s, "orders", "o-1"); st != "absent" {
		t.Fatalf("removed instance listed as %s", st)
	}
	if _, err := s.Heartbeat(context.Background(), "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat after removal: %v, want ErrNotFound", err)
	}
}

func TestEtcdNegativeGraceRemovesWithoutCriticalPhase(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newEtcd(t, srv.Endpoints(), EtcdOptions{Grace: -1})
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), time.Second)
	w := etcdWatch(t, s, "", in.Revision)
	wantEvent(t, etcdNext(t, w, 15*time.Second), EventDelete, "o-1", "")
}

// TestEtcdHeartbeatKeepsPassingAndRevivesCritical: heartbeats within the
// TTL keep an instance passing without events; one after the TTL brings a
// critical instance back.
func TestEtcdHeartbeatKeepsPassingAndRevivesCritical(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newEtcd(t, srv.Endpoints(), EtcdOptions{Grace: time.Minute})
	ctx := context.Background()
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), 2*time.Second)
	w := etcdWatch(t, s, "orders", in.Revision)

	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if _, err := s.Heartbeat(ctx, "orders", "o-1"); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	if st := etcdStatus(t, s, "orders", "o-1"); st != StatusPassing {
		t.Fatalf("heartbeated instance is %s", st)
	}
	etcdNoEvent(t, w, 100*time.Millisecond)

	wantEvent(t, etcdNext(t, w, 15*time.Second), EventPut, "o-1", StatusCritical)
	if st := etcdStatus(t, s, "orders", "o-1"); st != StatusCritical {
		t.Fatalf("listing says %s, want critical", st)
	}
	hb, err := s.Heartbeat(ctx, "orders", "o-1")
	if err != nil || hb.Status != StatusPassing {
		t.Fatalf("heartbeat of a critical instance: %+v, %v", hb, err)
	}
	ev := etcdNext(t, w, 5*time.Second)
	wantEvent(t, ev, EventPut, "o-1", StatusPassing)
	if hb.Revision != ev.Revision {
		t.Errorf("heartbeat answered revision %d, event has %d", hb.Revision, ev.Revision)
	}
	if st := etcdStatus(t, s, "orders", "o-1"); st != StatusPassing {
		t.Fatalf("revived instance is %s", st)
	}
	// A second store, with no cached leases, renews the revived instance.
	other := newEtcd(t, srv.Endpoints(), EtcdOptions{Prefix: s.prefix, Grace: time.Minute})
	if _, err := other.Heartbeat(ctx, "orders", "o-1"); err != nil {
		t.Fatalf("heartbeat through another store: %v", err)
	}
	etcdNoEvent(t, w, 100*time.Millisecond)
}

// TestEtcdReregistrationReplacesEntry: a registration with the same ID
// replaces the entry; a store that cached the old leases follows.
func TestEtcdReregistrationReplacesEntry(t *testing.T) {
	t.Parallel()
	eps := etcdEndpoints(t)
	a := newEtcd(t, eps, EtcdOptions{})
	b := newEtcd(t, eps, EtcdOptions{Prefix: a.prefix})
	ctx := context.Background()

	first, replaced, err := a.register(etcdInstance("orders", "o-1"), 10*time.Second)
	if err != nil || replaced {
		t.Fatalf("first registration: replaced %v, %v", replaced, err)
	}
	if _, err := b.Heartbeat(ctx, "orders", "o-1"); err != nil { // b caches the leases
		t.Fatal(err)
	}
	w := etcdWatch(t, b, "orders", first.Revision)

	moved := etcdInstance("orders", "o-1")
	moved.Address = "127.0.0.1:9090"
	second, replaced, err := a.register(moved, 10*time.Second)
	if err != nil || !replaced {
		t.Fatalf("re-registration: replaced %v, %v", replaced, err)
	}
	ev := etcdNext(t, w, 5*time.Second)
	wantEvent(t, ev, EventPut, "o-1", StatusPassing)
	if ev.Instance.Address != "127.0.0.1:9090" || ev.Revision != second.Revision {
		t.Fatalf("event %+v, want the new address at revision %d", ev, second.Revision)
	}
	hb, err := b.Heartbeat(ctx, "orders", "o-1")
	if err != nil || hb.Address != "127.0.0.1:9090" {
		t.Fatalf("heartbeat through the store with the old leases: %+v, %v", hb, err)
	}
	list, _, err := a.Instances(ctx, "orders")
	if err != nil || len(list) != 1 || list[0].Address != "127.0.0.1:9090" {
		t.Fatalf("listing %+v, %v; want one entry with the new address", list, err)
	}
	etcdNoEvent(t, w, 200*time.Millisecond) // revoking the old leases changed nothing
}

// TestEtcdWatchResumesWithoutLossOrDuplicates: a watch resumed after the
// revision of the last event it delivered sees every later change once.
func TestEtcdWatchResumesWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	s := newEtcd(t, etcdEndpoints(t), EtcdOptions{})
	ctx := context.Background()
	_, start, err := s.Instances(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 6 {
		svc := []string{"orders", "billing"}[i%2]
		in := etcdRegister(t, s, etcdInstance(svc, fmt.Sprintf("i-%d", i)), 10*time.Second)
		want = append(want, fmt.Sprintf("put %s/i-%d@%d", svc, i, in.Revision))
	}
	if err := s.Deregister(ctx, "orders", "i-0"); err != nil {
		t.Fatal(err)
	}
	_, end, err := s.Instances(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("delete orders/i-0@%d", end))

	var got []string
	after := start
	for len(got) < len(want) {
		w, err := s.Watch(ctx, "", after)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // two events per connection, then resume
			if len(got) == len(want) {
				break
			}
			ev := etcdNext(t, w, 5*time.Second)
			got = append(got, fmt.Sprintf("%s %s/%s@%d", ev.Type, ev.Instance.Service, ev.Instance.ID, ev.Revision))
			after = ev.Revision
		}
		_ = w.Close()
		if _, err := w.Next(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v, want ErrClosed", err)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	w := etcdWatch(t, s, "", after)
	etcdNoEvent(t, w, 200*time.Millisecond)

	// A watch of one service sees only its changes.
	w = etcdWatch(t, s, "billing", start)
	for _, id := range []string{"i-1", "i-3", "i-5"} {
		wantEvent(t, etcdNext(t, w, 5*time.Second), EventPut, id, StatusPassing)
	}
	etcdNoEvent(t, w, 200*time.Millisecond)

	// After 0 means from now on.
	w = etcdWatch(t, s, "", 0)
	etcdNoEvent(t, w, 200*time.Millisecond)
	in := etcdRegister(t, s, etcdInstance("orders", "later"), 10*time.Second)
	if ev := etcdNext(t, w, 5*time.Second); ev.Instance.ID != "later" || ev.Revision != in.Revision {
		t.Fatalf("watch from now on: %+v", ev)
	}
}

func TestEtcdWatchCompacted(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	s := newEtcd(t, srv.Endpoints(), EtcdOptions{})
	ctx := context.Background()
	first := etcdRegister(t, s, etcdInstance("orders", "o-1"), 10*time.Second)
	behind := etcdWatch(t, s, "orders", first.Revision)
	etcdRegister(t, s, etcdInstance("orders", "o-2"), 10*time.Second)
	last := etcdRegister(t, s, etcdInstance("orders", "o-3"), 10*time.Second)

	cli := etcdtest.Client(t, srv.Endpoints())
	if _, err := cli.Compact(ctx, last.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(ctx, "orders", first.Revision); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch after a compacted revision: %v, want ErrCompacted", err)
	}
	if _, err := s.Watch(ctx, "orders", last.Revision+1000); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch after a future revision: %v, want ErrCompacted", err)
	}
	if _, err := s.Watch(ctx, "orders", -1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch after revision -1: %v, want ErrCompacted", err)
	}
	// Watching from the compaction revision on still works.
	w := etcdWatch(t, s, "orders", last.Revision)
	etcdRegister(t, s, etcdInstance("orders", "o-4"), 10*time.Second)
	wantEvent(t, etcdNext(t, w, 5*time.Second), EventPut, "o-4", StatusPassing)

	// The watch opened before the compaction delivers what etcd had
	// already sent it, or fails with ErrCompacted; it never skips.
	var got []string
	for {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ev, err := behind.Next(nctx)
		cancel()
		if errors.Is(err, ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatalf("watch opened before compaction: %v", err)
		}
		got = append(got, ev.Instance.ID)
		if ev.Instance.ID == "o-4" {
			if strings.Join(got, ",") != "o-2,o-3,o-4" {
				t.Fatalf("watch opened before compaction delivered %v", got)
			}
			break
		}
	}
}

// TestEtcdStoresShareOneRegistry: two stores (two gateways) on one cluster
// see and manage each other's instances.
func TestEtcdStoresShareOneRegistry(t *testing.T) {
	t.Parallel()
	eps := etcdEndpoints(t)
	a := newEtcd(t, eps, EtcdOptions{})
	b := newEtcd(t, eps, EtcdOptions{Prefix: a.prefix})
	ctx := context.Background()
	_, rev, err := b.Instances(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	w := etcdWatch(t, b, "orders", rev)

	in := etcdRegister(t, a, etcdInstance("orders", "o-1"), 10*time.Second)
	ev := etcdNext(t, w, 5*time.Second)
	wantEvent(t, ev, EventPut, "o-1", StatusPassing)
	if ev.Revision != in.Revision {
		t.Fatalf("b saw revision %d, a registered at %d", ev.Revision, in.Revision)
	}
	if st := etcdStatus(t, b, "orders", "o-1"); st != StatusPassing {
		t.Fatalf("b lists a's instance as %s", st)
	}
	if _, err := b.Heartbeat(ctx, "orders", "o-1"); err != nil {
		t.Fatalf("b heartbeats a's instance: %v", err)
	}
	if err := b.Deregister(ctx, "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, etcdNext(t, w, 5*time.Second), EventDelete, "o-1", "")
	if _, err := a.Heartbeat(ctx, "orders", "o-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a heartbeats the instance b deregistered: %v, want ErrNotFound", err)
	}
	// A different prefix is a different registry.
	c := newEtcd(t, eps, EtcdOptions{})
	etcdRegister(t, a, etcdInstance("orders", "o-2"), 10*time.Second)
	if list, _, err := c.Instances(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("another prefix lists %v, %v", list, err)
	}
}

// TestEtcdReadOnlyUse: discovery opens the store and reads an empty
// registry without writing anything.
func TestEtcdReadOnlyUse(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints())
	ctx := context.Background()
	before, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	s := newEtcd(t, srv.Endpoints(), EtcdOptions{})
	list, rev, err := s.Instances(ctx, "orders")
	if err != nil || list == nil || len(list) != 0 || rev != before.Header.Revision {
		t.Fatalf("empty registry: %v at %d, %v; want an empty list at %d", list, rev, err, before.Header.Revision)
	}
	w := etcdWatch(t, s, "orders", rev)
	svcs, err := s.Services(ctx)
	if err != nil || svcs == nil || len(svcs) != 0 {
		t.Fatalf("services: %v, %v", svcs, err)
	}
	etcdNoEvent(t, w, 100*time.Millisecond)
	after, err := cli.Get(ctx, "any")
	if err != nil || after.Header.Revision != before.Header.Revision {
		t.Fatalf("reading changed the cluster's revision from %d to %d (%v)", before.Header.Revision, after.Header.Revision, err)
	}
}

// TestEtcdIgnoresUndecodableValues: keys written into the prefix by
// something else do not break listings or watches.
func TestEtcdIgnoresUndecodableValues(t *testing.T) {
	t.Parallel()
	eps := etcdEndpoints(t)
	s := newEtcd(t, eps, EtcdOptions{})
	cli := etcdtest.Client(t, eps)
	ctx := context.Background()
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), 10*time.Second)
	w := etcdWatch(t, s, "orders", in.Revision)
	for _, kv := range [][2]string{
		{s.instanceKey("orders", "junk"), "{not json"},
		{s.prefix + "instances/orders", "{}"},
		{s.prefix + "elsewhere/orders/x", "{}"},
		{s.aliveKey("orders", "ghost"), ""},
	} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	list, _, err := s.Instances(ctx, "")
	if err != nil || len(list) != 1 || list[0].ID != "o-1" {
		t.Fatalf("listing %+v, %v; want only o-1", list, err)
	}
	// The undecodable instance reads as gone; the rest is ignored.
	wantEvent(t, etcdNext(t, w, 5*time.Second), EventDelete, "junk", "")
	etcdNoEvent(t, w, 200*time.Millisecond)
}

// TestEtcdUnavailable: with the cluster down calls fail with
// ErrUnavailable within the timeout; once it is back they work again and
// a watch resumes where it was.
func TestEtcdUnavailable(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	const timeout = time.Second
	s := newEtcd(t, srv.Endpoints(), EtcdOptions{Timeout: timeout, DialTimeout: timeout})
	patient := newEtcd(t, srv.Endpoints(), EtcdOptions{Timeout: time.Minute})
	ctx := context.Background()
	first := etcdRegister(t, s, etcdInstance("orders", "o-1"), 30*time.Second)
	w := etcdWatch(t, s, "orders", first.Revision)

	srv.Stop()
	calls := map[string]func() error{
		"register": func() error {
			_, err := s.Register(ctx, etcdInstance("orders", "o-2"), 30*time.Second)
			return err
		},
		"heartbeat":  func() error { _, err := s.Heartbeat(ctx, "orders", "o-1"); return err },
		"deregister": func() error { return s.Deregister(ctx, "orders", "o-9") },
		"instances":  func() error { _, _, err := s.Instances(ctx, ""); return err },
		"services":   func() error { _, err := s.Services(ctx); return err },
		"watch":      func() error { _, err := s.Watch(ctx, "", 0); return err },
		"new store": func() error {
			_, err := NewEtcd(ctx, EtcdOptions{Endpoints: srv.Endpoints(), DialTimeout: timeout})
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		// Every call has one deadline, however many requests it makes;
		// the slack is for a loaded machine.
		if took := time.Since(start); took > timeout+5*time.Second {
			t.Errorf("%s took %v with a %v timeout", name, took, timeout)
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with etcd down: %v, want ErrUnavailable", name, err)
		}
	}
	// The caller's deadline wins over the store's timeout.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	_, _, err := patient.Instances(short, "")
	cancel()
	if took := time.Since(start); !errors.Is(err, ErrUnavailable) || took > 10*time.Second {
		t.Errorf("listing with a 100ms deadline and a 1m timeout: %v after %v", err, took)
	}

	// An open watch notices the outage (etcd's client would retry
	// silently) and ends with ErrUnavailable.
	wctx, wcancel := context.WithTimeout(ctx, etcdWatchProbe+timeout+10*time.Second)
	start = time.Now()
	_, err = w.Next(wctx)
	wcancel()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("watch during the outage: %v after %v, want ErrUnavailable", err, time.Since(start))
	}
	_ = w.Close()

	srv.Restart()
	etcdPoll(t, 30*time.Second, "the store to reach the restarted cluster", func() bool {
		_, _, err := s.Instances(ctx, "")
		return err == nil
	})
	if _, err := s.Heartbeat(ctx, "orders", "o-1"); err != nil {
		t.Fatalf("heartbeat after restart: %v", err)
	}
	second := etcdRegister(t, s, etcdInstance("orders", "o-2"), 30*time.Second)
	// Watching again after the last revision seen misses nothing.
	w = etcdWatch(t, s, "orders", first.Revision)
	ev := etcdNext(t, w, 30*time.Second)
	wantEvent(t, ev, EventPut, "o-2", StatusPassing)
	if ev.Revision != second.Revision {
		t.Fatalf("resumed watch delivered revision %d, want %d", ev.Revision, second.Revision)
	}
}

func TestEtcdClose(t *testing.T) {
	t.Parallel()
	s := newEtcd(t, etcdEndpoints(t), EtcdOptions{})
	ctx := context.Background()
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), 10*time.Second)
	w := etcdWatch(t, s, "orders", in.Revision)
	next := make(chan error, 1)
	go func() {
		_, err := w.Next(ctx)
		next <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-next:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next across Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked 5s after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Register(ctx, etcdInstance("orders", "o-2"), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("register after Close: %v", err)
	}
	if _, _, err := s.Instances(ctx, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("list after Close: %v", err)
	}
	if _, err := s.Watch(ctx, "", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("watch after Close: %v", err)
	}
}

// TestEtcdWatchNextContext: Next returns its context's error and can be
// called again; the watch's own context ends it.
func TestEtcdWatchNextContext(t *testing.T) {
	t.Parallel()
	s := newEtcd(t, etcdEndpoints(t), EtcdOptions{})
	wctx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	w, err := s.Watch(wctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with an expired context: %v", err)
	}
	in := etcdRegister(t, s, etcdInstance("orders", "o-1"), 10*time.Second)
	if ev := etcdNext(t, w, 5*time.Second); ev.Revision != in.Revision {
		t.Fatalf("event after a timed-out Next: %+v", ev)
	}
	cancelWatch()
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := w.Next(ctx); !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after the watch's context ended: %v, want ErrClosed and context.Canceled", err)
	}
}

func TestEtcdConcurrentUse(t *testing.T) {
	t.Parallel()
	eps := etcdEndpoints(t)
	a := newEtcd(t, eps, EtcdOptions{})
	b := newEtcd(t, eps, EtcdOptions{Prefix: a.prefix})
	ctx := context.Background()
	w := etcdWatch(t, b, "", 0)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		s := []*Etcd{a, b}[g%2]
		wg.Go(func() {
			for i := range 10 {
				id := fmt.Sprintf("i-%d", i%3)
				if _, err := s.Register(ctx, etcdInstance("orders", id), 10*time.Second); err != nil {
					errs <- err
					return
				}
				if _, err := s.Heartbeat(ctx, "orders", id); err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
					return
				}
				if i%4 == 3 {
					if err := s.Deregister(ctx, "orders", id); err != nil && !errors.Is(err, ErrNotFound) {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The watch's view, built from events, ends where a listing is.
	list, _, err := a.Instances(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// The listing's revision is the cluster's, which other tests sharing
	// the server move too; so read until the watch has been quiet for a
	// while (the writers are done) instead of up to that revision.
	seen := map[string]bool{}
	for last := int64(0); ; {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ev, err := w.Next(nctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Revision < last {
			t.Fatalf("revision %d after %d", ev.Revision, last)
		}
		last = ev.Revision
		seen[ev.Instance.ID] = ev.Type == EventPut
	}
	for _, in := range list {
		if !seen[in.ID] {
			t.Errorf("listed %s, which the watch saw deleted or never", in.ID)
		}
		delete(seen, in.ID)
	}
	for id, present := range seen {
		if present {
			t.Errorf("the watch has %s, which is not listed", id)
		}
	}
}

// TestEtcdBehindHandler: the HTTP API over etcd tells a new registration
// (201) from a replacement (200).
func TestEtcdBehindHandler(t *testing.T) {
	t.Parallel()
	s := newEtcd(t, etcdEndpoints(t), EtcdOptions{})
	h, err := NewHandler(s, HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"address":"127.0.0.1:8080","ttl":"10s"}`
	for _, want := range []int{http.StatusCreated, http.StatusOK} {
		r := httptest.NewRequest(http.MethodPut, "/registry/v1/services/orders/instances/o-1", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, r)
		if rw.Code != want {
			t.Fatalf("PUT: %d %s, want %d", rw.Code, rw.Body, want)
		}
	}
}

func TestNewEtcdRefusesBadOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts EtcdOptions
		want string
	}{
		{"no endpoints", EtcdOptions{}, "endpoints: at least one"},
		{"scheme", EtcdOptions{Endpoints: []string{"unix:///tmp/etcd.sock"}}, `endpoints[0] "unix:///tmp/etcd.sock": scheme`},
		{"no port", EtcdOptions{Endpoints: []string{"http://127.0.0.1:2379", "http://127.0.0.1"}}, "endpoints[1]"},
		{"path", EtcdOptions{Endpoints: []string{"http://127.0.0.1:2379/v3"}}, "endpoints[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEtcd(ctx, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewEtcd: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestEtcdParseKey(t *testing.T) {
	e := &Etcd{prefix: "/p/"}
	for _, tc := range []struct {
		key, kind, service, id string
		ok                     bool
	}{
		{"/p/instances/orders/o-1", etcdInstances, "orders", "o-1", true},
		{"/p/alive/orders/o:1", etcdAlive, "orders", "o:1", true},
		{"/p/instances/orders", "", "", "", false},
		{"/p/instances/orders/", "", "", "", false},
		{"/p/instances//x", "", "", "", false},
		{"/p/instances/a/b/c", "", "", "", false},
		{"/p/other/orders/o-1", "", "", "", false},
		{"/q/instances/orders/o-1", "", "", "", false},
	} {
		kind, service, id, ok := e.parseKey([]byte(tc.key))
		if ok != tc.ok || ok && (kind != tc.kind || service != tc.service || id != tc.id) {
			t.Errorf("parseKey(%q) = %q %q %q %v", tc.key, kind, service, id, ok)
		}
	}
}

func BenchmarkEtcdRegister(b *testing.B) {
	srv := etcdtest.Start(b)
	s := newEtcd(b, srv.Endpoints(), EtcdOptions{})
	ctx := context.Background()
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := s.Register(ctx, etcdInstance("orders", "n-"+strconv.Itoa(i)), 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("replace", func(b *testing.B) {
		in := etcdInstance("orders", "o-1")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Register(ctx, in, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEtcdHeartbeat(b *testing.B) {
	srv := etcdtest.Start(b)
	s := newEtcd(b, srv.Endpoints(), EtcdOptions{})
	ctx := context.Background()
	etcdRegister(b, s, etcdInstance("orders", "o-1"), 10*time.Second)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Heartbeat(ctx, "orders", "o-1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEtcdInstances(b *testing.B) {
	srv := etcdtest.Start(b)
	s := newEtcd(b, srv.Endpoints(), EtcdOptions{})
	ctx := context.Background()
	for i := range 100 {
		etcdRegister(b, s, etcdInstance("orders", fmt.Sprintf("o-%d", i)), 30*time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Instances(ctx, "orders"); err != nil {
			b.Fatal(err)
		}
	}
}

// fakeEvent builds an etcd watch event of key at rev.
func fakeEvent(typ mvccpb.Event_EventType, key, value string, rev int64) *clientv3.Event {
	return &clientv3.Event{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), ModRevision: rev}}
}

// TestEtcdWatchTranslation pins how key events become registry events,
// without a server.
func TestEtcdWatchTranslation(t *testing.T) {
	e := &Etcd{prefix: "/p/", logger: slog.New(slog.DiscardHandler)}
	w := &etcdWatcher{e: e, service: "orders", wctx: context.Background(), st: &etcdState{instances: map[string]*etcdRecord{}, alive: map[string]int64{}}}
	val := `{"id":"ignored","service":"ignored","address":"127.0.0.1:1","metadata":{"k":"v"}}`
	put, del := mvccpb.PUT, mvccpb.DELETE
	steps := []struct {
		name string
		evs  []*clientv3.Event
		want string
	}{
		{"register: both keys in one revision", []*clientv3.Event{
			fakeEvent(put, "/p/instances/orders/o-1", val, 10), fakeEvent(put, "/p/alive/orders/o-1", "", 10)}, "put o-1 passing @10"},
		{"heartbeat of a passing instance re-puts its alive key", []*clientv3.Event{
			fakeEvent(put, "/p/alive/orders/o-1", "", 11)}, ""},
		{"alive lease expired", []*clientv3.Event{fakeEvent(del, "/p/alive/orders/o-1", "", 12)}, "put o-1 critical @12"},
		{"revived", []*clientv3.Event{
			fakeEvent(put, "/p/instances/orders/o-1", val, 13), fakeEvent(put, "/p/alive/orders/o-1", "", 13)}, "put o-1 passing @13"},
		{"alive key alone comes back", []*clientv3.Event{
			fakeEvent(del, "/p/alive/orders/o-1", "", 14), fakeEvent(put, "/p/alive/orders/o-1", "", 15)}, "put o-1 critical @14, put o-1 passing @15"},
		{"another service", []*clientv3.Event{
			fakeEvent(put, "/p/instances/billing/b-1", val, 16), fakeEvent(put, "/p/alive/billing/b-1", "", 16)}, ""},
		{"alive key of no instance", []*clientv3.Event{fakeEvent(put, "/p/alive/orders/ghost", "", 17)}, ""},
		{"instance without alive key", []*clientv3.Event{fakeEvent(put, "/p/instances/orders/o-2", val, 18)}, "put o-2 critical @18"},
		{"deregister: both keys in one revision", []*clientv3.Event{
			fakeEvent(del, "/p/instances/orders/o-1", "", 19), fakeEvent(del, "/p/alive/orders/o-1", "", 19)}, "delete o-1 @19"},
		{"value no longer decodes", []*clientv3.Event{fakeEvent(put, "/p/instances/orders/o-2", "{", 20)}, "delete o-2 @20"},
		{"foreign keys", []*clientv3.Event{fakeEvent(put, "/p/other/orders/x", "{}", 21), fakeEvent(put, "/q/instances/orders/x", val, 21)}, ""},
	}
	for _, step := range steps {
		resp := &clientv3.WatchResponse{Events: step.evs}
		if err := w.apply(resp); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var got []string
		for _, ev := range w.pending {
			s := fmt.Sprintf("%s %s @%d", ev.Type, ev.Instance.ID, ev.Revision)
			if ev.Type == EventPut {
				s = fmt.Sprintf("%s %s %s @%d", ev.Type, ev.Instance.ID, ev.Instance.Status, ev.Revision)
				if ev.Instance.Service != "orders" || ev.Instance.Revision != ev.Revision || ev.Instance.Metadata["k"] != "v" {
					t.Errorf("%s: event instance %+v", step.name, ev.Instance)
				}
			}
			got = append(got, s)
		}
		w.pending = nil
		if strings.Join(got, ", ") != step.want {
			t.Errorf("%s: events %q, want %q", step.name, strings.Join(got, ", "), step.want)
		}
	}
	if err := w.apply(&clientv3.WatchResponse{CompactRevision: 30, Canceled: true}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacted response: %v", err)
	}
}

// FuzzEtcdKey: keys and values found under the prefix, which anything
// with access to etcd may write, are parsed without panics and only as
// what they are.
func FuzzEtcdKey(f *testing.F) {
	f.Add("/p/instances/orders/o-1", `{"address":"127.0.0.1:1"}`)
	f.Add("/p/alive/orders/o-1", "")
	f.Add("/p/instances//", "null")
	f.Add("/p/instances/a/b/c", `{"metadata":{"a":1}}`)
	f.Add("/p/x", `{"ttl":-1e999}`)
	e := &Etcd{prefix: "/p/", logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, key, value string) {
		kind, service, id, ok := e.parseKey([]byte(key))
		if !ok {
			return
		}
		if service == "" || id == "" || strings.Contains(service, "/") || strings.Contains(id, "/") ||
			e.prefix+kind+service+"/"+id != key {
			t.Fatalf("parseKey(%q) = %q %q %q", key, kind, service, id)
		}
		if rec, ok := e.decode([]byte(key), []byte(value), service, id); ok && (rec.Service != service || rec.ID != id) {
			t.Fatalf("decode kept the value's service/id %q/%q over the key's", rec.Service, rec.ID)
		}
	})
}

func BenchmarkEtcdWatchApply(b *testing.B) {
	e := &Etcd{prefix: "/p/", logger: slog.New(slog.DiscardHandler)}
	w := &etcdWatcher{e: e, wctx: context.Background(), st: &etcdState{instances: map[string]*etcdRecord{}, alive: map[string]int64{}}}
	val := `{"address":"127.0.0.1:8080","version":"v1","metadata":{"team":"core"},"ttl":"10s","lease_id":1,"alive_lease_id":2}`
	rev := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		rev++
		resp := &clientv3.WatchResponse{Events: []*clientv3.Event{
			fakeEvent(mvccpb.PUT, "/p/instances/orders/o-1", val, rev), fakeEvent(mvccpb.PUT, "/p/alive/orders/o-1", "", rev)}}
		if err := w.apply(resp); err != nil {
			b.Fatal(err)
		}
		w.pending = w.pending[:0]
	}
}
