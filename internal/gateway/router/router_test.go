package router

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func ptr[T any](v T) *T { return &v }

func mustNew(t testing.TB, routes ...Route) *Router {
	t.Helper()
	for i := range routes {
		routes[i].Value = i
	}
	rt, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

type lookupCase struct {
	name    string
	host    string
	method  string
	path    string
	headers http.Header
	result  Result
	route   string            // expected Match.Name when Found
	params  map[string]string // expected parameters when Found
	allow   string            // expected Match.Allow for MethodNotAllowed
}

func runLookups(t *testing.T, rt *Router, cases []lookupCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var ps exchange.Params
			m, res := rt.Lookup(tc.host, method, tc.path, tc.headers, &ps)
			if res != tc.result {
				t.Fatalf("Lookup(%q, %s, %q) = %v (%+v), want %v", tc.host, method, tc.path, res, m, tc.result)
			}
			switch res {
			case Found:
				if m.Name != tc.route {
					t.Fatalf("route = %q (%s), want %q", m.Name, m.Pattern, tc.route)
				}
				if ps.Len() != len(tc.params) {
					t.Fatalf("got %d params, want %v", ps.Len(), tc.params)
				}
				for k, v := range tc.params {
					if got, ok := ps.Get(k); !ok || got != v {
						t.Fatalf("param %s = %q, %v; want %q", k, got, ok, v)
					}
				}
			case MethodNotAllowed:
				if m.Allow != tc.allow {
					t.Fatalf("Allow = %q, want %q", m.Allow, tc.allow)
				}
				if ps.Len() != 0 {
					t.Fatalf("405 left %d params", ps.Len())
				}
			}
		})
	}
}

func TestLookupPaths(t *testing.T) {
	t.Parallel()
	rt := mustNew(t,
		Route{Name: "root", Path: "/"},
		Route{Name: "users", Path: "/users"},
		Route{Name: "users-slash", Path: "/users/"},
		Route{Name: "me", Path: "/users/me"},
		Route{Name: "user", Path: "/users/{id}"},
		Route{Name: "user-orders", Path: "/users/{id}/orders/{order}"},
		Route{Name: "user-rest", Path: "/users/{id}/{rest...}"},
		Route{Name: "static", Path: "/static/{file...}"},
		Route{Name: "a-b-c", Path: "/a/b/c"},
		Route{Name: "a-param-d", Path: "/a/{x}/d"},
		Route{Name: "a-catch", Path: "/a/{rest...}"},
		Route{Name: "unicode", Path: "/café/{name}"},
	)
	runLookups(t, rt, []lookupCase{
		{name: "root", path: "/", result: Found, route: "root"},
		{name: "static segment", path: "/users", result: Found, route: "users"},
		{name: "trailing slash is significant", path: "/users/", result: Found, route: "users-slash"},
		{name: "static beats param", path: "/users/me", result: Found, route: "me"},
		{name: "param", path: "/users/42", result: Found, route: "user", params: map[string]string{"id": "42"}},
		{name: "two params", path: "/users/42/orders/7", result: Found, route: "user-orders", params: map[string]string{"id": "42", "order": "7"}},
		{name: "catch-all after param", path: "/users/42/orders", result: Found, route: "user-rest", params: map[string]string{"id": "42", "rest": "orders"}},
		{name: "catch-all takes slashes", path: "/users/42/orders/7/items", result: Found, route: "user-rest", params: map[string]string{"id": "42", "rest": "orders/7/items"}},
		{name: "param never matches empty segment", path: "/users/me/", result: Found, route: "user-rest", params: map[string]string{"id": "me", "rest": ""}},
		{name: "catch-all with subpath", path: "/static/css/site.css", result: Found, route: "static", params: map[string]string{"file": "css/site.css"}},
		{name: "catch-all matches empty rest", path: "/static/", result: Found, route: "static", params: map[string]string{"file": ""}},
		{name: "catch-all needs the slash", path: "/static", result: NotFound},
		{name: "backtrack from static to param", path: "/a/b/d", result: Found, route: "a-param-d", params: map[string]string{"x": "b"}},
		{name: "backtrack to catch-all", path: "/a/b/e", result: Found, route: "a-catch", params: map[string]string{"rest": "b/e"}},
		{name: "exact static still wins", path: "/a/b/c", result: Found, route: "a-b-c"},
		{name: "unicode segment", path: "/café/crème", result: Found, route: "unicode", params: map[string]string{"name": "crème"}},
		{name: "no route", path: "/nothing", result: NotFound},
		{name: "non-canonical path is not found", path: "users", result: NotFound},
		{name: "empty path", path: "", result: NotFound},
	})
}

