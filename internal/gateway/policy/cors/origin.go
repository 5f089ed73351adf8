package cors

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// ErrBadOrigin is returned (wrapped) for an origin pattern that cannot be
// compiled.
var ErrBadOrigin = errors.New("invalid origin")

// originPattern is one allowed origin: exact, or with a wildcard first label
// matching any non-empty subdomain of suffix.
type originPattern struct {
	exact string // the whole origin when not a wildcard
	// For a wildcard: scheme "://", then "*." suffix, then ":port" if any.
	scheme, suffix, port string
}

// parsePattern compiles an origin pattern: "scheme://host[:port]" or
// "scheme://*.domain[:port]". Patterns are compared with lower-cased
// request origins, so they are lower-cased here too.
func parsePattern(s string) (originPattern, error) {
	s = strings.ToLower(s)
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" || strings.ContainsAny(rest, "/?#@ \t\r\n") {
		return originPattern{}, errorf(s, "write scheme://host[:port]")
	}
	for _, c := range scheme {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return originPattern{}, errorf(s, "invalid scheme")
		}
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return originPattern{}, errorf(s, "invalid port")
		}
		host, port = h, p
	} else if strings.Count(rest, ":") == 1 || strings.HasSuffix(rest, ":") {
		return originPattern{}, errorf(s, "invalid port")
	}
	if host == "" {
		return originPattern{}, errorf(s, "missing host")
	}
	suffix, wild := strings.CutPrefix(host, "*.")
	if strings.Contains(suffix, "*") {
		return originPattern{}, errorf(s, "a wildcard may only be the first label")
	}
	if !wild {
		return originPattern{exact: s}, nil
	}
	if suffix == "" || strings.HasPrefix(suffix, ".") || strings.HasSuffix(suffix, ".") || strings.Contains(suffix, "..") {
		return originPattern{}, errorf(s, "invalid domain after the wildcard")
	}
	return originPattern{scheme: scheme, suffix: suffix, port: port}, nil
}

func errorf(s, msg string) error {
	return errors.Join(ErrBadOrigin, errors.New(strconv.Quote(s)+": "+msg))
}

// match reports whether origin (already lower-cased) is allowed by p.
func (p *originPattern) match(origin string) bool {
	if p.exact != "" {
		return origin == p.exact
	}
	rest, ok := strings.CutPrefix(origin, p.scheme)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "://"); !ok {
		return false
	}
	host := rest
	if p.port != "" {
		if host, ok = strings.CutSuffix(rest, ":"+p.port); !ok {
			return false
		}
	} else if strings.Contains(rest, ":") {
		return false
	}
	sub, ok := strings.CutSuffix(host, "."+p.suffix)
	if !ok || sub == "" {
		return false
	}
	// The subdomain part is one or more DNS labels, nothing else.
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return sub[0] != '.' && sub[len(sub)-1] != '.' && !strings.Contains(sub, "..")
}
