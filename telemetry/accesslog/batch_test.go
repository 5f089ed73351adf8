package accesslog

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeRecorder keeps every Write it is given, separately.
type writeRecorder struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writeRecorder) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	l := newLogger(t, Options{Output: io.Discard})
	base := time.Date(2026, 11, 22, 6, 30, 59, 0, time.UTC)
	times := []time.Time{
		{},
		base,
		base.Add(1),
		base.Add(120 * time.Millisecond),
		base.Add(999999999),
		base.Add(time.Second), // the next second: the cache moves on
		base.Add(time.Second + 5000),
		base, // and back
		time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600)),
		time.Date(2026, 12, 31, 23, 59, 59, 100, time.FixedZone("", -11*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Now(),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, base.Add(time.Duration(rng.Int64N(int64(5*time.Second)))))
	}
	for _, tm := range times {
		want := tm.UTC().Format(time.RFC3339Nano)
		if got := string(l.appendTime(nil, tm)); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0), int64(0), int64(0))
	f.Add(int64(1795329059), int64(120000000), int64(1795329059))
	f.Add(int64(1795329059), int64(1), int64(1795329060))
	f.Add(int64(-62135596800), int64(0), int64(253402300800))
	l, err := New(Options{Output: io.Discard})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = l.Close() })
	f.Fuzz(func(t *testing.T, sec, nsec, sec2 int64) {
		// Two times in a row: the second may hit the first one's cache.
		for _, tm := range []time.Time{time.Unix(sec, nsec), time.Unix(sec2, nsec/3)} {
			want := tm.UTC().Format(time.RFC3339Nano)
			if got := string(l.appendTime(nil, tm)); got != want {
				t.Fatalf("appendTime(%d.%09d) = %s, want %s", tm.Unix(), tm.Nanosecond(), got, want)
			}
		}
	})
}

// TestBatchesKeepWholeLinesInOrder logs more than several batches hold, with
// one line larger than a batch, and checks that every Write holds whole lines
// and that the lines arrive in order.
func TestBatchesKeepWholeLinesInOrder(t *testing.T) {
	w := &writeRecorder{}
	l, err := New(Options{Output: w, BufferSize: 100000, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		x := sampleExchange()
		x.ID = fmt.Sprintf("req-%d", i)
		x.Path = "/" + strings.Repeat("p", i%700)
		if i == 500 {
			x.Path = "/" + strings.Repeat("big", batchSize/2)
		}
		l.Log(x, "GET", "", "HTTP/1.1")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writes := w.snapshot()
	if len(writes) < 5 {
		t.Errorf("%d writes for more than 5 batches of lines", len(writes))
	}
	i := 0
	for wi, s := range writes {
		if !strings.HasSuffix(s, "\n") {
			t.Fatalf("write %d does not end with a whole line", wi)
		}
		for ln := range strings.Lines(s) {
			var v struct {
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(ln), &v); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if want := fmt.Sprintf("req-%d", i); v.RequestID != want {
				t.Fatalf("line %d has request_id %s, want %s", i, v.RequestID, want)
			}
			i++
		}
	}
	if i != n || l.Dropped() != 0 {
		t.Errorf("got %d lines and %d dropped, want %d and 0", i, l.Dropped(), n)
	}
}

// TestFullBatchWrittenBeforeFlushInterval checks that a full batch does not
// wait for the flush timer.
func TestFullBatchWrittenBeforeFlushInterval(t *testing.T) {
	w := &writeRecorder{}
	l := newLogger(t, Options{Output: w, BufferSize: 100000, FlushInterval: time.Hour})
	x := sampleExchange()
	x.Path = "/" + strings.Repeat("a", 1000)
	for range 2 * batchSize / 1000 {
		l.Log(x, "GET", "", "HTTP/1.1")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(w.snapshot()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a full batch waited for the flush interval")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentLogAccountsForEveryLine logs from several goroutines, some
// into a queue small enough to overflow, and checks that every line is
// either written whole or counted as dropped.
func TestConcurrentLogAccountsForEveryLine(t *testing.T) {
	for _, size := range []int{16, 100000} {
		t.Run(fmt.Sprint("BufferSize=", size), func(t *testing.T) {
			out := &syncBuffer{}
			l, err := New(Options{Output: out, BufferSize: size, FlushInterval: time.Millisecond, OnDrop: func() {}})
			if err != nil {
				t.Fatal(err)
			}
			const workers, each = 4, 2000
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					x := sampleExchange()
					for i := range each {
						x.ID = fmt.Sprintf("g%d-%d", g, i)
						l.Log(x, "GET", "", "HTTP/1.1")
					}
				})
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			got := 0
			for ln := range strings.Lines(out.String()) {
				if !json.Valid([]byte(ln)) {
					t.Fatalf("invalid line: %q", ln)
				}
				got++
			}
			if total := got + int(l.Dropped()); total != workers*each {
				t.Errorf("%d written + %d dropped = %d, want %d", got, l.Dropped(), total, workers*each)
			}
			if size == 100000 && l.Dropped() != 0 {
				t.Errorf("%d lines dropped with room for all of them", l.Dropped())
			}
		})
	}
}
