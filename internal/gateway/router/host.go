package router

import (
	"fmt"
	"net/netip"
	"strings"
)

// canonicalHost returns the form of a request's Host that routes are matched
// against: lower case, without port and without a trailing dot. An IPv6
// literal keeps its brackets ("[::1]:80" becomes "[::1]"). It allocates only
// when host has upper-case letters.
func canonicalHost(host string) string {
	if host == "" {
		return host
	}
	if host[0] == '[' {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[:i], ':') < 0 {
		host = host[:i]
	}
	if n := len(host); n > 1 && host[n-1] == '.' {
		host = host[:n-1]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// parseHost checks a host of a route and returns its key: the lower-case name
// for an exact host, or the suffix after "*." for a wildcard.
func parseHost(h string) (key string, wildcard bool, err error) {
	name := strings.ToLower(h)
	if n := len(name); n > 1 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if name == "*" {
		return "", false, fmt.Errorf("host %q: leave hosts empty to match any host", h)
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name, wildcard = rest, true
	}
	if strings.HasPrefix(name, "[") && !wildcard {
		if !strings.HasSuffix(name, "]") {
			return "", false, fmt.Errorf("host %q: hosts are matched without a port", h)
		}
		if _, err := netip.ParseAddr(name[1 : len(name)-1]); err != nil {
			return "", false, fmt.Errorf("host %q: not an IPv6 address", h)
		}
		return name, false, nil
	}
	if err := checkHostName(name); err != nil {
		return "", false, fmt.Errorf("host %q: %w", h, err)
	}
	return name, wildcard, nil
}

func checkHostName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("empty label")
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case c == ':':
				return fmt.Errorf("hosts are matched without a port")
			case c == '*':
				return fmt.Errorf("a wildcard is only allowed as a leading \"*.\"")
			default:
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}