func TestLookupWideNodes(t *testing.T) {
	t.Parallel()
	var routes []Route
	for i := range 50 {
		routes = append(routes, Route{Name: fmt.Sprint("svc", i), Path: fmt.Sprintf("/svc%d/{id}", i)})
	}
	routes = append(routes, Route{Name: "fallback", Path: "/{svc}/{id}"})
	rt := mustNew(t, routes...)
	runLookups(t, rt, []lookupCase{
		{name: "indexed static", path: "/svc37/x", result: Found, route: "svc37", params: map[string]string{"id": "x"}},
		{name: "indexed miss falls to param", path: "/svc99/x", result: Found, route: "fallback", params: map[string]string{"svc": "svc99", "id": "x"}},
	})
}

func TestLookupHosts(t *testing.T) {
	t.Parallel()
	rt := mustNew(t,
		Route{Name: "exact", Hosts: []string{"api.example.com"}, Path: "/users/{id}"},
		Route{Name: "exact-only", Hosts: []string{"api.example.com"}, Path: "/only-exact"},
		Route{Name: "wild", Hosts: []string{"*.example.com"}, Path: "/users/{id}"},
		Route{Name: "wild-deep", Hosts: []string{"*.eu.example.com"}, Path: "/users/{id}"},
		Route{Name: "wild-other", Hosts: []string{"*.example.com"}, Path: "/other"},
		Route{Name: "any", Path: "/users/{id}"},
		Route{Name: "any-health", Path: "/health"},
		Route{Name: "v6", Hosts: []string{"[::1]"}, Path: "/users/{id}"},
		Route{Name: "multi", Hosts: []string{"a.test", "B.test"}, Path: "/m"},
	)
	runLookups(t, rt, []lookupCase{
		{name: "exact beats wildcard", host: "api.example.com", path: "/users/1", result: Found, route: "exact", params: map[string]string{"id": "1"}},
		{name: "case and port ignored", host: "API.Example.com:8443", path: "/users/1", result: Found, route: "exact", params: map[string]string{"id": "1"}},
		{name: "trailing dot ignored", host: "api.example.com.", path: "/users/1", result: Found, route: "exact", params: map[string]string{"id": "1"}},
		{name: "wildcard", host: "www.example.com", path: "/users/1", result: Found, route: "wild", params: map[string]string{"id": "1"}},
		{name: "wildcard many labels", host: "a.b.c.example.com", path: "/users/1", result: Found, route: "wild", params: map[string]string{"id": "1"}},
		{name: "longest wildcard suffix", host: "paris.eu.example.com", path: "/users/1", result: Found, route: "wild-deep", params: map[string]string{"id": "1"}},
		{name: "wildcard needs a label", host: "example.com", path: "/users/1", result: Found, route: "any", params: map[string]string{"id": "1"}},
		{name: "wildcard is not a substring match", host: "badexample.com", path: "/users/1", result: Found, route: "any", params: map[string]string{"id": "1"}},
		{name: "unknown host falls back", host: "other.test", path: "/users/1", result: Found, route: "any", params: map[string]string{"id": "1"}},
		{name: "no host header", host: "", path: "/users/1", result: Found, route: "any", params: map[string]string{"id": "1"}},
		{name: "exact falls back to wildcard group", host: "api.example.com", path: "/other", result: Found, route: "wild-other"},
		{name: "deeper wildcard falls back to shorter", host: "x.eu.example.com", path: "/other", result: Found, route: "wild-other"},
		{name: "exact falls back to any host", host: "api.example.com", path: "/health", result: Found, route: "any-health"},
		{name: "exact-host route is not shared", host: "www.example.com", path: "/only-exact", result: NotFound},
		{name: "ipv6 literal with port", host: "[::1]:8080", path: "/users/1", result: Found, route: "v6", params: map[string]string{"id": "1"}},
		{name: "route with several hosts a", host: "a.test", path: "/m", result: Found, route: "multi"},
		{name: "route with several hosts b", host: "b.test", path: "/m", result: Found, route: "multi"},
		{name: "route with several hosts other", host: "c.test", path: "/m", result: NotFound},
	})
}

