package router

import (
	"errors"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b?c", "//a/./b/../c/", "/%2e%2e/", "/a%2Fb", "/%C0%AE", "/a;b", "/caf%C3%A9", "/a%23b", "*", "http://h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		out, err := canonicalTarget(target)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("error %v does not wrap ErrBadPath", err)
			}
			return
		}
		switch {
		case !strings.HasPrefix(out, "/"):
			t.Fatalf("%q: output %q does not start with /", target, out)
		case strings.Contains(out, "//"), strings.Contains(out, "/./"), strings.Contains(out, "/../"),
			strings.HasSuffix(out, "/.."), strings.HasSuffix(out, "/."):
			t.Fatalf("%q: output %q is not clean", target, out)
		case strings.ContainsAny(out, "\x00\\;"):
			t.Fatalf("%q: output %q holds a rejected byte", target, out)
		case !utf8.ValidString(out):
			t.Fatalf("%q: output %q is not valid UTF-8", target, out)
		}
		again, err := canonicalTarget((&url.URL{Path: out}).EscapedPath())
		if err != nil || again != out {
			t.Fatalf("%q: not idempotent: %q then %q, %v", target, out, again, err)
		}
	})
}

// fuzzRoute is a route of FuzzRouter with its reference parse.
type fuzzRoute struct {
	Route
	segs []patSeg
}

// naiveMatch matches path against a pattern segment by segment, the plain
// way, and returns the captured parameters and the kind of every segment (the
// specificity the tree must honour: static over param over catch-all, from
// the left).
func naiveMatch(segs []patSeg, path string) (map[string]string, []int, bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, nil, false
	}
	parts := strings.Split(path[1:], "/")
	ps := map[string]string{}
	var spec []int
	for i, s := range segs {
		switch s.kind {
		case segCatchAll:
			if len(parts) < i+1 {
				return nil, nil, false
			}
			ps[s.text] = strings.Join(parts[i:], "/")
			return ps, append(spec, 0), true
		case segParam:
			if i >= len(parts) || parts[i] == "" {
				return nil, nil, false
			}
			ps[s.text] = parts[i]
			spec = append(spec, 1)
		default:
			if i >= len(parts) || parts[i] != s.text {
				return nil, nil, false
			}
			spec = append(spec, 2)
		}
	}
	if len(parts) != len(segs) {
		return nil, nil, false
	}
	return ps, spec, true
}

func acceptsMethod(methods []string, m string) bool {
	if len(methods) == 0 {
		return true
	}
	for _, x := range methods {
		x = strings.ToUpper(x)
		if x == m || x == "GET" && m == "HEAD" {
			return true
		}
	}
	return false
}

// better reports whether route a takes precedence over b when both match.
func better(a, b *fuzzRoute, specA, specB []int) bool {
	if c := slices.Compare(specA, specB); c != 0 {
		return c > 0
	}
	if (len(a.Methods) != 0) != (len(b.Methods) != 0) {
		return len(a.Methods) != 0
	}
	return a.Value < b.Value
}

// parseFuzzRoutes reads one route per line: an optional comma-separated
// method list, a space, and the pattern.
func parseFuzzRoutes(spec string) []fuzzRoute {
	var routes []fuzzRoute
	for i, line := range strings.Split(spec, "\n") {
		if i == 16 {
			break
		}
		r := Route{Name: line, Path: line, Value: len(routes)}
		if m, p, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "/") {
			r.Methods, r.Path = strings.Split(m, ","), p
		}
		routes = append(routes, fuzzRoute{Route: r})
	}
	return routes
}

func FuzzRouter(f *testing.F) {
	f.Add("/users/me\n/users/{id}\n/users/{id}/{rest...}\n/static/{f...}", "GET", "/users/42/x/y")
	f.Add("GET /a/b/c\nPOST /a/{x}/c\n/a/{rest...}", "POST", "/a/b/c")
	f.Add("GET,PUT /u/{id}\nDELETE /u/me", "PATCH", "/u/me")
	f.Add("/\n/{x...}\n/a/", "GET", "/a/")
	f.Fuzz(func(t *testing.T, spec, method, path string) {
		routes := parseFuzzRoutes(spec)
		in := make([]Route, len(routes))
		for i := range routes {
			in[i] = routes[i].Route
		}
		rt, err := New(in)
		if err != nil {
			return
		}
		var best *fuzzRoute
		var bestSpec []int
		var bestParams map[string]string
		pathMatched := false
		allow := map[string]bool{}
		for i := range routes {
			r := &routes[i]
			r.segs, _ = parsePattern(r.Path)
			ps, sp, ok := naiveMatch(r.segs, path)
			if !ok {
				continue
			}
			pathMatched = true
			if !acceptsMethod(r.Methods, method) {
				for _, m := range r.Methods {
					allow[strings.ToUpper(m)] = true
					if strings.ToUpper(m) == "GET" {
						allow["HEAD"] = true
					}
				}
				continue
			}
			if best == nil || better(r, best, sp, bestSpec) {
				best, bestSpec, bestParams = r, sp, ps
			}
		}
		var ps exchange.Params
		m, res := rt.Lookup("", method, path, nil, &ps)
		switch {
		case best != nil:
			if res != Found || m.Value != best.Value {
				t.Fatalf("Lookup(%s %q) = %v %q, want route %q", method, path, res, m.Name, best.Name)
			}
			if ps.Len() != len(bestParams) {
				t.Fatalf("Lookup(%s %q) captured %d params, want %v", method, path, ps.Len(), bestParams)
			}
			for k, v := range bestParams {
				if got, _ := ps.Get(k); got != v {
					t.Fatalf("Lookup(%s %q) param %s = %q, want %q", method, path, k, got, v)
				}
			}
		case pathMatched:
			names := make([]string, 0, len(allow))
			for k := range allow {
				names = append(names, k)
			}
			sort.Strings(names)
			if res != MethodNotAllowed || m.Allow != strings.Join(names, ", ") {
				t.Fatalf("Lookup(%s %q) = %v %q, want 405 with %v", method, path, res, m.Allow, names)
			}
		default:
			if res != NotFound {
				t.Fatalf("Lookup(%s %q) = %v %q, want not found", method, path, res, m.Name)
			}
		}
	})
}

func FuzzRewrite(f *testing.F) {
	f.Add("/{rest}", "/evil.com/x")
	f.Add("/files/{rest}", "../../etc/passwd")
	f.Add("/a/{rest}/b", "./../..")
	f.Fuzz(func(t *testing.T, template, value string) {
		rw, err := NewRewriter(RewriteSpec{Template: template}, "/{rest...}")
		if err != nil {
			return
		}
		var ps exchange.Params
		ps.Add("rest", value)
		out := rw.Apply("/"+value, &ps)
		if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || needsClean(out) {
			t.Fatalf("Apply(%q with %q) = %q", template, value, out)
		}
	})
}
