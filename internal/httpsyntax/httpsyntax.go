// Package httpsyntax holds the small HTTP/1.1 grammar checks that the
// gateway's own server loop and upstream client share, so that both read a
// field the same way.
package httpsyntax

import "strings"

// Digits parses a Content-Length value: 1 to 18 decimal digits, nothing
// else (no sign, no space, no second value).
func Digits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// HasToken reports whether a comma-separated list of header values holds
// token, compared without case and around optional white space.
func HasToken(vv []string, token string) bool {
	for _, v := range vv {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(part, " \t"), token) {
				return true
			}
		}
	}
	return false
}