func TestLookupMethods(t *testing.T) {
	t.Parallel()
	rt := mustNew(t,
		Route{Name: "list", Path: "/items", Methods: []string{"GET"}},
		Route{Name: "create", Path: "/items", Methods: []string{"post"}},
		Route{Name: "get", Path: "/items/{id}", Methods: []string{"GET"}},
		Route{Name: "any-item", Path: "/items/{id}"},
		Route{Name: "me", Path: "/users/me", Methods: []string{"GET"}},
		Route{Name: "user-update", Path: "/users/{id}", Methods: []string{"PUT", "PATCH"}},
		Route{Name: "purge", Path: "/cache", Methods: []string{"PURGE"}},
		Route{Name: "head-only", Path: "/ping", Methods: []string{"HEAD"}},
		Route{Name: "exact-get", Hosts: []string{"api.test"}, Path: "/split", Methods: []string{"GET"}},
		Route{Name: "any-post", Path: "/split", Methods: []string{"POST"}},
		Route{Name: "exact-get2", Hosts: []string{"api.test"}, Path: "/both", Methods: []string{"GET"}},
		Route{Name: "any-delete", Path: "/both/{x...}", Methods: []string{"DELETE"}},
	)
	runLookups(t, rt, []lookupCase{
		{name: "GET", path: "/items", result: Found, route: "list"},
		{name: "methods are upper-cased at build", method: "POST", path: "/items", result: Found, route: "create"},
		{name: "GET route answers HEAD", method: "HEAD", path: "/items", result: Found, route: "list"},
		{name: "405 lists the union", method: "DELETE", path: "/items", result: MethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "methods are case-sensitive", method: "get", path: "/items", result: MethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "method list before method-less", path: "/items/1", result: Found, route: "get", params: map[string]string{"id": "1"}},
		{name: "method-less catches the rest", method: "DELETE", path: "/items/1", result: Found, route: "any-item", params: map[string]string{"id": "1"}},
		{name: "method failure backtracks to param", method: "PUT", path: "/users/me", result: Found, route: "user-update", params: map[string]string{"id": "me"}},
		{name: "405 across backtracking branches", method: "POST", path: "/users/me", result: MethodNotAllowed, allow: "GET, HEAD, PATCH, PUT"},
		{name: "custom method", method: "PURGE", path: "/cache", result: Found, route: "purge"},
		{name: "custom method in Allow", method: "GET", path: "/cache", result: MethodNotAllowed, allow: "PURGE"},
		{name: "HEAD does not bring GET", method: "GET", path: "/ping", result: MethodNotAllowed, allow: "HEAD"},
		{name: "less specific host group finds the method", host: "api.test", method: "POST", path: "/split", result: Found, route: "any-post"},
		{name: "405 union across host groups", host: "api.test", method: "PUT", path: "/split", result: MethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "405 union across groups and patterns", host: "api.test", method: "PUT", path: "/both/", result: MethodNotAllowed, allow: "DELETE"},
		{name: "405 from exact group kept", host: "api.test", method: "PUT", path: "/both", result: MethodNotAllowed, allow: "GET, HEAD"},
	})
}

