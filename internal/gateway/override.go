package gateway

import (
	"net/http"
	"strings"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/router"
	"github.com/portico-dev/portico/internal/problem"
)

// overrideHeaders name the method a client tunnels through POST (or
// another method). They are honoured only on routes with method_override;
// elsewhere the proxy removes them from the upstream request.
var overrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// methodOverride applies a method override header on a route that honours
// them (rt). It routes the request again with the effective method, sets
// r.Method to it so every policy and the upstream see the same method, and
// returns the route that answers it, whose own auth and authorize apply.
// It returns nil after answering the request itself: 400 for conflicting or
// invalid override values, 404 or 405 when nothing answers the effective
// method.
func (s *Server) methodOverride(snap *snapshot, w http.ResponseWriter, r *http.Request, x *exchange.Exchange, rt *compiledRoute) *compiledRoute {
	eff, ok := effectiveMethod(r.Header)
	if !ok {
		x.Err = errBadOverride
		problem.Write(w, problem.Details{Status: http.StatusBadRequest, Detail: "invalid method override: send one method override header with one method", RequestID: x.ID})
		return nil
	}
	if eff == "" || eff == r.Method {
		x.MethodOverride = true
		return rt
	}
	x.Params.Reset()
	m, res := snap.router.Lookup(r.Host, eff, x.Path, r.Header, &x.Params)
	switch res {
	case router.NotFound:
		problem.Write(w, problem.Details{Status: http.StatusNotFound, Detail: "no route matches this request", RequestID: x.ID})
		return nil
	case router.MethodNotAllowed:
		w.Header()["Allow"] = []string{m.Allow}
		problem.Write(w, problem.Details{Status: http.StatusMethodNotAllowed, Detail: "method " + eff + " is not allowed here", RequestID: x.ID})
		return nil
	}
	r.Method = eff
	next := &snap.routes[m.Value]
	x.MethodOverride = next.cfg.MethodOverride
	return next
}

// errBadOverride is recorded for requests refused for their override
// headers.
var errBadOverride = &overrideError{}

type overrideError struct{}

func (*overrideError) Error() string      { return "invalid method override" }
func (*overrideError) ErrorClass() string { return "bad_method_override" }

// effectiveMethod returns the method the override headers name, "" when
// there are none, and false when they disagree or name something that is
// not a method a client may tunnel. Header names are compared as an
// upstream that ignores case and takes "_" as "-" would, so that no
// spelling the upstream might honour escapes the check.
func effectiveMethod(h http.Header) (string, bool) {
	eff := ""
	for name, vals := range h {
		if !isOverrideHeader(name) {
			continue
		}
		for _, v := range vals {
			m := strings.ToUpper(strings.TrimSpace(v))
			if !validOverride(m) || eff != "" && m != eff {
				return "", false
			}
			eff = m
		}
	}
	return eff, true
}

func isOverrideHeader(name string) bool {
	for _, o := range overrideHeaders {
		if exchange.FoldedEqual(name, o) {
			return true
		}
	}
	return false
}

func validOverride(m string) bool {
	if m == "" || len(m) > 16 || m == http.MethodConnect || m == http.MethodTrace {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
