package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-dev/portico/internal/httpsyntax"
)

// maxResponseHeaderBytes bounds the status line and header fields of one
// upstream response (and, separately, its trailer fields).
const maxResponseHeaderBytes = 64 << 10

// Errors of the upstream HTTP/1.1 client. The proxy answers them with 502.
var (
	// ErrMalformedResponse means an endpoint's response could not be parsed
	// or was ambiguous about where its body ends (both Content-Length and
	// Transfer-Encoding, conflicting lengths, bare LF line ends, folded
	// header lines): relaying it could let the endpoint smuggle a response.
	ErrMalformedResponse = errors.New("malformed upstream response")
	// ErrResponseHeaderTooLarge means an endpoint's response header (or
	// trailer) exceeded 64 KiB.
	ErrResponseHeaderTooLarge = errors.New("upstream response header too large")
)

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformedResponse, what) }

// readHeaderBlock reads lines up to and including the empty line that ends a
// header block into buf, which it returns. Every line must end in CRLF. It
// reports how many bytes were read from br, so a caller can tell a connection
// that closed before sending anything.
func readHeaderBlock(br *bufio.Reader, buf []byte) ([]byte, int, error) {
	buf = buf[:0]
	read := 0
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		read += len(frag)
		if len(buf)+len(frag) > maxResponseHeaderBytes {
			return buf, read, ErrResponseHeaderTooLarge
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return buf, read, err
		}
		line := buf[lineStart:]
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return buf, read, malformed("line not ended by CRLF")
		}
		if len(line) == 2 {
			return buf, read, nil
		}
		lineStart = len(buf)
	}
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]" (without CRLF).
func parseStatusLine(line string, res *http.Response) error {
	if len(line) < len("HTTP/1.1 200") || !strings.HasPrefix(line, "HTTP/1.") || line[8] != ' ' {
		return malformed("bad status line")
	}
	switch line[7] {
	case '0':
		res.Proto, res.ProtoMinor = "HTTP/1.0", 0
	case '1':
		res.Proto, res.ProtoMinor = "HTTP/1.1", 1
	default:
		return malformed("unsupported protocol version")
	}
	res.ProtoMajor = 1
	code := 0
	for i := 9; i < 12; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			return malformed("bad status code")
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return malformed("bad status code")
	}
	if len(line) > 12 {
		if line[12] != ' ' || !httpguts.ValidHeaderFieldValue(line[13:]) {
			return malformed("bad reason phrase")
		}
	}
	res.StatusCode = code
	res.Status = line[9:]
	return nil
}

// parseHeaderBlock parses the header fields of block, which holds CRLF-ended
// lines after the first and ends with an empty line. Names must be tokens
// with no space before the colon, values must hold no control characters,
// and obsolete line folding is refused. Names and values share block's
// memory.
func parseHeaderBlock(block string) (http.Header, error) {
	return parseHeaderInto(nil, block)
}

// parseHeaderInto is parseHeaderBlock filling hdr, which it clears first;
// if hdr is nil it makes one.
func parseHeaderInto(hdr http.Header, block string) (http.Header, error) {
	n := strings.Count(block, "\n") - 1
	if hdr == nil {
		hdr = make(http.Header, max(n, 0))
	} else {
		clear(hdr)
	}
	if n <= 0 {
		return hdr, nil
	}
	values := make([]string, n)
	for len(block) > 2 {
		i := strings.IndexByte(block, '\n')
		if i < 1 || block[i-1] != '\r' {
			return nil, malformed("line not ended by CRLF")
		}
		line := block[:i-1]
		block = block[i+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, malformed("folded header line")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, malformed("header line without a name")
		}
		name, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, malformed("invalid header name")
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, malformed("invalid header value")
		}
		name = http.CanonicalHeaderKey(name)
		if vv, ok := hdr[name]; ok {
			hdr[name] = append(vv, value)
			continue
		}
		values[0] = value
		hdr[name] = values[:1:1]
		values = values[1:]
	}
	return hdr, nil
}

// bodyFraming is how a response's body is delimited.
type bodyFraming struct {
	length  int64 // -1 when unknown
	chunked bool
}

// responseFraming decides how the body of res ends, refusing any response
// that is ambiguous about it. It removes Transfer-Encoding from the header,
// as net/http does, and records it in res.TransferEncoding.
func responseFraming(res *http.Response, method string) (bodyFraming, error) {
	f := bodyFraming{length: -1}
	cl, haveCL, err := contentLength(res.Header["Content-Length"])
	if err != nil {
		return f, err
	}
	te, haveTE := res.Header["Transfer-Encoding"]
	if haveTE {
		if haveCL {
			return f, malformed("both Content-Length and Transfer-Encoding")
		}
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return f, malformed("unsupported Transfer-Encoding")
		}
		delete(res.Header, "Transfer-Encoding")
	}
	noBody := method == http.MethodHead || res.StatusCode == http.StatusNoContent ||
		res.StatusCode == http.StatusNotModified || res.StatusCode < 200
	switch {
	case noBody:
		f.length = 0
		res.ContentLength = 0
		if method == http.MethodHead && haveCL {
			res.ContentLength = cl
		} else if method == http.MethodHead {
			res.ContentLength = -1
		}
	case haveTE:
		f.chunked = true
		res.TransferEncoding = chunkedEncoding
		res.ContentLength = -1
	case haveCL:
		f.length = cl
		res.ContentLength = cl
	default:
		res.ContentLength = -1
	}
	return f, nil
}

var chunkedEncoding = []string{"chunked"}

// contentLength parses Content-Length field values. Repeated values must all
// be equal (RFC 9110, 8.6); any other repetition, sign or non-digit is
// refused.
func contentLength(vv []string) (int64, bool, error) {
	if len(vv) == 0 {
		return 0, false, nil
	}
	n := int64(-1)
	for _, v := range vv {
		for part := range strings.SplitSeq(v, ",") {
			m, ok := httpsyntax.Digits(strings.Trim(part, " \t"))
			if !ok {
				return 0, true, malformed("invalid Content-Length")
			}
			if n >= 0 && m != n {
				return 0, true, malformed("conflicting Content-Length values")
			}
			n = m
		}
	}
	return n, true, nil
}

// announcedTrailers returns the trailer fields res's Trailer header names,
// with nil values to be filled when the body ends, and removes the header as
// net/http does.
func announcedTrailers(res *http.Response) (http.Header, error) {
	vv, ok := res.Header["Trailer"]
	if !ok {
		return nil, nil
	}
	delete(res.Header, "Trailer")
	var tr http.Header
	for _, v := range vv {
		for name := range strings.SplitSeq(v, ",") {
			name = http.CanonicalHeaderKey(strings.Trim(name, " \t"))
			switch name {
			case "":
				continue
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, malformed("forbidden trailer field " + name)
			}
			if tr == nil {
				tr = make(http.Header, len(vv))
			}
			tr[name] = nil
		}
	}
	return tr, nil
}
