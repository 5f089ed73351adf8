package introspect

import (
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
