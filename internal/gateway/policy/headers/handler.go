package headers

import (
	"bufio"
	"net"
	"net/http"
)

// NewRequest returns a handler that applies ops to the request headers and
// calls next. The request is changed in place: it is the request the proxy
// forwards. If ops is empty, NewRequest returns next unchanged.
func NewRequest(next http.Handler, ops *Ops) http.Handler {
	if ops.Empty() {
		return next
	}
	return &requestHandler{next: next, ops: ops}
}

type requestHandler struct {
	next http.Handler
	ops  *Ops
}

func (h *requestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	h.ops.Apply(r.Header)
	if c := r.Header["Connection"]; len(c) > 0 {
		// The proxy deletes every header the client lists in Connection; a
		// client must not be able to strip what a rule sets that way.
		r.Header["Connection"] = h.ops.unlist(c)
	}
	h.next.ServeHTTP(w, r)
}

// NewResponse returns a handler that applies ops to the response headers
// when next writes its final status (or its first body byte, or flushes,
// without writing a status, or returns without writing anything). Informational 1xx responses other than 101 are
// passed through untouched; trailers are not changed. If ops is empty,
// NewResponse returns next unchanged.
func NewResponse(next http.Handler, ops *Ops) http.Handler {
	if ops.Empty() {
		return next
	}
	return &responseHandler{next: next, ops: ops}
}

type responseHandler struct {
	next http.Handler
	ops  *Ops
}

func (h *responseHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{w: w, ops: h.ops}
	h.next.ServeHTTP(rw, r)
	// A handler that writes nothing gets its header written by the server
	// after it returns; apply the rules to that response too.
	rw.apply()
}

// responseWriter applies the response ops once, just before the header is
// written. It implements Flush and Hijack by delegation, and Unwrap so that
// http.ResponseController reaches the other optional methods (deadlines,
// full duplex) of the writer underneath.
type responseWriter struct {
	w    http.ResponseWriter
	ops  *Ops
	done bool
}

var (
	_ http.Flusher  = (*responseWriter)(nil)
	_ http.Hijacker = (*responseWriter)(nil)
)

func (rw *responseWriter) apply() {
	if !rw.done {
		rw.done = true
		rw.ops.Apply(rw.w.Header())
	}
}

func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

func (rw *responseWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		rw.apply()
	}
	rw.w.WriteHeader(code)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	rw.apply()
	return rw.w.Write(p)
}

// Flush sends buffered data to the client, writing the header first if
// needed.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError is Flush reporting the error of the writer underneath, for
// http.ResponseController.
func (rw *responseWriter) FlushError() error {
	rw.apply()
	return http.NewResponseController(rw.w).Flush()
}

// Hijack hands the connection over to the caller; no header is written by
// the server after it.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rw.w).Hijack()
	if err == nil {
		rw.done = true
	}
	return conn, brw, err
}

// Unwrap returns the underlying ResponseWriter for http.ResponseController.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }
