package tokencache

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestGetPutExpire(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New[int](100, clk.now)
	c.Put("a", 1, clk.now().Add(time.Minute))
	c.Put("past", 2, clk.now().Add(-time.Second))
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %v, %v", v, ok)
	}
	if _, ok := c.Get("past"); ok {
		t.Fatal("an entry that expired before it was put was stored")
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("Get(b) found a value never put")
	}
	clk.add(time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Fatal("Get(a) after expiry found the value")
	}
	c.Put("x", 3, clk.now().Add(time.Hour))
	c.Delete("x")
	if _, ok := c.Get("x"); ok {
		t.Fatal("Delete did not forget x")
	}
}

func TestBounded(t *testing.T) {
	c := New[int](64, nil)
	exp := time.Now().Add(time.Hour)
	for i := range 10000 {
		c.Put("token-"+strconv.Itoa(i), i, exp)
	}
	if n := c.Len(); n > 64 {
		t.Fatalf("cache holds %d entries, bound is 64", n)
	}
	// The most recent entry is always kept.
	if v, ok := c.Get("token-9999"); !ok || v != 9999 {
		t.Fatalf("latest entry missing: %v %v", v, ok)
	}
}

func TestEvictsExpiredFirst(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := New[int](shardCount, clk.now) // one entry per shard
	for i := range 200 {
		c.Put("old-"+strconv.Itoa(i), i, clk.now().Add(time.Second))
	}
	clk.add(2 * time.Second)
	c.Put("new", 1, clk.now().Add(time.Hour))
	if _, ok := c.Get("new"); !ok {
		t.Fatal("new entry was not stored")
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int](1000, nil)
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := strconv.Itoa(g*10000 + i%300)
				c.Put(k, i, exp)
				c.Get(k)
			}
		}()
	}
	wg.Wait()
	if c.Len() > 1008 {
		t.Fatalf("Len %d over bound", c.Len())
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := New[int](10000, nil)
	tok := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0." + string(make([]byte, 600)) + ".sig"
	c.Put(tok, 1, time.Now().Add(time.Hour))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(tok); !ok {
				b.Fatal("miss")
			}
		}
	})
}
