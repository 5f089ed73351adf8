package router

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// RewriteSpec says how a route changes the path it sends upstream. At most
// one of StripPrefix, the ReplaceFrom/ReplaceTo pair and Template is set; the
// zero RewriteSpec sends the canonical path unchanged.
type RewriteSpec struct {
	// StripPrefix removes this leading path, segment by segment: "/api"
	// turns "/api/users" into "/users" and "/api" into "/", and leaves
	// "/apiv2" alone.
	StripPrefix string
	// ReplaceFrom is a leading path, matched segment by segment like
	// StripPrefix, that is replaced by ReplaceTo.
	ReplaceFrom, ReplaceTo string
	// Template is the whole upstream path with "{name}" replaced by the
	// route's parameter of that name, e.g. "/v2/users/{id}".
	Template string
}

type rewriteKind uint8

const (
	rewriteNone rewriteKind = iota
	rewriteStrip
	rewriteReplace
	rewriteTemplate
)

// tplPart is a literal of a template or, when param is set, a parameter.
type tplPart struct {
	lit   string
	param string
}

// Rewriter computes the upstream path of a route. It is immutable and safe
// for concurrent use.
type Rewriter struct {
	kind   rewriteKind
	prefix string // the prefix to strip or replace
	to     string // the replacement
	parts  []tplPart
}

// NewRewriter checks spec for a route with the given path pattern: prefixes
// and templates must be clean paths, and every parameter a template names must
// be captured by the pattern.
func NewRewriter(spec RewriteSpec, pattern string) (*Rewriter, error) {
	set := 0
	for _, on := range []bool{spec.StripPrefix != "", spec.ReplaceFrom != "" || spec.ReplaceTo != "", spec.Template != ""} {
		if on {
			set++
		}
	}
	if set > 1 {
		return nil, errors.New("at most one of strip prefix, replace prefix and template may be set")
	}
	segs, err := parsePattern(pattern)
	if err != nil {
		return nil, err
	}
	switch {
	case spec.StripPrefix != "":
		p, err := checkPrefix(spec.StripPrefix)
		if err != nil {
			return nil, fmt.Errorf("strip prefix: %w", err)
		}
		return &Rewriter{kind: rewriteStrip, prefix: p}, nil
	case spec.ReplaceFrom != "" || spec.ReplaceTo != "":
		from, err := checkPrefix(spec.ReplaceFrom)
		if err != nil {
			return nil, fmt.Errorf("replace prefix from: %w", err)
		}
		if err := checkPath(spec.ReplaceTo); err != nil {
			return nil, fmt.Errorf("replace prefix to: %w", err)
		}
		return &Rewriter{kind: rewriteReplace, prefix: from, to: spec.ReplaceTo}, nil
	case spec.Template != "":
		parts, err := parseTemplate(spec.Template, paramNames(segs))
		if err != nil {
			return nil, fmt.Errorf("template: %w", err)
		}
		return &Rewriter{kind: rewriteTemplate, parts: parts}, nil
	}
	return &Rewriter{}, nil
}

// checkPath refuses a path a canonical path could not be: one that does not
// start with "/", has dot segments, empty segments or characters that
// CanonicalPath rejects.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with \"/\"", p)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%q is not valid UTF-8", p)
	}
	if needsClean(p) {
		return fmt.Errorf("%q has an empty or dot segment", p)
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '?' || c == '#':
			return fmt.Errorf("%q contains %q", p, c)
		}
	}
	return nil
}

// checkPrefix checks a prefix and drops a trailing slash, since prefixes are
// matched segment by segment.
func checkPrefix(p string) (string, error) {
	if err := checkPath(p); err != nil {
		return "", err
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p, nil
}

// parseTemplate splits a template into literals and parameters; "{name}" and
// "{name...}" both name a parameter, which must be one of names.
func parseTemplate(t string, names []string) ([]tplPart, error) {
	var parts []tplPart
	lit := strings.Builder{}
	rest := t
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			lit.WriteString(rest)
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("%q: unmatched \"}\"", t)
		}
		lit.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: unclosed \"{\"", t)
		}
		name := strings.TrimSuffix(rest[i+1:i+j], "...")
		if !isIdentifier(name) {
			return nil, fmt.Errorf("%q: %q is not a parameter name", t, rest[i+1:i+j])
		}
		if !contains(names, name) {
			return nil, fmt.Errorf("%q: parameter %q is not captured by the route's path", t, name)
		}
		if lit.Len() > 0 {
			parts = append(parts, tplPart{lit: lit.String()})
			lit.Reset()
		}
		parts = append(parts, tplPart{param: name})
		rest = rest[i+j+1:]
	}
	if lit.Len() > 0 {
		parts = append(parts, tplPart{lit: lit.String()})
	}
	// Check the literal skeleton with each parameter standing for "x".
	var skel strings.Builder
	for _, p := range parts {
		if p.param != "" {
			skel.WriteByte('x')
		} else {
			skel.WriteString(p.lit)
		}
	}
	if err := checkPath(skel.String()); err != nil {
		return nil, fmt.Errorf("template %w", err)
	}
	return parts, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Apply returns the upstream path for the canonical path of a request and the
// parameters its route captured. The result always starts with exactly one
// "/" and has no empty or dot segments (a trailing slash aside): parameter
// values are decoded and may hold "/" (a "{name...}") or dots, so the result
// is cleaned again after substitution and can never climb above "/" or turn
// into a scheme-relative "//host" path.
func (rw *Rewriter) Apply(path string, params *exchange.Params) string {
	switch rw.kind {
	case rewriteStrip:
		if rest, ok := cutSegmentPrefix(path, rw.prefix); ok {
			path = rest
			if path == "" {
				path = "/"
			}
		}
	case rewriteReplace:
		if rest, ok := cutSegmentPrefix(path, rw.prefix); ok {
			path = rw.to + rest
		}
	case rewriteTemplate:
		return rw.expand(params)
	}
	return cleanString(path)
}

// cutSegmentPrefix removes prefix from path if it ends at a segment boundary;
// the rest is empty or starts with "/".
func cutSegmentPrefix(path, prefix string) (string, bool) {
	if prefix == "/" {
		return path, true
	}
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok || rest != "" && rest[0] != '/' {
		return path, false
	}
	return rest, true
}

func (rw *Rewriter) expand(params *exchange.Params) string {
	var stack [256]byte
	buf := stack[:0]
	for _, p := range rw.parts {
		if p.param == "" {
			buf = append(buf, p.lit...)
			continue
		}
		if params != nil {
			v, _ := params.Get(p.param)
			buf = append(buf, v...)
		}
	}
	return string(cleanInPlace(buf))
}