func TestLookupHeaders(t *testing.T) {
	t.Parallel()
	rt := mustNew(t,
		Route{Name: "plain", Path: "/r", Methods: []string{"GET"}},
		Route{Name: "v2", Path: "/r", Methods: []string{"GET"}, Headers: []HeaderMatch{{Name: "x-api-version", Equals: ptr("2")}}},
		Route{Name: "v2-beta", Path: "/r", Methods: []string{"GET"}, Headers: []HeaderMatch{
			{Name: "X-Api-Version", Equals: ptr("2")}, {Name: "X-Beta", Present: ptr(true)}}},
		Route{Name: "mobile", Path: "/m", Headers: []HeaderMatch{{Name: "User-Agent", Regex: regexp.MustCompile(`(?i)mobile`)}}},
		Route{Name: "no-auth", Path: "/a", Headers: []HeaderMatch{{Name: "Authorization", Present: ptr(false)}}},
		Route{Name: "post-only-v3", Path: "/h", Methods: []string{"POST"}, Headers: []HeaderMatch{{Name: "X-V", Equals: ptr("3")}}},
	)
	runLookups(t, rt, []lookupCase{
		{name: "no headers", path: "/r", result: Found, route: "plain"},
		{name: "one predicate", path: "/r", headers: http.Header{"X-Api-Version": {"2"}}, result: Found, route: "v2"},
		{name: "more predicates first", path: "/r", headers: http.Header{"X-Api-Version": {"2"}, "X-Beta": {""}}, result: Found, route: "v2-beta"},
		{name: "any value of a repeated header", path: "/r", headers: http.Header{"X-Api-Version": {"1", "2"}}, result: Found, route: "v2"},
		{name: "regex", path: "/m", headers: http.Header{"User-Agent": {"Foo Mobile/1"}}, result: Found, route: "mobile"},
		{name: "regex fails", path: "/m", headers: http.Header{"User-Agent": {"Desktop"}}, result: NotFound},
		{name: "regex with no header", path: "/m", result: NotFound},
		{name: "absent", path: "/a", result: Found, route: "no-auth"},
		{name: "absent fails", path: "/a", headers: http.Header{"Authorization": {"x"}}, result: NotFound},
		{name: "header failure is not a 405", method: "GET", path: "/h", result: NotFound},
		{name: "header match then method failure is a 405", method: "GET", path: "/h", headers: http.Header{"X-V": {"3"}}, result: MethodNotAllowed, allow: "POST"},
	})
}

func TestLookupParamsNamedByWinningRoute(t *testing.T) {
	t.Parallel()
	rt := mustNew(t,
		Route{Name: "by-id", Path: "/u/{id}", Methods: []string{"GET"}},
		Route{Name: "by-uid", Path: "/u/{uid}", Methods: []string{"DELETE"}},
	)
	runLookups(t, rt, []lookupCase{
		{name: "first", path: "/u/7", result: Found, route: "by-id", params: map[string]string{"id": "7"}},
		{name: "second", method: "DELETE", path: "/u/7", result: Found, route: "by-uid", params: map[string]string{"uid": "7"}},
	})
}

func TestLookupNilParamsAndHeaders(t *testing.T) {
	t.Parallel()
	rt := mustNew(t, Route{Name: "u", Path: "/u/{id}", Headers: []HeaderMatch{{Name: "X", Present: ptr(false)}}})
	m, res := rt.Lookup("", "GET", "/u/1", nil, nil)
	if res != Found || m.Name != "u" || m.Pattern != "/u/{id}" || m.Value != 0 {
		t.Fatalf("Lookup = %+v, %v", m, res)
	}
}

