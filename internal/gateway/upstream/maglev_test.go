package upstream

import (
	"fmt"
	"net/http"
	"testing"
)

func maglevPick(t *testing.T, p *Pool, key string) *Endpoint {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	r.Header.Set("X-Key", key)
	return pick(t, p, r, Outcome{Status: 200})
}

// TestMaglevRemapping: when one of N endpoints leaves, about 1/N of the
// keys move (those it held), and the keys of the others stay put.
func TestMaglevRemapping(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 10, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			eps := endpoints(n)
			p := newTestPool(t, Config{Balancer: NewMaglev(HashHeader("X-Key"))}, eps)
			const keys = 20000
			before := make([]*Endpoint, keys)
			for i := range keys {
				before[i] = maglevPick(t, p, fmt.Sprint("k", i))
			}
			gone := eps[n/2]
			rest := append(append([]*Endpoint(nil), eps[:n/2]...), eps[n/2+1:]...)
			p.Update(rest)
			moved, strayed := 0, 0
			for i := range keys {
				after := maglevPick(t, p, fmt.Sprint("k", i))
				if after != before[i] {
					moved++
					if before[i] != gone {
						strayed++
					}
				}
			}
			frac := float64(moved) / keys
			if want := 1 / float64(n); frac > want*1.3+0.01 {
				t.Errorf("%.3f of keys moved, want about %.3f", frac, want)
			}
			if s := float64(strayed) / keys; s > 0.02 {
				t.Errorf("%.3f of keys of remaining endpoints moved", s)
			}
		})
	}
}

// TestMaglevStickyAndRecovers: a key sticks to its endpoint, goes elsewhere
// while that endpoint is unavailable and comes back afterwards.
func TestMaglevStickyAndRecovers(t *testing.T) {
	t.Parallel()
	eps := endpoints(5)
	p := newTestPool(t, Config{Balancer: NewMaglev(HashHeader("X-Key"))}, eps)
	home := maglevPick(t, p, "alice")
	for range 10 {
		if maglevPick(t, p, "alice") != home {
			t.Fatal("key moved without a change")
		}
	}
	p.mu.Lock()
	p.setHealthy(home, false, "test")
	p.mu.Unlock()
	away := maglevPick(t, p, "alice")
	if away == home || maglevPick(t, p, "alice") != away {
		t.Fatal("key not rehashed consistently while its endpoint is down")
	}
	p.mu.Lock()
	p.setHealthy(home, true, "")
	p.mu.Unlock()
	if maglevPick(t, p, "alice") != home {
		t.Fatal("key did not return to its endpoint")
	}
}

func TestHashKeys(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	r.Header.Set("Cookie", `a=1; session="abc"; b=2`)
	r.RemoteAddr = "[2001:db8::1]:443"
	if v, ok := CookieValue(r.Header, "session"); !ok || v != "abc" {
		t.Errorf("cookie = %q, %v", v, ok)
	}
	if _, ok := CookieValue(r.Header, "missing"); ok {
		t.Error("found a missing cookie")
	}
	h1, ok1 := HashCookie("session")(r)
	h2, ok2 := HashRemoteAddr()(r)
	r.RemoteAddr = "[2001:db8::1]:1"
	h3, _ := HashRemoteAddr()(r)
	if !ok1 || !ok2 || h1 == h2 || h2 != h3 {
		t.Errorf("hashes %x %v %x %v %x", h1, ok1, h2, ok2, h3)
	}
	if _, ok := HashHeader("X-Missing")(r); ok {
		t.Error("missing header hashed")
	}
	if HashString("abc") != HashBytes([]byte("abc")) {
		t.Error("HashString and HashBytes disagree")
	}
}
