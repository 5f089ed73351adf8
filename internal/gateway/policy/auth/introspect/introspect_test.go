package introspect

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConsumerRules(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	c, err := New(Options{URL: "http://127.0.0.1:1/", Audiences: []string{"shop"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"active", `{"active":true,"sub":"a","aud":["x","shop"],"exp":1000100}`, true},
		{"username when no sub", `{"active":true,"username":"u","aud":"shop"}`, true},
		{"inactive", `{"active":false,"sub":"a","aud":"shop"}`, false},
		{"expired", `{"active":true,"sub":"a","aud":"shop","exp":999999}`, false},
		{"not yet valid", `{"active":true,"sub":"a","aud":"shop","nbf":1000100}`, false},
		{"other audience", `{"active":true,"sub":"a","aud":"other"}`, false},
		{"no subject", `{"active":true,"aud":"shop"}`, false},
		{"control character in subject", `{"active":true,"sub":"a\nb","aud":"shop"}`, false},
	}
	for _, tc := range tests {
		m, err := Parse([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cons, _ := c.consumer(m, now); (cons != nil) != tc.ok {
			t.Errorf("%s: consumer %+v, want ok=%v", tc.name, cons, tc.ok)
		}
	}
	for _, bad := range []string{`{"active":"true"}`, `[]`, `{"active":true} {}`, `{}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"active":true,"sub":"a","scope":"x y","exp":1e3}`))
	now := time.Unix(1_000_000, 0)
	c, _ := New(Options{URL: "http://127.0.0.1:1/", Now: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if cons, _ := c.consumer(m, now); cons != nil && cons.ID == "" {
			t.Fatal("a consumer without id")
		}
	})
}

// introspectionServer answers "active" for tokens starting with "good",
// after release is closed when block is set, and counts its calls.
type introspectionServer struct {
	*httptest.Server
	calls   atomic.Int64
	release chan struct{}
}

func newIntrospectionServer(t *testing.T, block bool) *introspectionServer {
	t.Helper()
	s := &introspectionServer{release: make(chan struct{})}
	if !block {
		close(s.release)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		<-s.release
		active := strings.HasPrefix(r.PostFormValue("token"), "good")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "sub": "u"})
	}))
	t.Cleanup(s.Close)
	return s
}

// TestSingleFlight: concurrent requests with the same new token make one
// call and all get its answer.
func TestSingleFlight(t *testing.T) {
	t.Parallel()
	srv := newIntrospectionServer(t, true)
	c, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cons, err := c.Introspect(context.Background(), "good-new-token"); err == nil && cons.ID == "u" {
				ok.Add(1)
			}
		}()
	}
	for srv.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others find the call in flight
	close(srv.release)
	wg.Wait()
	if calls := srv.calls.Load(); calls != 1 || ok.Load() != n {
		t.Errorf("%d concurrent requests made %d calls, %d succeeded; want 1 call, %d successes", n, calls, ok.Load(), n)
	}
}

// TestMaxConcurrent: beyond MaxConcurrent calls in flight, a new token
// gets ErrBusy without a call.
func TestMaxConcurrent(t *testing.T) {
	t.Parallel()
	srv := newIntrospectionServer(t, true)
	c, err := New(Options{URL: srv.URL, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Introspect(context.Background(), "good-"+strconv.Itoa(i))
		}()
	}
	for srv.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Introspect(context.Background(), "good-third"); !errors.Is(err, ErrBusy) {
		t.Errorf("third concurrent token: %v, want ErrBusy", err)
	}
	close(srv.release)
	wg.Wait()
	if calls := srv.calls.Load(); calls != 2 {
		t.Errorf("%d calls, want 2", calls)
	}
	if _, err := c.Introspect(context.Background(), "good-third"); err != nil {
		t.Errorf("once the calls finished: %v", err)
	}
}

// TestInactiveFloodKeepsActiveEntries pins down the bug where inactive
// answers shared the bounded cache with active ones, so a flood of random
// tokens evicted the good tokens and every one of them cost a call again.
func TestInactiveFloodKeepsActiveEntries(t *testing.T) {
	t.Parallel()
	srv := newIntrospectionServer(t, false)
	c, err := New(Options{URL: srv.URL, CacheSize: 1024, InactiveCacheSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 16 {
		if _, err := c.Introspect(ctx, "good-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2000 {
		if _, err := c.Introspect(ctx, "random-"+strconv.Itoa(i)); !errors.Is(err, ErrInactive) {
			t.Fatalf("random token: %v", err)
		}
	}
	before := srv.calls.Load()
	for i := range 16 {
		if _, err := c.Introspect(ctx, "good-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.calls.Load() - before; n != 0 {
		t.Errorf("after a flood of inactive tokens, %d of 16 cached good tokens needed a call again", n)
	}
	if _, err := c.Introspect(ctx, "random-1999"); !errors.Is(err, ErrInactive) || srv.calls.Load() != before {
		t.Errorf("a recent inactive answer was not cached: %v", err)
	}
}

func BenchmarkIntrospectCached(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"active":true,"sub":"u"}`))
	}))
	defer srv.Close()
	c, err := New(Options{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Introspect(ctx, "good-token"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Introspect(ctx, "good-token"); err != nil {
			b.Fatal(err)
		}
	}
}