func TestLookupResetsParams(t *testing.T) {
	t.Parallel()
	rt := mustNew(t, Route{Name: "u", Path: "/u/{id}"})
	var ps exchange.Params
	ps.Add("stale", "x")
	if _, res := rt.Lookup("", "GET", "/u/1", nil, &ps); res != Found || ps.Len() != 1 {
		t.Fatalf("Lookup = %v with %d params", res, ps.Len())
	}
	if _, res := rt.Lookup("", "GET", "/nope", nil, &ps); res != NotFound || ps.Len() != 0 {
		t.Fatalf("NotFound left %d params", ps.Len())
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	rt := mustNew(t,
		Route{Name: "u", Hosts: []string{"*.example.com"}, Path: "/users/{id}/orders/{rest...}", Methods: []string{"GET"}},
		Route{Name: "h", Path: "/h", Methods: []string{"GET"}, Headers: []HeaderMatch{{Name: "X-V", Regex: regexp.MustCompile(`^v[0-9]+$`)}}},
		Route{Name: "p", Path: "/p", Methods: []string{"GET"}},
	)
	h := http.Header{"X-V": {"v2"}}
	var ps exchange.Params
	cases := []struct{ host, method, path string }{
		{"api.example.com:443", "GET", "/users/1/orders/2/3"},
		{"", "GET", "/h"},
		{"", "POST", "/p"}, // 405 with a precomputed Allow
		{"", "GET", "/missing"},
	}
	for _, c := range cases {
		allocs := testing.AllocsPerRun(100, func() { rt.Lookup(c.host, c.method, c.path, h, &ps) })
		if allocs != 0 {
			t.Errorf("Lookup(%q, %s, %q) allocates %v times", c.host, c.method, c.path, allocs)
		}
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		routes []Route
		is     error
		want   string
	}{
		{"no leading slash", []Route{{Name: "r", Path: "users"}}, ErrInvalidRoute, "must start with"},
		{"empty pattern", []Route{{Name: "r", Path: ""}}, ErrInvalidRoute, "must start with"},
		{"empty segment", []Route{{Name: "r", Path: "/a//b"}}, ErrInvalidRoute, "empty segment"},
		{"partial param", []Route{{Name: "r", Path: "/a/x{id}"}}, ErrInvalidRoute, "whole segment"},
		{"param with suffix", []Route{{Name: "r", Path: "/a/{id}.json"}}, ErrInvalidRoute, "whole segment"},
		{"bad name", []Route{{Name: "r", Path: "/a/{1d}"}}, ErrInvalidRoute, "parameter name"},
		{"empty name", []Route{{Name: "r", Path: "/a/{}"}}, ErrInvalidRoute, "parameter name"},
		{"duplicate name", []Route{{Name: "r", Path: "/{a}/{a}"}}, ErrInvalidRoute, "twice"},
		{"catch-all not last", []Route{{Name: "r", Path: "/{a...}/b"}}, ErrInvalidRoute, "last segment"},
		{"too many params", []Route{{Name: "r", Path: "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"}}, ErrInvalidRoute, "more than 8"},
		{"dot segment", []Route{{Name: "r", Path: "/a/../b"}}, ErrInvalidRoute, "canonical path"},
		{"semicolon", []Route{{Name: "r", Path: "/a;b"}}, ErrInvalidRoute, "canonical path"},
		{"query", []Route{{Name: "r", Path: "/a?b"}}, ErrInvalidRoute, "path only"},
		{"control", []Route{{Name: "r", Path: "/a\nb"}}, ErrInvalidRoute, "control"},
		{"invalid UTF-8", []Route{{Name: "r", Path: "/\xff"}}, ErrInvalidRoute, "UTF-8"},
		{"bad method", []Route{{Name: "r", Path: "/", Methods: []string{"GE T"}}}, ErrInvalidRoute, "method"},
		{"bad host", []Route{{Name: "r", Path: "/", Hosts: []string{"a.*.com"}}}, ErrInvalidRoute, "wildcard"},
		{"host with port", []Route{{Name: "r", Path: "/", Hosts: []string{"a.com:80"}}}, ErrInvalidRoute, "port"},
		{"header without predicate", []Route{{Name: "r", Path: "/", Headers: []HeaderMatch{{Name: "X"}}}}, ErrInvalidRoute, "exactly one"},
		{"header with two predicates", []Route{{Name: "r", Path: "/", Headers: []HeaderMatch{{Name: "X", Equals: ptr("a"), Present: ptr(true)}}}}, ErrInvalidRoute, "exactly one"},
		{"bad header name", []Route{{Name: "r", Path: "/", Headers: []HeaderMatch{{Name: "X Y", Present: ptr(true)}}}}, ErrInvalidRoute, "header name"},
		{"duplicate", []Route{{Name: "a", Path: "/u/{id}"}, {Name: "b", Path: "/u/{uid}"}}, ErrAmbiguousRoutes, `route "a"`},
		{"duplicate methods in another order", []Route{
			{Name: "a", Path: "/u", Methods: []string{"GET", "POST"}},
			{Name: "b", Path: "/u", Methods: []string{"post", "GET", "HEAD"}}}, ErrAmbiguousRoutes, `route "a"`},
		{"duplicate headers in another order", []Route{
			{Name: "a", Path: "/u", Headers: []HeaderMatch{{Name: "X", Present: ptr(true)}, {Name: "y", Equals: ptr("1")}}},
			{Name: "b", Path: "/u", Headers: []HeaderMatch{{Name: "Y", Equals: ptr("1")}, {Name: "x", Present: ptr(true)}}}}, ErrAmbiguousRoutes, `route "a"`},
		{"duplicate in a shared host", []Route{
			{Name: "a", Path: "/u", Hosts: []string{"a.test"}},
			{Name: "b", Path: "/u", Hosts: []string{"b.test", "A.test"}}}, ErrAmbiguousRoutes, `route "a"`},
		{"duplicate catch-all", []Route{{Name: "a", Path: "/s/{x...}"}, {Name: "b", Path: "/s/{y...}"}}, ErrAmbiguousRoutes, `route "a"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.routes)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want %v mentioning %q", err, tc.is, tc.want)
			}
		})
	}
}

func TestNewAcceptsDistinctRoutes(t *testing.T) {
	t.Parallel()
	_, err := New([]Route{
		{Name: "a", Path: "/u", Methods: []string{"GET"}},
		{Name: "b", Path: "/u", Methods: []string{"POST"}},
		{Name: "c", Path: "/u"},
		{Name: "d", Path: "/u", Headers: []HeaderMatch{{Name: "X", Present: ptr(true)}}},
		{Name: "e", Path: "/u", Hosts: []string{"a.test"}},
		{Name: "f", Path: "/u/"},
		{Name: "g", Path: "/{x}"},
		{Name: "h", Path: "/{x...}"},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewTooManyMethods(t *testing.T) {
	t.Parallel()
	var routes []Route
	for i := range 60 {
		routes = append(routes, Route{Name: fmt.Sprint(i), Path: "/x", Methods: []string{fmt.Sprint("M", i)}})
	}
	if _, err := New(routes); !errors.Is(err, ErrInvalidRoute) || !strings.Contains(err.Error(), "distinct methods") {
		t.Fatalf("New error = %v", err)
	}
}

func TestRoutesReturnsCopy(t *testing.T) {
	t.Parallel()
	in := []Route{{Name: "a", Path: "/a", Headers: []HeaderMatch{{Name: "x-y", Present: ptr(true)}}}}
	rt := mustNew(t, in...)
	got := rt.Routes()
	if len(got) != 1 || got[0].Name != "a" || got[0].Headers[0].Name != "X-Y" {
		t.Fatalf("Routes() = %+v", got)
	}
	got[0].Name = "changed"
	if rt.Routes()[0].Name != "a" {
		t.Fatal("Routes() exposes the router's slice")
	}
	in[0].Path = "/changed"
	if m, res := rt.Lookup("", "GET", "/a", http.Header{"X-Y": {"1"}}, nil); res != Found || m.Pattern != "/a" {
		t.Fatal("router depends on the caller's slice")
	}
}

func TestResultString(t *testing.T) {
	t.Parallel()
	for r, want := range map[Result]string{NotFound: "not found", Found: "found", MethodNotAllowed: "method not allowed"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q", r, r.String())
		}
	}
}

// The router is shared by every request of a snapshot; Lookups, including a
// 405 whose Allow value is built on demand, must not race.
func TestLookupConcurrent(t *testing.T) {
	t.Parallel()
	rt := mustNew(t,
		Route{Name: "exact", Hosts: []string{"api.test"}, Path: "/x", Methods: []string{"GET"}},
		Route{Name: "any", Path: "/x", Methods: []string{"POST"}},
		Route{Name: "u", Path: "/u/{id}"},
	)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			var ps exchange.Params
			for range 200 {
				if m, res := rt.Lookup("api.test", "PUT", "/x", nil, &ps); res != MethodNotAllowed || m.Allow != "GET, HEAD, POST" {
					t.Errorf("Lookup = %v %q", res, m.Allow)
					return
				}
				if _, res := rt.Lookup("", "GET", "/u/1", nil, &ps); res != Found {
					t.Errorf("Lookup = %v", res)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
