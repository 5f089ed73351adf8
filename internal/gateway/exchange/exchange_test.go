package exchange

import (
	"context"
	"testing"
)

func TestParams(t *testing.T) {
	t.Parallel()
	var p Params
	for i := 0; i < MaxParams; i++ {
		if !p.Add(string(rune('a'+i)), "v") {
			t.Fatalf("Add %d refused", i)
		}
	}
	if p.Add("overflow", "v") {
		t.Fatal("Add beyond MaxParams accepted")
	}
	if v, ok := p.Get("c"); !ok || v != "v" {
		t.Fatalf("Get c = %q %v", v, ok)
	}
	p.Truncate(2)
	if p.Len() != 2 {
		t.Fatalf("Len after Truncate = %d", p.Len())
	}
	if _, ok := p.Get("c"); ok {
		t.Fatal("truncated parameter still found")
	}
	if p.At(1).Name != "b" {
		t.Fatalf("At(1) = %v", p.At(1))
	}
	p.Reset()
	if p.Len() != 0 {
		t.Fatal("Reset left parameters")
	}
}

func TestContextAndReset(t *testing.T) {
	t.Parallel()
	if From(context.Background()) != nil {
		t.Fatal("From on an empty context")
	}
	x := new(Exchange)
	x.ID = "abc"
	x.Params.Add("id", "1")
	ctx := NewContext(context.Background(), x)
	if From(ctx) != x {
		t.Fatal("From did not return the attached exchange")
	}
	x.Reset()
	if x.ID != "" || x.Params.Len() != 0 {
		t.Fatal("Reset left state behind")
	}
}

func BenchmarkParamsGet(b *testing.B) {
	b.ReportAllocs()
	var p Params
	p.Add("tenant", "acme")
	p.Add("id", "42")
	for b.Loop() {
		if v, _ := p.Get("id"); v != "42" {
			b.Fatal(v)
		}
	}
}
