package config

import (
	"github.com/portico-dev/portico/internal/gateway/router"
	"maps"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// routes checks every route; services maps service names to their paths.
func (v *validator) routes(services map[string]string) {
	seen := map[string]string{}
	serviceNames := slices.Sorted(maps.Keys(services))
	for i := range v.cfg.Routes {
		r := &v.cfg.Routes[i]
		p := joinIndex("routes", i)
		v.name("route", p, r.Name, seen)
		segs := v.match(p+".match", &r.Match)
		switch {
		case r.Service != "" && r.DirectResponse != nil:
			v.errorf(p+".service", "set either service or direct_response, not both")
		case r.Service == "" && r.DirectResponse == nil:
			v.errorf(p+".service", "missing required field: set service (a service name) or direct_response")
		case r.Service != "":
			if _, ok := services[r.Service]; !ok {
				v.errorf(p+".service", "unknown service %q%s", r.Service, suggest(r.Service, serviceNames))
			}
		default:
			v.directResponse(p+".direct_response", r.DirectResponse)
		}
		v.traffic(p, r, services, serviceNames)
		if r.Rewrite != nil {
			v.rewrite(p+".rewrite", r.Rewrite, r.Match.Path, segs)
		}
		if r.Headers != nil {
			v.headerOps(p+".headers.request", r.Headers.Request)
			v.headerOps(p+".headers.response", r.Headers.Response)
		}
	}
}

// match checks a route's match and returns its parsed path pattern (nil if
// the pattern is invalid).
func (v *validator) match(p string, m *Match) []segment {
	var segs []segment
	if m.Path == "" {
		v.errorf(p+".path", "missing required field: a path pattern such as \"/users/{id}\"")
	} else if s, err := parsePattern(m.Path); err != nil {
		v.errorf(p+".path", "%v", err)
	} else {
		segs = s
	}
	hosts := map[string]bool{}
	for i, h := range m.Hosts {
		hp := joinIndex(p+".hosts", i)
		if err := checkHost(h); err != nil {
			v.errorf(hp, "%v", err)
		} else if hosts[h] {
			v.errorf(hp, "duplicate host %q", h)
		}
		hosts[h] = true
	}
	methods := map[string]bool{}
	for i, meth := range m.Methods {
		mp := joinIndex(p+".methods", i)
		if !httpguts.ValidHeaderFieldName(meth) {
			v.errorf(mp, "invalid method %q: a method is a token such as GET or POST", meth)
		} else if methods[meth] {
			v.errorf(mp, "duplicate method %q", meth)
		}
		methods[meth] = true
	}
	for i, h := range m.Headers {
		v.headerMatch(joinIndex(p+".headers", i), h)
	}
	return segs
}

func (v *validator) headerMatch(p string, h HeaderMatch) {
	if h.Name == "" {
		v.errorf(p+".name", "missing required field: the header name")
	} else if !httpguts.ValidHeaderFieldName(h.Name) {
		v.errorf(p+".name", "%q is not a valid header name", h.Name)
	}
	n := 0
	for _, set := range []bool{h.Equals != nil, h.Present != nil, h.Regex != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		v.errorf(p, "missing predicate: set one of equals, present and regex")
	case n > 1:
		v.errorf(p, "set only one of equals, present and regex, not %d", n)
	}
	if h.Regex != "" {
		if _, err := regexp.Compile(h.Regex); err != nil {
			v.errorf(p+".regex", "invalid regular expression: %v", err)
		}
	}
}

func (v *validator) directResponse(p string, d *DirectResponse) {
	if d.Status != 0 && (d.Status < 200 || d.Status > 599) {
		v.errorf(p+".status", "status %d is outside 200-599", d.Status)
	}
	if !httpguts.ValidHeaderFieldValue(d.ContentType) {
		v.errorf(p+".content_type", "content type %q is not a valid header value", d.ContentType)
	}
}

func (v *validator) rewrite(p string, rw *Rewrite, pattern string, segs []segment) {
	n := 0
	for _, set := range []bool{rw.StripPrefix != "", rw.ReplacePrefix != nil, rw.Path != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		v.errorf(p, "set at most one of strip_prefix, replace_prefix and path")
		return
	}
	switch {
	case rw.StripPrefix != "":
		v.rewritePrefix(p+".strip_prefix", rw.StripPrefix, pattern, segs)
	case rw.ReplacePrefix != nil:
		rp := p + ".replace_prefix"
		if rw.ReplacePrefix.From == "" {
			v.errorf(rp+".from", "missing required field: the prefix to replace")
		} else {
			v.rewritePrefix(rp+".from", rw.ReplacePrefix.From, pattern, segs)
		}
		if !strings.HasPrefix(rw.ReplacePrefix.To, "/") {
			v.errorf(rp+".to", "replacement %q must start with \"/\"", rw.ReplacePrefix.To)
		}
	case rw.Path != "":
		v.rewritePath(p+".path", rw.Path, pattern, segs)
	}
}

func (v *validator) rewritePrefix(p, prefix, pattern string, segs []segment) {
	switch {
	case !strings.HasPrefix(prefix, "/"):
		v.errorf(p, "prefix %q must start with \"/\"", prefix)
	case segs != nil && !canPrefix(segs, prefix):
		v.errorf(p, "prefix %q is not a prefix of any path the route matches (%q)", prefix, pattern)
	}
}

func (v *validator) rewritePath(p, tmpl, pattern string, segs []segment) {
	if !strings.HasPrefix(tmpl, "/") {
		v.errorf(p, "path template %q must start with \"/\"", tmpl)
		return
	}
	if segs == nil {
		return // the path pattern itself is reported
	}
	// The router compiles the template; its errors are the ones to report.
	if _, err := router.NewRewriter(router.RewriteSpec{Template: tmpl}, pattern); err != nil {
		v.errorf(p, "path template %v", strings.TrimPrefix(err.Error(), "template: "))
	}
}

func (v *validator) headerOps(p string, ops HeaderOps) {
	for _, kind := range []struct {
		name string
		m    map[string]string
	}{{"add", ops.Add}, {"set", ops.Set}} {
		for _, k := range slices.Sorted(maps.Keys(kind.m)) {
			kp := joinKey(p+"."+kind.name, k)
			if !httpguts.ValidHeaderFieldName(k) {
				v.errorf(kp, "%q is not a valid header name", k)
			} else if !httpguts.ValidHeaderFieldValue(kind.m[k]) {
				v.errorf(kp, "the value of header %q contains a line break or control character", k)
			}
		}
	}
	for i, name := range ops.Remove {
		if !httpguts.ValidHeaderFieldName(name) {
			v.errorf(joinIndex(p+".remove", i), "%q is not a valid header name", name)
		}
	}
}
