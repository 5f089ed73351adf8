package registry

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// benchStore registers n instances of one service with a long TTL and
// returns their ids.
func benchStore(b *testing.B, n int, md map[string]string) (*Memory, []string) {
	b.Helper()
	m := NewMemory(MemoryOptions{})
	b.Cleanup(func() { _ = m.Close() })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%d", i)
		in := testInstance("orders", ids[i])
		in.Metadata = md
		if _, err := m.Register(context.Background(), in, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	return m, ids
}

// BenchmarkHeartbeat renews passing instances: no event, no timer change.
func BenchmarkHeartbeat(b *testing.B) {
	m, ids := benchStore(b, 1000, nil)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Heartbeat(ctx, "orders", ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkHeartbeatMetadata is BenchmarkHeartbeat for instances with
// metadata, which each answer copies.
func BenchmarkHeartbeatMetadata(b *testing.B) {
	m, ids := benchStore(b, 1000, map[string]string{"team": "core", "git": "abc123", "region": "eu"})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Heartbeat(ctx, "orders", ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkHeartbeatParallel(b *testing.B) {
	m, ids := benchStore(b, 1000, nil)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 7919
		for pb.Next() {
			if _, err := m.Heartbeat(ctx, "orders", ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkTimerReset is the cost a heartbeat would pay to re-arm a timer
// per instance, for comparison with BenchmarkHeartbeat, which never
// touches its timer.
func BenchmarkTimerReset(b *testing.B) {
	timers := make([]*time.Timer, 1000)
	for i := range timers {
		timers[i] = time.AfterFunc(time.Hour, func() {})
	}
	b.Cleanup(func() {
		for _, t := range timers {
			t.Stop()
		}
	})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		timers[i%len(timers)].Reset(time.Hour)
		i++
	}
}

// BenchmarkHandlerHeartbeat is a heartbeat through the HTTP handler (no
// network), with a registration token to check.
func BenchmarkHandlerHeartbeat(b *testing.B) {
	m, ids := benchStore(b, 1000, nil)
	h, err := NewHandler(m, HandlerOptions{Tokens: testTokens})
	if err != nil {
		b.Fatal(err)
	}
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = "/registry/v1/services/orders/instances/" + id + "/heartbeat"
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := httptest.NewRequest("PUT", paths[i%len(paths)], nil)
		r.Header.Set("Authorization", "Bearer "+tokOrders)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
		i++
	}
}

func BenchmarkRegister(b *testing.B) {
	m := NewMemory(MemoryOptions{History: 1024})
	b.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Register(ctx, testInstance("orders", ids[i%len(ids)]), time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkInstances(b *testing.B) {
	m, _ := benchStore(b, 100, map[string]string{"team": "core"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if ins, _, err := m.Instances(ctx, "orders"); err != nil || len(ins) != 100 {
			b.Fatal(len(ins), err)
		}
	}
}

// BenchmarkWatchFanout appends one event and delivers it to 10 watchers.
func BenchmarkWatchFanout(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	b.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	ws := make([]Watcher, 10)
	for i := range ws {
		w, err := m.Watch(ctx, "", 0)
		if err != nil {
			b.Fatal(err)
		}
		ws[i] = w
	}
	in := testInstance("orders", "o-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Register(ctx, in, time.Hour); err != nil {
			b.Fatal(err)
		}
		for _, w := range ws {
			if _, err := w.Next(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}
