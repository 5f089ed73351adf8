package ratelimit

import (
	"math"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestHeaderValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                    string
		res                     Result
		limit, remaining, reset string
	}{
		{"full bucket", Result{Limit: 1000000, Remaining: 999999, ResetAfter: time.Microsecond}, "1000000", "999999", "1"},
		{"empty bucket", Result{Limit: 5, Remaining: 0, ResetAfter: 1500 * time.Millisecond}, "5", "0", "2"},
		{"negative remaining", Result{Limit: 3, Remaining: -4, ResetAfter: 0}, "3", "0", "0"},
		{"whole seconds", Result{Limit: 60, Remaining: 59, ResetAfter: time.Minute}, "60", "59", "60"},
		{"largest", Result{Limit: math.MaxInt64, Remaining: math.MaxInt64, ResetAfter: math.MaxInt64}, "9223372036854775807", "9223372036854775807", "9223372037"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c headerCache
			h := http.Header{}
			c.set(h, tc.res)
			for name, want := range map[string]string{HeaderLimit: tc.limit, HeaderRemaining: tc.remaining, HeaderReset: tc.reset} {
				if v := h[name]; len(v) != 1 || v[0] != want {
					t.Errorf("%s = %q, want [%q]", name, v, want)
				}
			}
		})
	}
}

// TestHeaderValuesShared pins down that responses share a set of header
// values only while the values are the same, and that adding to one
// response's header leaves the others' alone.
func TestHeaderValuesShared(t *testing.T) {
	t.Parallel()
	var c headerCache
	a, b, d := http.Header{}, http.Header{}, http.Header{}
	res := Result{Limit: 100, Remaining: 99, ResetAfter: time.Second}
	c.set(a, res)
	c.set(b, res)
	if &a[HeaderRemaining][0] != &b[HeaderRemaining][0] {
		t.Error("equal results did not share their header values")
	}
	b.Add(HeaderLimit, "7")
	b.Set(HeaderReset, "9")
	if a.Get(HeaderLimit) != "100" || len(a[HeaderLimit]) != 1 || a.Get(HeaderReset) != "1" {
		t.Errorf("changing one response's header changed another's: %v", a)
	}
	res.Remaining = 98
	c.set(d, res)
	if d.Get(HeaderRemaining) != "98" || a.Get(HeaderRemaining) != "99" {
		t.Errorf("after a new remaining count: %v, earlier response %v", d, a)
	}
}

// TestHeaderCacheConcurrent runs under -race: policies of one route set
// headers from many goroutines at once.
func TestHeaderCacheConcurrent(t *testing.T) {
	t.Parallel()
	var c headerCache
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				h := http.Header{}
				rem := int64(i % 3)
				c.set(h, Result{Limit: 10, Remaining: rem, ResetAfter: time.Duration(g) * time.Second})
				if h.Get(HeaderLimit) != "10" || h.Get(HeaderRemaining) != string(rune('0'+rem)) {
					t.Errorf("goroutine %d: %v", g, h)
					return
				}
			}
		})
	}
	wg.Wait()
}
