package router

import (
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func params(kv ...string) *exchange.Params {
	var p exchange.Params
	for i := 0; i+1 < len(kv); i += 2 {
		p.Add(kv[i], kv[i+1])
	}
	return &p
}

func TestRewriterApply(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		spec    RewriteSpec
		pattern string
		path    string
		params  *exchange.Params
		want    string
	}{
		{"none", RewriteSpec{}, "/a/{x...}", "/a/b", nil, "/a/b"},
		{"strip", RewriteSpec{StripPrefix: "/api"}, "/api/{rest...}", "/api/users/1", nil, "/users/1"},
		{"strip to root", RewriteSpec{StripPrefix: "/api"}, "/api", "/api", nil, "/"},
		{"strip keeps trailing slash", RewriteSpec{StripPrefix: "/api"}, "/api/", "/api/", nil, "/"},
		{"strip is segment-aware", RewriteSpec{StripPrefix: "/api"}, "/{x}", "/apiv2", nil, "/apiv2"},
		{"strip prefix with trailing slash", RewriteSpec{StripPrefix: "/api/"}, "/api/{rest...}", "/api/x", nil, "/x"},
		{"strip multi-segment", RewriteSpec{StripPrefix: "/api/v1"}, "/api/v1/{rest...}", "/api/v1/orders/", nil, "/orders/"},
		{"strip does not match", RewriteSpec{StripPrefix: "/api"}, "/{x...}", "/other/api", nil, "/other/api"},
		{"strip root is identity", RewriteSpec{StripPrefix: "/"}, "/{x...}", "/a/b", nil, "/a/b"},
		{"replace", RewriteSpec{ReplaceFrom: "/api", ReplaceTo: "/v2"}, "/api/{rest...}", "/api/users", nil, "/v2/users"},
		{"replace whole path", RewriteSpec{ReplaceFrom: "/api", ReplaceTo: "/v2"}, "/api", "/api", nil, "/v2"},
		{"replace to root", RewriteSpec{ReplaceFrom: "/api", ReplaceTo: "/"}, "/api/{rest...}", "/api/users", nil, "/users"},
		{"replace to slash-ended", RewriteSpec{ReplaceFrom: "/api", ReplaceTo: "/v2/"}, "/api/{rest...}", "/api/users", nil, "/v2/users"},
		{"replace is segment-aware", RewriteSpec{ReplaceFrom: "/api", ReplaceTo: "/v2"}, "/{x}", "/apix", nil, "/apix"},
		{"template", RewriteSpec{Template: "/v2/users/{id}"}, "/users/{id}", "/users/42", params("id", "42"), "/v2/users/42"},
		{"template reorders", RewriteSpec{Template: "/{b}/{a}"}, "/{a}/{b}", "/x/y", params("a", "x", "b", "y"), "/y/x"},
		{"template inside a segment", RewriteSpec{Template: "/u/user-{id}.json"}, "/users/{id}", "/users/7", params("id", "7"), "/u/user-7.json"},
		{"template catch-all", RewriteSpec{Template: "/files/{rest}"}, "/static/{rest...}", "/static/a/b", params("rest", "a/b"), "/files/a/b"},
		{"template catch-all spelled with dots", RewriteSpec{Template: "/files/{rest...}"}, "/static/{rest...}", "/static/a/b", params("rest", "a/b"), "/files/a/b"},
		{"template empty catch-all", RewriteSpec{Template: "/files/{rest}"}, "/static/{rest...}", "/static/", params("rest", ""), "/files/"},
		{"template without params", RewriteSpec{Template: "/fixed"}, "/x/{id}", "/x/1", params("id", "1"), "/fixed"},
		{"template nil params", RewriteSpec{Template: "/u/{id}/x"}, "/{id}", "/1", nil, "/u/x"},
		// Attacks: values are decoded and must not climb out of the template.
		{"scheme-relative via catch-all", RewriteSpec{Template: "/{rest}"}, "/{rest...}", "//evil.com/x", params("rest", "/evil.com/x"), "/evil.com/x"},
		{"scheme-relative via two params", RewriteSpec{Template: "/{a}/{b}"}, "/{a}/{b...}", "", params("a", "", "b", "/evil.com"), "/evil.com"},
		{"dotdot in catch-all", RewriteSpec{Template: "/files/{rest}"}, "/s/{rest...}", "", params("rest", "../../etc/passwd"), "/etc/passwd"},
		{"dots joined from two params", RewriteSpec{Template: "/base/{a}{b}/x"}, "/{a}/{b}", "", params("a", ".", "b", "."), "/x"},
		{"dotdot param", RewriteSpec{Template: "/base/{id}"}, "/{id}", "", params("id", ".."), "/"},
		{"strip leaves double slash", RewriteSpec{StripPrefix: "/api"}, "/api/{rest...}", "/api//evil.com", nil, "/evil.com"},
		{"replace to yields double slash", RewriteSpec{ReplaceFrom: "/a", ReplaceTo: "/"}, "/a/{rest...}", "/a//evil.com", nil, "/evil.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rw, err := NewRewriter(tc.spec, tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got := rw.Apply(tc.path, tc.params)
			if got != tc.want {
				t.Fatalf("Apply(%q) = %q, want %q", tc.path, got, tc.want)
			}
			if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
				t.Fatalf("Apply(%q) = %q does not start with exactly one slash", tc.path, got)
			}
		})
	}
}

func TestNewRewriterRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		spec    RewriteSpec
		pattern string
		want    string
	}{
		{"two kinds", RewriteSpec{StripPrefix: "/a", Template: "/b"}, "/a", "at most one"},
		{"three kinds", RewriteSpec{StripPrefix: "/a", ReplaceFrom: "/a", ReplaceTo: "/b", Template: "/b"}, "/a", "at most one"},
		{"bad pattern", RewriteSpec{StripPrefix: "/a"}, "a", "must start with"},
		{"relative prefix", RewriteSpec{StripPrefix: "api"}, "/api", "must start with"},
		{"dotdot prefix", RewriteSpec{StripPrefix: "/a/../b"}, "/a", "dot segment"},
		{"double slash prefix", RewriteSpec{StripPrefix: "//a"}, "/a", "empty or dot"},
		{"replace without to", RewriteSpec{ReplaceFrom: "/a"}, "/a", "must start with"},
		{"replace without from", RewriteSpec{ReplaceTo: "/a"}, "/a", "must start with"},
		{"replace to with query", RewriteSpec{ReplaceFrom: "/a", ReplaceTo: "/b?x=1"}, "/a", "contains"},
		{"template unknown param", RewriteSpec{Template: "/v2/{uid}"}, "/users/{id}", "not captured"},
		{"template unclosed", RewriteSpec{Template: "/v2/{id"}, "/users/{id}", "unclosed"},
		{"template stray close", RewriteSpec{Template: "/v2/id}"}, "/users/{id}", "unmatched"},
		{"template bad name", RewriteSpec{Template: "/v2/{i-d}"}, "/users/{id}", "not a parameter name"},
		{"template relative", RewriteSpec{Template: "{id}/x"}, "/users/{id}", "must start with"},
		{"template dot segment", RewriteSpec{Template: "/a/../{id}"}, "/users/{id}", "dot segment"},
		{"template semicolon", RewriteSpec{Template: "/a;{id}"}, "/users/{id}", "contains"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewRewriter(tc.spec, tc.pattern)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewRewriter error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRewriterApplyAllocations(t *testing.T) {
	strip, _ := NewRewriter(RewriteSpec{StripPrefix: "/api"}, "/api/{rest...}")
	if a := testing.AllocsPerRun(100, func() { strip.Apply("/api/users/1", nil) }); a != 0 {
		t.Errorf("strip allocates %v times", a)
	}
	tpl, _ := NewRewriter(RewriteSpec{Template: "/v2/users/{id}"}, "/users/{id}")
	ps := params("id", "42")
	if a := testing.AllocsPerRun(100, func() { tpl.Apply("/users/42", ps) }); a > 1 {
		t.Errorf("template allocates %v times", a)
	}
}
