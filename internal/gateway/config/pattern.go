package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// maxPathParams is the most parameters one path pattern may capture.
const maxPathParams = 8

// segment is one "/"-separated part of a path pattern: a literal, a
// "{name}" parameter or a trailing "{name...}" that captures the rest.
type segment struct {
	lit   string
	param string
	rest  bool
}

func (s segment) isParam() bool { return s.param != "" }

// parsePattern checks a route path pattern and splits it into segments.
func parsePattern(p string) ([]segment, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path pattern %q must start with \"/\"", p)
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("path pattern %q is not valid UTF-8", p)
	}
	parts := strings.Split(p[1:], "/")
	segs := make([]segment, 0, len(parts))
	seen := map[string]bool{}
	for i, part := range parts {
		last := i == len(parts)-1
		if part == "" && !last {
			return nil, fmt.Errorf("path pattern %q has an empty segment (\"//\"), which a canonical path never has", p)
		}
		if !strings.ContainsAny(part, "{}") {
			if err := checkLiteralSegment(part); err != nil {
				return nil, fmt.Errorf("path pattern %q: %w", p, err)
			}
			segs = append(segs, segment{lit: part})
			continue
		}
		seg, err := parseParam(part, last)
		if err != nil {
			return nil, fmt.Errorf("path pattern %q: %w", p, err)
		}
		if seen[seg.param] {
			return nil, fmt.Errorf("path pattern %q: parameter %q appears twice", p, seg.param)
		}
		seen[seg.param] = true
		if len(seen) > maxPathParams {
			return nil, fmt.Errorf("path pattern %q has more than %d parameters", p, maxPathParams)
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

func parseParam(part string, last bool) (segment, error) {
	if len(part) < 2 || part[0] != '{' || part[len(part)-1] != '}' || strings.ContainsAny(part[1:len(part)-1], "{}") {
		return segment{}, fmt.Errorf("segment %q: a parameter must be a whole segment such as \"{id}\"", part)
	}
	name, rest := strings.CutSuffix(part[1:len(part)-1], "...")
	if !isIdentifier(name) {
		return segment{}, fmt.Errorf("segment %q: parameter names are letters, digits and _, not starting with a digit", part)
	}
	if rest && !last {
		return segment{}, fmt.Errorf("segment %q: a \"{name...}\" parameter must be the last segment", part)
	}
	return segment{param: name, rest: rest}, nil
}

func checkLiteralSegment(s string) error {
	if s == "." || s == ".." {
		return fmt.Errorf("segment %q never appears in a canonical path", s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '?' || r == '#' || r == '\\' {
			return fmt.Errorf("segment %q contains %q, which a canonical path never has", s, r)
		}
	}
	return nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// shape is the pattern with parameter names left out, so "/u/{id}" and
// "/u/{x}" have the same shape.
func shape(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		switch {
		case s.rest:
			b.WriteString("{...}")
		case s.isParam():
			b.WriteString("{}")
		default:
			b.WriteString(s.lit)
		}
	}
	return b.String()
}

// canPrefix reports whether prefix is a prefix of at least one path that
// segs matches.
func canPrefix(segs []segment, prefix string) bool {
	if !strings.HasPrefix(prefix, "/") {
		return false
	}
	parts := strings.Split(prefix[1:], "/")
	for i, part := range parts {
		if i >= len(segs) {
			return false
		}
		s := segs[i]
		last := i == len(parts)-1
		switch {
		case s.rest:
			return true
		case s.isParam():
			if part == "" && !last {
				return false
			}
		case last:
			if !strings.HasPrefix(s.lit, part) {
				return false
			}
		case part != s.lit:
			return false
		}
	}
	return true
}

// templateParams returns the parameter names a rewrite path template
// refers to, as "{name}" or "{name...}".
func templateParams(t string) ([]string, error) {
	var names []string
	for rest := t; ; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			return names, nil
		}
		if rest[open] == '}' {
			return nil, errors.New("unbalanced \"}\"")
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return nil, errors.New("unbalanced \"{\"")
		}
		name := strings.TrimSuffix(rest[open+1:open+1+end], "...")
		if !isIdentifier(name) {
			return nil, fmt.Errorf("invalid parameter {%s}", rest[open+1:open+1+end])
		}
		names = append(names, name)
		rest = rest[open+2+end:]
	}
}

// checkHost validates a route host: an exact name, an IP address or a
// "*.suffix" wildcard, already in lower case without a trailing dot.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if h == "*" {
		return errors.New("host \"*\" is not allowed; leave hosts empty to match any host")
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return fmt.Errorf("host %q: a wildcard is allowed only as a leading \"*.\"", h)
	}
	if strings.Contains(name, ":") {
		return fmt.Errorf("host %q must not include a port; hosts are compared without one", h)
	}
	if len(name) > 253 {
		return fmt.Errorf("host %q is longer than 253 characters", h)
	}
	for _, label := range strings.Split(name, ".") {
		if err := checkLabel(label); err != nil {
			return fmt.Errorf("host %q: %w", h, err)
		}
	}
	return nil
}

func checkLabel(l string) error {
	if l == "" || len(l) > 63 {
		return fmt.Errorf("label %q must be 1 to 63 characters", l)
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q must not start or end with \"-\"", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			continue
		}
		if c >= utf8.RuneSelf {
			return fmt.Errorf("label %q is not ASCII; write internationalized names in their \"xn--\" form", l)
		}
		return fmt.Errorf("label %q contains %q", l, c)
	}
	return nil
}

// isName reports whether s is a valid listener, service or route name.
func isName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '-' || c == '_' || c == '.') {
			continue
		}
		return false
	}
	return true
}
