package router

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func BenchmarkCanonicalPath(b *testing.B) {
	for _, bc := range []struct{ name, target string }{
		{"fast", "/api/v1/users/42/orders?limit=10"},
		{"slow", "/api/v1//users/./42/caf%C3%A9/../orders?limit=10"},
		{"reject", "/api/%2e%2e/admin"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = canonicalTarget(bc.target)
			}
		})
	}
}

type benchReq struct{ host, method, path string }

// benchRoutes returns n routes shaped like a real gateway's: per service a
// collection, an item, a nested item, an action and a catch-all, spread over
// a few exact, wildcard and any-host groups.
func benchRoutes(n int) ([]Route, []benchReq) {
	hosts := [][]string{nil, {"api.example.com"}, {"*.example.com"}, {"admin.example.com"}, nil}
	var routes []Route
	var reqs []benchReq
	for svc := 0; len(routes) < n; svc++ {
		h := hosts[svc%len(hosts)]
		p := fmt.Sprintf("/svc%d/v1", svc)
		add := func(path string, methods ...string) {
			if len(routes) < n {
				routes = append(routes, Route{Name: fmt.Sprintf("r%d", len(routes)), Hosts: h, Path: p + path, Methods: methods, Value: len(routes)})
			}
		}
		add("/items", "GET", "POST")
		add("/items/{id}", "GET", "PUT", "DELETE")
		add("/items/{id}/parts/{part}", "GET")
		add("/items/{id}/actions/cancel", "POST")
		add("/files/{path...}")
		host := "gw.internal"
		switch {
		case h == nil:
		case h[0] == "*.example.com":
			host = "shop.example.com"
		default:
			host = h[0]
		}
		reqs = append(reqs,
			benchReq{host, "GET", p + "/items"},
			benchReq{host + ":443", "GET", p + "/items/12345"},
			benchReq{host, "GET", p + "/items/12345/parts/7"},
			benchReq{host, "POST", p + "/items/12345/actions/cancel"},
			benchReq{host, "GET", p + "/files/img/logo.png"},
		)
	}
	return routes, reqs
}

// benchLookup looks up, in turn, at most limit of the requests that hit the
// routes of a router of n routes.
func benchLookup(b *testing.B, n, limit int) {
	routes, reqs := benchRoutes(n)
	rt, err := New(routes)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range reqs {
		if _, res := rt.Lookup(r.host, r.method, r.path, nil, nil); res != Found && len(reqs) <= n {
			b.Fatalf("%v: %s %s %s", res, r.host, r.method, r.path)
		}
	}
	if len(reqs) > limit {
		step := len(reqs) / limit
		sample := reqs[:0:0]
		for i := 0; i < len(reqs) && len(sample) < limit; i += step {
			sample = append(sample, reqs[i])
		}
		reqs = sample
	}
	h := http.Header{}
	var ps exchange.Params
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &reqs[i%len(reqs)]
		rt.Lookup(r.host, r.method, r.path, h, &ps)
		i++
	}
}

// BenchmarkLookup looks up a mix of static, parameter and catch-all routes
// on a router of 1,000 routes over several host groups.
func BenchmarkLookup(b *testing.B) { benchLookup(b, 1000, 1000) }

// BenchmarkLookupScale shows that lookup cost does not grow with the number
// of routes. The "hot" runs look up the same 10 requests whatever the size,
// which isolates the algorithm; the "spread" runs spread 500 requests over the
// whole router, so a large router also pays for CPU cache misses.
func BenchmarkLookupScale(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("hot/%d", n), func(b *testing.B) { benchLookup(b, n, 10) })
	}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("spread/%d", n), func(b *testing.B) { benchLookup(b, n, 500) })
	}
}

func BenchmarkLookupMethodNotAllowed(b *testing.B) {
	routes, _ := benchRoutes(1000)
	rt, _ := New(routes)
	b.ReportAllocs()
	for b.Loop() {
		rt.Lookup("", "PATCH", "/svc0/v1/items", nil, nil)
	}
}

func BenchmarkRewrite(b *testing.B) {
	var ps exchange.Params
	ps.Add("id", "12345")
	ps.Add("rest", "img/logo.png")
	for _, bc := range []struct {
		name    string
		spec    RewriteSpec
		pattern string
		path    string
	}{
		{"strip", RewriteSpec{StripPrefix: "/api"}, "/api/{rest...}", "/api/users/12345/orders"},
		{"replace", RewriteSpec{ReplaceFrom: "/api", ReplaceTo: "/internal/v2"}, "/api/{rest...}", "/api/users/12345/orders"},
		{"template", RewriteSpec{Template: "/v2/users/{id}/files/{rest}"}, "/users/{id}/{rest...}", "/users/12345/img/logo.png"},
	} {
		rw, err := NewRewriter(bc.spec, bc.pattern)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rw.Apply(bc.path, &ps)
			}
		})
	}
}
