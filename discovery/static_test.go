package discovery

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestStaticDeliversOnceAndWaits(t *testing.T) {
	t.Parallel()
	in := []Endpoint{
		{URL: &url.URL{Scheme: "http", Host: "10.0.0.1:80"}, Weight: 2, Meta: map[string]string{MetaZone: "a"}},
		{URL: &url.URL{Scheme: "h2c", Host: "10.0.0.2:80"}},
	}
	p := Static(in)
	if p.Kind() != "static" {
		t.Errorf("Kind() = %q, want static", p.Kind())
	}
	// The caller may reuse its slice after Static.
	in[0].Meta[MetaZone] = "changed"
	in[1].URL.Host = "changed:1"

	ctx, cancel := context.WithCancel(context.Background())
	sink := &regSink{}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, sink) }()
	eps := sink.waitURLs(t, "http://10.0.0.1:80", "h2c://10.0.0.2:80")
	if eps[0].Weight != 2 || eps[0].Meta[MetaZone] != "a" {
		t.Errorf("first endpoint = %+v", eps[0])
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before its context ended", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(regWait):
		t.Fatal("Run did not return after its context ended")
	}
	if ups, fails := sink.counts(); ups != 1 || fails != 0 {
		t.Errorf("%d updates and %d failures, want one update", ups, fails)
	}

	// Each Run hands out its own copy: what a sink does with its set does
	// not reach the next one.
	eps[0].Meta[MetaZone] = "sink's"
	sink2 := &regSink{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := p.Run(ctx2, sink2); err != nil {
		t.Fatal(err)
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel3()
	if err := p.Run(ctx3, sink2); err != nil {
		t.Fatal(err)
	}
	got, _ := sink2.last()
	if got[0].Meta[MetaZone] != "a" {
		t.Errorf("second run's zone = %q, want a", got[0].Meta[MetaZone])
	}
	if ups, _ := sink2.counts(); ups != 1 {
		t.Errorf("%d updates across a run with an ended context and one without, want 1", ups)
	}
}

func TestStaticEmpty(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	sink := &regSink{}
	if err := Static(nil).Run(ctx, sink); err != nil {
		t.Fatal(err)
	}
	eps, ok := sink.last()
	if !ok || eps == nil || len(eps) != 0 {
		t.Errorf("set = %v (delivered %v), want an empty, non-nil set", eps, ok)
	}
}

func TestCloneEndpoints(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://user:pw@10.0.0.1:443")
	in := []Endpoint{{URL: u, Weight: 1, Meta: map[string]string{"k": "v"}}, {}}
	out := cloneEndpoints(in)
	out[0].URL.User = nil
	out[0].Meta["k"] = "x"
	if in[0].URL.User == nil || in[0].Meta["k"] != "v" {
		t.Errorf("clone shares state with the original: %+v", in[0])
	}
	if !slices.EqualFunc(in[1:], out[1:], func(a, b Endpoint) bool { return a.URL == b.URL && a.Meta == nil && b.Meta == nil }) {
		t.Errorf("zero endpoint cloned as %+v", out[1])
	}
}
