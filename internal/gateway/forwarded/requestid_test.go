package forwarded

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestNewRequestID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool, 100000)
	var prefix string
	for i := range 100000 {
		id := NewRequestID()
		if len(id) < 20 || len(id) > 26 || len(id) != RequestIDLen {
			t.Fatalf("len(%q) = %d", id, len(id))
		}
		if strings.Trim(id, alphabet) != "" {
			t.Fatalf("%q has characters outside the URL-safe alphabet", id)
		}
		if !ValidRequestID(id) {
			t.Fatalf("%q is not a valid request id", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q after %d", id, i)
		}
		seen[id] = true
		if i == 0 {
			prefix = id[:prefixLen]
		} else if id[:prefixLen] != prefix {
			t.Fatalf("per-process prefix changed: %q vs %q", id[:prefixLen], prefix)
		}
	}
}

func TestNewRequestIDConcurrentUnique(t *testing.T) {
	t.Parallel()
	const workers, each = 4, 5000
	out := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				out[w] = append(out[w], NewRequestID())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, ids := range out {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate %q", id)
			}
			seen[id] = true
		}
	}
}

func TestIDSourcesDiffer(t *testing.T) {
	t.Parallel()
	a, b := newIDSource(), newIDSource()
	if a.prefix == b.prefix {
		t.Fatal("two sources drew the same random prefix")
	}
}

func TestMixIsBijectiveOnSample(t *testing.T) {
	t.Parallel()
	seen := make(map[uint64]bool)
	for i := uint64(0); i < 1<<16; i++ {
		v := mix(i)
		if seen[v] {
			t.Fatalf("mix collision at %d", i)
		}
		seen[v] = true
	}
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"abc":                                  true,
		"0b9c6f2a-4e1d-4c7a-9f3e-2b1a0c9d8e7f": true,
		"a/b+c=d_~.":                           true,
		strings.Repeat("x", 128):               true,
		"":                                     false,
		strings.Repeat("x", 129):               false,
		"a b":                                  false,
		"a,b":                                  false,
		`a"b`:                                  false,
		"a'b":                                  false,
		"a\tb":                                 false,
		"a\nb":                                 false,
		"caf\xc3\xa9":                          false,
		"a\x7f":                                false,
	}
	for in, want := range cases {
		if got := ValidRequestID(in); got != want {
			t.Errorf("ValidRequestID(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzValidRequestID(f *testing.F) {
	f.Add("abc")
	f.Add("a,b")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidRequestID(s) && strings.ContainsAny(s, " ,\"'\r\n\t") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func ExampleValidRequestID() {
	fmt.Println(ValidRequestID("req-42"), ValidRequestID("a, b"))
	// Output: true false
}

func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewRequestID()
	}
}

func BenchmarkNewRequestIDParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = NewRequestID()
		}
	})
}
