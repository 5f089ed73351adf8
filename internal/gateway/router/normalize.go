package router

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ErrBadPath is wrapped by every error CanonicalPath returns. The wrapping
// error's text names the reason and never contains bytes of the request, so it
// is safe to send to the client in a 400 response.
var ErrBadPath = errors.New("invalid request path")

// Reasons a request target is refused. They are allocated once so that
// refusing a hostile request costs nothing.
var (
	errEmptyTarget       = badPath("empty request target")
	errAsterisk          = badPath("asterisk-form target (OPTIONS *) is not routed")
	errAbsoluteForm      = badPath("absolute-form target is not accepted; send the path and a Host header")
	errNotOrigin         = badPath("target does not start with /")
	errFragment          = badPath("fragment (#) in target")
	errBadEscape         = badPath("malformed percent-encoding")
	errEncodedSlash      = badPath("encoded slash")
	errEncodedBackslash  = badPath("encoded backslash")
	errEncodedDot        = badPath("encoded dot")
	errEncodedSemicolon  = badPath("encoded semicolon")
	errNUL               = badPath("NUL byte")
	errControl           = badPath("control character")
	errBackslash         = badPath("backslash")
	errSemicolon         = badPath("semicolon (path parameters are not accepted)")
	errInvalidUTF8       = badPath("invalid UTF-8")
	errMissingRequestURI = badPath("request has no target")
)

type pathError struct{ reason string }

func (e *pathError) Error() string { return ErrBadPath.Error() + ": " + e.reason }
func (e *pathError) Unwrap() error { return ErrBadPath }

func badPath(reason string) error { return &pathError{reason: reason} }

// CanonicalPath returns the canonical path of r: percent-decoded, with
// duplicate slashes collapsed and dot segments removed, the way url.URL.Path
// holds a path. The gateway computes it once, when the request enters; the
// router, the policies and the upstream request all use it, so no two stages
// can disagree about which resource was asked for.
//
// It works from the raw request target r.RequestURI (the request line for
// HTTP/1, :path for HTTP/2), never from r.URL.Path, which net/http has already
// decoded in its own way. A request built by a client rather than read by a
// server has no RequestURI; r.URL.RequestURI() stands in for it.
//
// Ambiguous targets are refused rather than guessed at: the error wraps
// ErrBadPath and its text says why. The query is not looked at beyond
// refusing a fragment; callers pass r.URL.RawQuery upstream unchanged.
func CanonicalPath(r *http.Request) (string, error) {
	target := r.RequestURI
	if target == "" {
		if r.URL == nil {
			return "", errMissingRequestURI
		}
		target = r.URL.RequestURI()
	}
	return canonicalTarget(target)
}

// canonicalTarget is CanonicalPath on a raw request target.
func canonicalTarget(target string) (string, error) {
	if target == "" {
		return "", errEmptyTarget
	}
	if target[0] != '/' {
		switch {
		case target == "*":
			return "", errAsterisk
		case strings.Contains(target, "://"):
			return "", errAbsoluteForm
		}
		return "", errNotOrigin
	}
	p := target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		p = target[:i]
		if strings.IndexByte(target[i:], '#') >= 0 {
			return "", errFragment
		}
	}
	slow, nonASCII := false, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			slow = true
		case c == '/':
			if i+1 < len(p) && (p[i+1] == '/' || isDotSegment(p, i+1)) {
				slow = true
			}
		case c == 0:
			return "", errNUL
		case c < 0x20 || c == 0x7f:
			return "", errControl
		case c == '\\':
			return "", errBackslash
		case c == ';':
			return "", errSemicolon
		case c == '#':
			return "", errFragment
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	if !slow {
		if nonASCII && !utf8.ValidString(p) {
			return "", errInvalidUTF8
		}
		return p, nil
	}
	return canonicalSlow(p)
}

// isDotSegment reports whether the segment of p starting at i is "." or "..".
func isDotSegment(p string, i int) bool {
	if p[i] != '.' {
		return false
	}
	if i+1 == len(p) || p[i+1] == '/' {
		return true
	}
	return p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/')
}

// canonicalSlow decodes p and cleans it. The raw bytes of p have already been
// checked; only the decoded bytes are checked here.
func canonicalSlow(p string) (string, error) {
	var stack [256]byte
	var buf []byte
	if len(p) <= len(stack) {
		buf = stack[:0]
	} else {
		buf = make([]byte, 0, len(p))
	}
	nonASCII := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", errBadEscape
			}
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			if err := checkDecoded(c); err != nil {
				return "", err
			}
		}
		if c >= utf8.RuneSelf {
			nonASCII = true
		}
		buf = append(buf, c)
	}
	if nonASCII && !utf8.Valid(buf) {
		return "", errInvalidUTF8
	}
	return string(cleanInPlace(buf)), nil
}

// checkDecoded refuses a byte that arrived percent-encoded and would change
// the meaning of the path once decoded, or that some backend would read
// differently from the gateway.
func checkDecoded(c byte) error {
	switch {
	case c == 0:
		return errNUL
	case c < 0x20 || c == 0x7f:
		return errControl
	case c == '/':
		return errEncodedSlash
	case c == '\\':
		return errEncodedBackslash
	case c == '.':
		return errEncodedDot
	case c == ';':
		return errEncodedSemicolon
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// cleanInPlace collapses duplicate slashes and removes dot segments (RFC 3986
// section 5.2.4) of b, which starts with "/". A ".." above the root stays at
// the root. A trailing slash is kept, and a final "." or ".." segment leaves
// one, as the RFC does ("/a/b/.." is "/a/"). The result is never longer than
// b, so it is written over b.
func cleanInPlace(b []byte) []byte {
	n := len(b)
	if n == 0 {
		return append(b, '/')
	}
	endsSlash, lastDot := b[n-1] == '/', false
	w := 0 // b[:w] is the output so far: "/seg/seg", without a trailing slash
	for r := 0; r < n; {
		if b[r] == '/' {
			r++
			continue
		}
		e := r
		for e < n && b[e] != '/' {
			e++
		}
		switch seg := b[r:e]; {
		case len(seg) == 1 && seg[0] == '.':
			lastDot = true
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			for w > 0 {
				w--
				if b[w] == '/' {
					break
				}
			}
			lastDot = true
		default:
			b[w] = '/'
			w += 1 + copy(b[w+1:], seg)
			lastDot = false
		}
		r = e
	}
	if w == 0 || endsSlash || lastDot {
		b[w] = '/'
		w++
	}
	return b[:w]
}

// needsClean reports whether s is not already clean: it does not start with
// "/", or it has an empty segment other than a trailing one, or a dot segment.
func needsClean(s string) bool {
	if s == "" || s[0] != '/' {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '/' && i+1 < len(s) && (s[i+1] == '/' || isDotSegment(s, i+1)) {
			return true
		}
	}
	return false
}

// cleanString is cleanInPlace on a string; it returns s itself when s is
// already clean.
func cleanString(s string) string {
	if !needsClean(s) {
		return s
	}
	b := make([]byte, 0, len(s)+1)
	if s == "" || s[0] != '/' {
		b = append(b, '/')
	}
	b = append(b, s...)
	return string(cleanInPlace(b))
}
