package h1server

import (
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-dev/portico/internal/httpsyntax"
)

// maxHeaderLines bounds the header fields of a request this server parses
// itself; a request with more goes to net/http.
const maxHeaderLines = 100

// head is a parsed request head.
type head struct {
	method, target string
	minor          int // HTTP/1.minor
	host           string
	contentLength  int64
	close          bool // the connection ends after this request
}

// parseHead parses the request head in b, which ends with the blank line,
// filling hdr (cleared first) with its fields, Host excepted, as net/http
// would. It accepts only what it can be sure to read exactly as net/http
// reads it, and as simply: an origin-form target of visible ASCII, HTTP/1.1
// or HTTP/1.0, CRLF line ends, no folded lines, exactly one valid Host for
// HTTP/1.1, at most one Content-Length of plain digits, and none of
// Transfer-Encoding, Expect, Upgrade or an upgrade in Connection. For
// anything else ok is false and the connection is handed to net/http, which
// serves it or refuses it with its own error; so this parser never decides
// that a request is bad, and a request cannot be read one way here and
// another way there.
func parseHead(b []byte, hdr http.Header) (h head, ok bool) {
	clear(hdr)
	// One string holds the whole head; the fields are slices of it.
	s := string(b)
	eol := strings.Index(s, "\r\n")
	if eol < 0 {
		return h, false
	}
	line := s[:eol]
	rest := s[eol+2:]
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 || sp1 > 20 {
		return h, false
	}
	h.method = line[:sp1]
	for i := 0; i < len(h.method); i++ {
		if !httpguts.IsTokenRune(rune(h.method[i])) {
			return h, false
		}
	}
	line = line[sp1+1:]
	sp2 := strings.IndexByte(line, ' ')
	if sp2 <= 0 {
		return h, false
	}
	h.target, line = line[:sp2], line[sp2+1:]
	switch line {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		return h, false
	}
	if h.target[0] != '/' {
		return h, false
	}
	for i := 0; i < len(h.target); i++ {
		if c := h.target[i]; c <= ' ' || c >= 0x7f {
			return h, false
		}
	}

	hosts, lengths, lines := 0, 0, 0
	var connection []string
	// One backing array holds every field's first value; a repeated field
	// appends to a copy (the slices have no spare capacity).
	values := make([]string, 0, min(strings.Count(rest, "\r\n"), maxHeaderLines))
	for {
		eol = strings.Index(rest, "\r\n")
		if eol < 0 {
			return h, false
		}
		line, rest = rest[:eol], rest[eol+2:]
		if line == "" {
			break
		}
		if lines++; lines > maxHeaderLines {
			return h, false
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return h, false
		}
		name := line[:colon]
		if !httpguts.ValidHeaderFieldName(name) {
			return h, false // also a space before the colon, or a folded line
		}
		value := strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(value) || strings.IndexByte(value, '\n') >= 0 || strings.IndexByte(value, '\r') >= 0 {
			return h, false
		}
		name = http.CanonicalHeaderKey(name)
		switch name {
		case "Host":
			hosts++
			h.host = value
			continue
		case "Content-Length":
			lengths++
			n, ok := httpsyntax.Digits(value)
			if !ok {
				return h, false
			}
			h.contentLength = n
		case "Transfer-Encoding", "Expect", "Upgrade", "Http2-Settings":
			return h, false
		case "Connection":
			connection = append(connection, value)
		}
		if vv, ok := hdr[name]; ok {
			hdr[name] = append(vv, value)
			continue
		}
		if len(values) == cap(values) {
			return h, false
		}
		values = append(values, value)
		hdr[name] = values[len(values)-1 : len(values) : len(values)]
	}
	if rest != "" || lengths > 1 || hosts > 1 || (h.minor == 1 && hosts == 0) {
		return h, false
	}
	if hosts == 1 && !httpguts.ValidHostHeader(h.host) {
		return h, false
	}
	keepAlive := false
	for _, v := range connection {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			switch {
			case strings.EqualFold(tok, "close"):
				h.close = true
			case strings.EqualFold(tok, "keep-alive"):
				keepAlive = true
			case strings.EqualFold(tok, "upgrade"):
				return h, false
			}
		}
	}
	if h.minor == 0 && !keepAlive {
		h.close = true
	}
	return h, true
}

// parseTarget fills u from an origin-form target as url.ParseRequestURI
// would. Targets of plain path characters (the usual case) are split by
// hand; anything with escapes or characters whose treatment differs
// between Path and RawPath goes through net/url.
func parseTarget(target string, u *url.URL) bool {
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte(path[i]) {
			p, err := url.ParseRequestURI(target)
			if err != nil {
				return false
			}
			*u = *p
			return true
		}
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

// plainPathByte reports a byte that url.URL.EscapedPath leaves as it is.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '/':
		return true
	}
	return false
}
