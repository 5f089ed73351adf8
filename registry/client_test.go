package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/registry"
)

const (
	tokWriter = "writer-secret-0123456789"
	tokReader = "reader-secret-0123456789"
)

// fixture is a registry API served by the real handler over a memory store.
type fixture struct {
	mem *registry.Memory
	srv *httptest.Server
}

// newFixture serves the API. wrap, when set, wraps the handler (to observe
// or disturb requests).
func newFixture(t *testing.T, mopts registry.MemoryOptions, hopts registry.HandlerOptions, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	mem := registry.NewMemory(mopts)
	if hopts.MinTTL == 0 {
		hopts.MinTTL = 100 * time.Millisecond
	}
	h, err := registry.NewHandler(mem, hopts)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = mem.Close()
	})
	return &fixture{mem: mem, srv: srv}
}

func (f *fixture) client(t *testing.T, token string) *registry.Client {
	t.Helper()
	c, err := registry.NewClient(f.srv.URL, registry.ClientOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func inst(service, id string) registry.Instance {
	return registry.Instance{Service: service, ID: id, Address: "127.0.0.1:8080", Version: "v1", Zone: "z1"}
}

func TestClientCalls(t *testing.T) {
	t.Parallel()
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, nil)
	c := f.client(t, "")
	ctx := testContext(t)

	in := inst("orders", "o-1")
	in.Metadata = map[string]string{"team": "checkout"}
	got, err := c.Register(ctx, in, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != registry.StatusPassing || got.TTL.D() != 2*time.Second || got.Revision != 1 || got.Metadata["team"] != "checkout" {
		t.Fatalf("registered %+v", got)
	}
	if _, err := c.Register(ctx, inst("orders", "o-2"), 0); err != nil {
		t.Fatal(err)
	}
	in2 := inst("billing", "b-1")
	in2.Version = "v2"
	if _, err := c.Register(ctx, in2, 0); err != nil {
		t.Fatal(err)
	}

	hb, err := c.Heartbeat(ctx, "orders", "o-1")
	if err != nil || hb.ID != "o-1" || hb.LastHeartbeat.Before(got.LastHeartbeat) {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	one, err := c.Instance(ctx, "orders", "o-2")
	if err != nil || one.TTL.D() != registry.DefaultTTL {
		t.Fatalf("instance %+v, %v", one, err)
	}
	list, rev, err := c.Instances(ctx, "orders")
	if err != nil || rev != 3 || len(list) != 2 || list[0].ID != "o-1" || list[1].ID != "o-2" {
		t.Fatalf("instances %+v rev %d, %v", list, rev, err)
	}
	all, rev, err := c.Instances(ctx, "")
	if err != nil || rev != 3 || len(all) != 3 || all[0].Service != "billing" || all[2].ID != "o-2" {
		t.Fatalf("all instances %+v rev %d, %v", all, rev, err)
	}
	none, _, err := c.Instances(ctx, "unknown")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("unknown service: %#v, %v", none, err)
	}
	services, rev, err := c.Services(ctx)
	want := []registry.ServiceSummary{
		{Name: "billing", Instances: 1, Passing: 1, Versions: []string{"v2"}},
		{Name: "orders", Instances: 2, Passing: 2, Versions: []string{"v1"}},
	}
	if err != nil || rev != 3 || !reflect.DeepEqual(services, want) {
		t.Fatalf("services %+v rev %d, %v", services, rev, err)
	}

	if err := c.Deregister(ctx, "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instance(ctx, "orders", "o-1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("instance after deregister: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{
		Tokens:    []registry.Token{{Name: "w", Token: tokWriter, Services: []string{"orders"}}},
		ReadToken: tokReader,
	}, nil)
	writer, reader, anon := f.client(t, tokWriter), f.client(t, tokReader), f.client(t, "")
	ctx := testContext(t)
	if _, err := writer.Register(ctx, inst("orders", "o-1"), 0); err != nil {
		t.Fatal(err)
	}
	bad := inst("orders", "o-2")
	bad.Address = "nowhere"

	tests := []struct {
		name   string
		call   func() error
		status int
		is     error
		detail string
	}{
		{"no token", func() error { _, err := anon.Register(ctx, inst("orders", "o-2"), 0); return err }, 401, nil, "registration token is required"},
		{"read token writes", func() error { _, err := reader.Heartbeat(ctx, "orders", "o-1"); return err }, 401, nil, "not a registration token"},
		{"no read token", func() error { _, _, err := anon.Services(ctx); return err }, 401, nil, "read token is required"},
		{"other service", func() error { return writer.Deregister(ctx, "billing", "b-1") }, 403, nil, `may not write service "billing"`},
		{"heartbeat unknown", func() error { _, err := writer.Heartbeat(ctx, "orders", "o-9"); return err }, 404, registry.ErrNotFound, ""},
		{"deregister unknown", func() error { return writer.Deregister(ctx, "orders", "o-9") }, 404, registry.ErrNotFound, ""},
		{"get unknown", func() error { _, err := reader.Instance(ctx, "orders", "o-9"); return err }, 404, registry.ErrNotFound, ""},
		{"invalid field", func() error { _, err := writer.Register(ctx, bad, 0); return err }, 400, registry.ErrInvalid, "address"},
		{"ttl out of bounds", func() error { _, err := writer.Register(ctx, inst("orders", "o-2"), time.Hour); return err }, 400, registry.ErrInvalid, "ttl"},
		{"compacted", func() error { _, err := reader.Watch(ctx, "orders", 99); return err }, 410, registry.ErrCompacted, "list again"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *registry.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *APIError", err, err)
			}
			if ae.Status != tc.status || !strings.Contains(ae.Detail, tc.detail) || !strings.Contains(err.Error(), ae.Detail) {
				t.Fatalf("error %v (%+v), want status %d and detail containing %q", err, ae, tc.status, tc.detail)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			if tc.is != registry.ErrNotFound && errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("error %v matches ErrNotFound", err)
			}
		})
	}

	t.Run("empty names", func(t *testing.T) {
		if _, err := writer.Heartbeat(ctx, "", "x"); err == nil || !strings.Contains(err.Error(), "service: must not be empty") {
			t.Fatalf("empty service: %v", err)
		}
		if err := writer.Deregister(ctx, "orders", ""); err == nil || !strings.Contains(err.Error(), "id: must not be empty") {
			t.Fatalf("empty id: %v", err)
		}
	})
}

func TestClientErrorFromOtherServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>\n  upstream   unreachable\n</html>")
	}))
	t.Cleanup(srv.Close)
	c, err := registry.NewClient(srv.URL, registry.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Services(testContext(t))
	var ae *registry.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Detail != "<html> upstream unreachable </html>" {
		t.Fatalf("error %v (%+v)", err, ae)
	}
}

func TestClientSendsBearerTokenAndEscapesPaths(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var auth, paths []string
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			auth = append(auth, r.Header.Get("Authorization"))
			paths = append(paths, r.URL.EscapedPath())
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	c := f.client(t, "s3cret")
	ctx := testContext(t)
	if _, err := c.Register(ctx, inst("orders", ".."), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instance(ctx, "orders", ".."); err != nil {
		t.Fatal(err)
	}
	// A name the registry refuses still reaches it as one segment.
	if _, err := c.Instance(ctx, "a/b", "x y"); !errors.Is(err, registry.ErrInvalid) && !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("odd names: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auth {
		if a != "Bearer s3cret" {
			t.Fatalf("Authorization %q", a)
		}
	}
	want := []string{
		"/registry/v1/services/orders/instances/%2E%2E",
		"/registry/v1/services/orders/instances/%2E%2E",
		"/registry/v1/services/a%2Fb/instances/x%20y",
	}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
}

func TestNewClientURL(t *testing.T) {
	t.Parallel()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"revision":1,"services":[]}`)
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ url, path string }{
		{srv.URL, "/registry/v1/services"},
		{srv.URL + "/", "/registry/v1/services"},
		{srv.URL + "/registry/v1/", "/registry/v1/services"},
		{srv.URL + "/admin", "/admin/registry/v1/services"},
	} {
		c, err := registry.NewClient(tc.url, registry.ClientOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if _, _, err := c.Services(testContext(t)); err != nil || got != tc.path {
			t.Fatalf("%s: path %q, want %q (%v)", tc.url, got, tc.path, err)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"127.0.0.1:9901", "must be an http or https URL"},
		{"localhost", "must be an http or https URL"},
		{"ftp://h", "must be an http or https URL"},
		{"http://", "no host"},
		{"http://h/?a=1", "must not have a query"},
		{"http://h/#x", "must not have a fragment"},
		{"http://u:p@h/", "credentials"},
		{"http://h/%zz", "invalid URL escape"},
	} {
		if _, err := registry.NewClient(tc.url, registry.ClientOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), ":p@") {
			t.Errorf("NewClient(%q) = %v, want an error containing %q", tc.url, err, tc.want)
		}
	}
}

// nextEvent reads one event within a generous bound.
func nextEvent(t *testing.T, w registry.Watcher, what ...string) registry.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("next event %s: %v", what, err)
	}
	return ev
}

func TestClientWatchSeesChangesInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, nil)
	c := f.client(t, "")
	ctx := testContext(t)
	if _, err := c.Register(ctx, inst("orders", "before"), 0); err != nil {
		t.Fatal(err)
	}
	all, err := c.Watch(ctx, "", 0) // from now on: "before" is not replayed
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	orders, err := c.Watch(ctx, "orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer orders.Close()

	for _, id := range []string{"o-1", "o-2"} {
		if _, err := c.Register(ctx, inst("orders", id), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Register(ctx, inst("billing", "b-1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Deregister(ctx, "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		typ, name string
		rev       int64
	}
	want := []seen{{"put", "orders/o-1", 2}, {"put", "orders/o-2", 3}, {"put", "billing/b-1", 4}, {"delete", "orders/o-1", 5}}
	for i, w := range want {
		ev := nextEvent(t, all)
		if got := (seen{ev.Type, ev.Instance.Service + "/" + ev.Instance.ID, ev.Revision}); got != w {
			t.Fatalf("event %d: %+v, want %+v", i, got, w)
		}
	}
	for _, w := range []seen{want[0], want[1], want[3]} {
		ev := nextEvent(t, orders)
		if got := (seen{ev.Type, ev.Instance.Service + "/" + ev.Instance.ID, ev.Revision}); got != w {
			t.Fatalf("orders event: %+v, want %+v", got, w)
		}
	}
}

func TestClientWatchNextContextAndClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, nil)
	c := f.client(t, "")
	wctx, cancelWatch := context.WithCancel(testContext(t))
	defer cancelWatch()
	w, err := c.Watch(wctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next with an expired context: %v", err)
	}
	// The watch survives its caller's timeout.
	if _, err := f.mem.Register(context.Background(), inst("orders", "o-1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Instance.ID != "o-1" {
		t.Fatalf("event %+v", ev)
	}
	cancelWatch()
	if _, err := w.Next(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("next after the watch's context ended: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(context.Background()); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("next after close: %v", err)
	}
	_ = w.Close() // idempotent

	w2, err := c.Watch(testContext(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := w2.Next(context.Background()); done <- err }()
	_ = w2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, registry.ErrClosed) {
			t.Fatalf("blocked next after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a blocked Next")
	}
}

// watchCounter counts the watch requests and keeps their Last-Event-ID
// headers; while hold is non-nil, reconnections wait until it is closed.
type watchCounter struct {
	mu      sync.Mutex
	lastIDs []string
	hold    chan struct{}
}

func (wc *watchCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/watch") {
			wc.mu.Lock()
			wc.lastIDs = append(wc.lastIDs, r.Header.Get("Last-Event-ID"))
			hold := wc.hold
			n := len(wc.lastIDs)
			wc.mu.Unlock()
			if hold != nil && n > 1 {
				select {
				case <-hold:
				case <-r.Context().Done():
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (wc *watchCounter) requests() []string {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return append([]string(nil), wc.lastIDs...)
}

func TestClientWatchReconnectsWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	wc := &watchCounter{}
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, wc.wrap)
	c := f.client(t, "")
	ctx := testContext(t)
	if _, err := f.mem.Register(ctx, inst("orders", "seed"), time.Minute); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Each round registers a batch and drops the connection once the
	// reader is halfway through it, so some events are in flight.
	const rounds, batch = 6, 40
	var seen atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		for r := range rounds {
			for i := range batch {
				if _, err := f.mem.Register(ctx, inst("orders", fmt.Sprintf("o-%d", r*batch+i)), time.Minute); err != nil {
					writerDone <- err
					return
				}
			}
			for seen.Load() < int64(r*batch+batch/2) {
				if ctx.Err() != nil {
					writerDone <- ctx.Err()
					return
				}
				time.Sleep(time.Millisecond)
			}
			f.srv.CloseClientConnections()
		}
		writerDone <- nil
	}()
	for i := range rounds * batch {
		want := int64(i + 2)
		ev := nextEvent(t, w, fmt.Sprintf("revision %d, after requests %q", want, wc.requests()))
		if ev.Revision != want || ev.Instance.ID != fmt.Sprintf("o-%d", i) {
			t.Fatalf("event %+v, want revision %d", ev, want)
		}
		seen.Add(1)
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	// Every round's drop forced a reconnection, which resumed after the
	// last revision delivered.
	waitFor(t, "the last reconnection", func() bool { return len(wc.requests()) >= rounds+1 })
	reqs := wc.requests()
	for _, id := range reqs {
		if n, err := strconv.Atoi(id); err != nil || n < 1 || n > rounds*batch+1 {
			t.Fatalf("watch requests with Last-Event-ID %q", reqs)
		}
	}
	// Nothing more is pending.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if ev, err := w.Next(short); err == nil {
		t.Fatalf("extra event %+v", ev)
	}
}

func TestClientWatchCompactedWhileDisconnected(t *testing.T) {
	t.Parallel()
	wc := &watchCounter{hold: make(chan struct{})}
	f := newFixture(t, registry.MemoryOptions{History: 2}, registry.HandlerOptions{}, wc.wrap)
	c := f.client(t, "")
	ctx := testContext(t)
	w, err := c.Watch(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := f.mem.Register(ctx, inst("orders", "o-0"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); ev.Revision != 1 {
		t.Fatalf("event %+v", ev)
	}
	f.srv.CloseClientConnections()
	waitFor(t, "a reconnection", func() bool { return len(wc.requests()) >= 2 })
	for i := 1; i <= 4; i++ { // more than the history while the reconnection waits
		if _, err := f.mem.Register(ctx, inst("orders", fmt.Sprintf("o-%d", i)), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	close(wc.hold)
	next, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ev, err := w.Next(next); !errors.Is(err, registry.ErrCompacted) {
		t.Fatalf("next: %+v, %v; want ErrCompacted", ev, err)
	}
	if _, err := w.Next(next); !errors.Is(err, registry.ErrCompacted) {
		t.Fatalf("next after failure: %v", err)
	}
}

// A watch from revision 0 ("from now on") that has delivered nothing cannot
// ask to resume after revision 0: it resumes when nothing changed, and
// reports ErrCompacted when something did.
func TestClientWatchFromRevisionZeroReconnects(t *testing.T) {
	t.Parallel()
	t.Run("nothing changed", func(t *testing.T) {
		t.Parallel()
		wc := &watchCounter{}
		f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, wc.wrap)
		ctx := testContext(t)
		w, err := f.client(t, "").Watch(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		f.srv.CloseClientConnections()
		waitFor(t, "a reconnection", func() bool { return len(wc.requests()) >= 2 })
		if _, err := f.mem.Register(ctx, inst("orders", "o-1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, w); ev.Revision != 1 {
			t.Fatalf("event %+v", ev)
		}
	})
	t.Run("changed while disconnected", func(t *testing.T) {
		t.Parallel()
		wc := &watchCounter{hold: make(chan struct{})}
		f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, wc.wrap)
		ctx := testContext(t)
		w, err := f.client(t, "").Watch(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		f.srv.CloseClientConnections()
		waitFor(t, "a reconnection", func() bool { return len(wc.requests()) >= 2 })
		if _, err := f.mem.Register(ctx, inst("orders", "o-1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		close(wc.hold)
		next, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if ev, err := w.Next(next); !errors.Is(err, registry.ErrCompacted) {
			t.Fatalf("next: %+v, %v; want ErrCompacted", ev, err)
		}
	})
}

func TestClientWatchCompactedAtStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, registry.MemoryOptions{History: 2}, registry.HandlerOptions{}, nil)
	c := f.client(t, "")
	ctx := testContext(t)
	for i := range 5 {
		if _, err := c.Register(ctx, inst("orders", fmt.Sprintf("o-%d", i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Watch(ctx, "orders", 1); !errors.Is(err, registry.ErrCompacted) {
		t.Fatalf("watch after a compacted revision: %v", err)
	}
	w, err := c.Watch(ctx, "orders", 3) // the oldest kept is 4
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev := nextEvent(t, w); ev.Revision != 4 {
		t.Fatalf("event %+v", ev)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaintainKeepsInstancePassing(t *testing.T) {
	t.Parallel()
	var failHeartbeats atomic.Bool
	f := newFixture(t, registry.MemoryOptions{Grace: time.Minute}, registry.HandlerOptions{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failHeartbeats.Load() && strings.HasSuffix(r.URL.Path, "/heartbeat") {
				http.Error(w, "down for a moment", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	logs := &syncBuffer{}
	c, err := registry.NewClient(f.srv.URL, registry.ClientOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	mw, err := f.mem.Watch(ctx, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()

	const ttl = 500 * time.Millisecond
	reg, err := c.Maintain(ctx, inst("orders", "o-1"), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Instance(); got.TTL.D() != ttl || got.Status != registry.StatusPassing {
		t.Fatalf("registered %+v", got)
	}
	first := reg.Instance().LastHeartbeat
	time.Sleep(4 * ttl)
	if in, err := f.mem.Instance(ctx, "orders", "o-1"); err != nil || in.Status != registry.StatusPassing || !in.LastHeartbeat.After(first) {
		t.Fatalf("after 4 TTLs: %+v, %v", in, err)
	}

	// Deregistered behind its back, the instance registers again.
	if err := f.mem.Deregister(ctx, "orders", "o-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "re-registration", func() bool {
		_, err := f.mem.Instance(ctx, "orders", "o-1")
		return err == nil
	})

	// The registry saw the registration, its removal and the
	// re-registration, and no critical phase.
	evCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	var seen []string
	for {
		ev, err := mw.Next(evCtx)
		if err != nil {
			break
		}
		if ev.Type == registry.EventPut {
			seen = append(seen, "put "+ev.Instance.Status)
		} else {
			seen = append(seen, ev.Type)
		}
	}
	if want := []string{"put passing", "delete", "put passing"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("registry events %q, want %q", seen, want)
	}

	// Heartbeats failing for a while are retried, and recover.
	failHeartbeats.Store(true)
	waitFor(t, "a logged heartbeat failure", func() bool { return strings.Contains(logs.String(), "registry heartbeat failed") })
	failHeartbeats.Store(false)
	waitFor(t, "a logged recovery", func() bool { return strings.Contains(logs.String(), "registry heartbeat recovered") })

	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.mem.Instance(ctx, "orders", "o-1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after Close: %v", err)
	}
	if err := reg.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestMaintainFailsWhenFirstRegistrationDoes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, registry.MemoryOptions{}, registry.HandlerOptions{}, nil)
	c := f.client(t, "")
	bad := inst("orders", "o-1")
	bad.Protocol = "ftp"
	if _, err := c.Maintain(testContext(t), bad, time.Second); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("Maintain with an invalid instance: %v", err)
	}
}

func ExampleClient() {
	store := registry.NewMemory(registry.MemoryOptions{})
	defer store.Close()
	api, err := registry.NewHandler(store, registry.HandlerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(api) // in production: the gateway's admin listener
	defer srv.Close()

	c, err := registry.NewClient(srv.URL, registry.ClientOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	// Register and heartbeat every third of the TTL until Close.
	reg, err := c.Maintain(ctx, registry.Instance{Service: "orders", ID: "orders-1", Address: "127.0.0.1:8080", Version: "v2"}, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	instances, revision, err := c.Instances(ctx, "orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, in := range instances {
		fmt.Println(in.ID, in.Version, in.Address, in.Status)
	}
	fmt.Println("revision", revision)
	if err := reg.Close(ctx); err != nil { // deregisters
		fmt.Println(err)
	}
	_, err = c.Instance(ctx, "orders", "orders-1")
	fmt.Println(errors.Is(err, registry.ErrNotFound))
	// Output:
	// orders-1 v2 127.0.0.1:8080 passing
	// revision 1
	// true
}
