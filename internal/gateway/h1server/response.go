package h1server

import (
	"bufio"
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-dev/portico/internal/httpsyntax"
)

// response is the ResponseWriter of one request. Like net/http's, it holds
// back a body of up to bufSize bytes so that a response written whole gets
// a Content-Length; a longer one, or one flushed before it ends, is sent
// chunked (HTTP/1.0: delimited by closing the connection) unless the handler
// set Content-Length.
type response struct {
	c    *conn
	req  *http.Request
	hdr  http.Header
	head *head

	status      int
	wroteHeader bool // the final status is chosen
	committed   bool // the head has been written to bw
	chunked     bool
	closeAfter  bool
	declared    int64 // Content-Length set by the handler, or -1
	written     int64
	buf         []byte // body held back until commit
	trailers    []string
	now         time.Time // when the request was read, for Date
	failed      bool      // a write to the client failed
}

// reset prepares w for the request r; its header map and body buffer (of
// bufSize, never grown) are the connection's.
func (w *response) reset(c *conn, r *http.Request, h *head, now time.Time) {
	*w = response{c: c, req: r, hdr: w.hdr, head: h, declared: -1, buf: w.buf[:0], now: now}
}

func (w *response) Header() http.Header { return w.hdr }

// SetReadDeadline and SetWriteDeadline make the connection's deadlines
// reachable, as net/http's response writer does.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.setReadDeadline(t)
	return nil
}

func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.setWriteDeadline(t)
	return nil
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response goes out at once, with the current header.
		if w.head.minor == 0 {
			return
		}
		w.writeStatusLine(code)
		w.writeHeaderFields(nil)
		w.c.bw.WriteString("\r\n")
		if err := w.c.bw.Flush(); err != nil {
			w.failed = true
		}
		return
	}
	w.wroteHeader, w.status = true, code
	if v := w.hdr["Content-Length"]; len(v) > 0 {
		if n, ok := httpsyntax.Digits(strings.TrimSpace(v[0])); ok && len(v) == 1 {
			w.declared = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
}

func (w *response) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified && w.status >= 200
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.failed {
		return 0, errClientGone
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if !w.committed {
		if len(w.buf)+len(p) <= bufSize {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.commit(false, p)
	}
	w.writeBody(p)
	if w.failed {
		return 0, errClientGone
	}
	return len(p), nil
}

var errClientGone = errors.New("h1server: write to the client failed")

// Flush sends what is buffered; the response is chunked from then on unless
// its length was declared.
func (w *response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	if err := w.c.bw.Flush(); err != nil {
		w.failed = true
	}
}

// commit writes the status line and header, and the body held back. done
// means the handler has returned, so a held-back body's length is known;
// first is the write that did not fit, for content sniffing.
func (w *response) commit(done bool, first []byte) {
	w.committed = true
	h := w.hdr
	if _, ok := h["Date"]; !ok {
		h["Date"] = httpDate(w.now)
	}
	if _, ok := h["Content-Type"]; !ok && w.bodyAllowed() {
		if sniff := w.buf; len(sniff) > 0 || len(first) > 0 {
			if len(sniff) == 0 {
				sniff = first
			}
			h["Content-Type"] = []string{http.DetectContentType(sniff)}
		}
	}
	delete(h, "Transfer-Encoding")
	if vv := h["Trailer"]; len(vv) > 0 {
		for _, v := range vv {
			for name := range strings.SplitSeq(v, ",") {
				if name = textproto.TrimString(name); name != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
				}
			}
		}
	}
	if httpsyntax.HasToken(h["Connection"], "close") || w.head.close || w.c.s.shuttingDown() {
		w.closeAfter = true
	}
	length := int64(-1) // a Content-Length to write, not in the map
	switch {
	case !w.bodyAllowed():
		delete(h, "Content-Length")
	case w.declared >= 0:
	case w.req.Method == http.MethodHead:
		if done && w.written > 0 {
			length = w.written
		}
	case done && len(w.trailers) == 0:
		length = int64(len(w.buf))
	case w.head.minor == 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	bw := w.c.bw
	w.writeStatusLine(w.status)
	w.writeHeaderFields(w.trailers)
	if length >= 0 {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), length, 10))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && !httpsyntax.HasToken(h["Connection"], "close"):
		bw.WriteString("Connection: close\r\n")
	case !w.closeAfter && w.head.minor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.buf) > 0 {
		b := w.buf
		w.buf = w.buf[:0]
		w.writeBody(b)
	}
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if w.head.minor == 0 {
		bw.WriteString("HTTP/1.0 ")
	} else {
		bw.WriteString("HTTP/1.1 ")
	}
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

// writeHeaderFields writes the header, skipping names that are not valid
// field names and the trailers announced, and turning any CR or LF in a
// value into a space, as net/http does: a handler cannot split a response.
func (w *response) writeHeaderFields(skip []string) {
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || contains(skip, k) {
			continue
		}
		writeField(w.c.bw, k, vv)
	}
}

// writeField writes the field name: vv, one line a value, unless name is
// not a valid field name.
func writeField(bw *bufio.Writer, name string, vv []string) {
	if !httpguts.ValidHeaderFieldName(name) {
		return
	}
	for _, v := range vv {
		bw.WriteString(name)
		bw.WriteString(": ")
		writeValue(bw, v)
		bw.WriteString("\r\n")
	}
}

func writeValue(bw *bufio.Writer, v string) {
	v = textproto.TrimString(v)
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (w *response) writeBody(p []byte) {
	bw := w.c.bw
	var err error
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err = bw.WriteString("\r\n")
	} else {
		_, err = bw.Write(p)
	}
	if err != nil {
		w.failed = true
	}
}

// finish completes the response after the handler returned and reports
// whether the connection can carry another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for _, name := range w.trailers {
			writeField(bw, name, w.hdr[name])
		}
		for k, vv := range w.hdr {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				writeField(bw, name, vv)
			}
		}
		bw.WriteString("\r\n")
	}
	if err := bw.Flush(); err != nil {
		w.failed = true
	}
	if w.declared >= 0 && w.written != w.declared && w.req.Method != http.MethodHead && w.bodyAllowed() {
		// The body is shorter than announced: only closing tells the client.
		return false
	}
	return !w.failed && !w.closeAfter
}

// httpDate is the Date header value, formatted once a second. The slice
// is shared by every response of that second; header values are never
// modified in place.
func httpDate(t time.Time) []string {
	now := t.Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.value
	}
	d := &date{unix: now, value: []string{time.Unix(now, 0).UTC().Format(http.TimeFormat)}}
	cachedDate.Store(d)
	return d.value
}

type date struct {
	unix  int64
	value []string
}

var cachedDate atomic.Pointer[date]
