package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/gateway/router"
)

// segment is one "/"-separated part of a path pattern: a literal, a
// "{name}" parameter or a trailing "{name...}" that captures the rest.
type segment struct {
	lit   string
	param string
	rest  bool
}

func (s segment) isParam() bool { return s.param != "" }

// parsePattern checks a route path pattern with the router's own grammar and
// splits it into segments.
func parsePattern(p string) ([]segment, error) {
	rs, err := router.ParsePattern(p)
	if err != nil {
		return nil, err
	}
	segs := make([]segment, len(rs))
	for i, r := range rs {
		segs[i] = segment{lit: r.Literal, param: r.Param, rest: r.Rest}
	}
	return segs, nil
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
