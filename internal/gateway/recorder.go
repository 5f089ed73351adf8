package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// deadliner is implemented by net/http's HTTP/1 and HTTP/2 response writers.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// recorder wraps the client's ResponseWriter to count the status and bytes of
// the response, and to turn the listener's read and write timeouts into idle
// timeouts: each read of the body and each write of the response gets the full
// timeout, so a slow client cannot hold a connection forever but a long stream
// is never cut while it makes progress.
//
// It implements Unwrap so http.ResponseController (used by the proxy for
// flushing and WebSocket hijacking) reaches the real writer.
type recorder struct {
	w      http.ResponseWriter
	dl     deadliner
	status int
	bytes  int64

	writeTimeout time.Duration
	lastWrite    time.Time

	// body is allocated per request, not pooled: the upstream transport may
	// still read it after the handler has returned.
	body *body
}

// reset prepares rec for the request r accepted at start. net/http set the
// connection's write deadline to the write timeout from just before start
// (http.Server.WriteTimeout is the listener's), so lastWrite begins at start
// and a response written within half the timeout moves no deadline.
func (rec *recorder) reset(w http.ResponseWriter, r *http.Request, start time.Time, readTimeout, writeTimeout time.Duration) {
	*rec = recorder{w: w, writeTimeout: writeTimeout, lastWrite: start}
	rec.dl, _ = w.(deadliner)
	if rec.dl == nil {
		readTimeout, rec.writeTimeout = 0, 0
	}
	if r.Body != nil && r.Body != http.NoBody {
		rec.body = &body{rc: r.Body, dl: rec.dl, timeout: readTimeout}
		r.Body = rec.body
	}
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 || (rec.status >= 100 && rec.status < 200 && code != http.StatusSwitchingProtocols) {
		rec.status = code
	}
	rec.extendWrite()
	rec.w.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 || rec.status < 200 && rec.status != http.StatusSwitchingProtocols {
		rec.status = http.StatusOK
	}
	rec.extendWrite()
	n, err := rec.w.Write(p)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) Flush() {
	rec.extendWrite()
	if f, ok := rec.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rec.w).Hijack()
}

// Unwrap returns the underlying ResponseWriter for http.ResponseController.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// extendWrite moves the write deadline forward when less than half of the
// timeout is left, so every write has at least half the timeout to complete
// while costing one clock read per write.
func (rec *recorder) extendWrite() {
	if rec.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(rec.lastWrite) < rec.writeTimeout/2 {
		return
	}
	rec.lastWrite = now
	_ = rec.dl.SetWriteDeadline(now.Add(rec.writeTimeout))
}

// body counts request body bytes and extends the read deadline as the client
// makes progress.
type body struct {
	rc       io.ReadCloser
	dl       deadliner
	timeout  time.Duration
	lastRead time.Time
	// n is read after the handler returns while the transport may still be
	// writing the body upstream, so it is atomic.
	n atomic.Int64
	// done is set when the handler has returned: the response writer behind
	// dl is finished then and must not be touched by a late Read. mu orders
	// finish against a deadline change in progress; it is taken only when
	// the deadline moves, at most once per half timeout.
	mu   sync.Mutex
	done bool
}

// finish marks the request as answered. It is nil-safe.
func (b *body) finish() {
	if b != nil {
		b.mu.Lock()
		b.done = true
		b.mu.Unlock()
	}
}

func (b *body) Read(p []byte) (int, error) {
	if b.timeout > 0 {
		if now := time.Now(); now.Sub(b.lastRead) >= b.timeout/2 {
			b.lastRead = now
			b.mu.Lock()
			if !b.done {
				_ = b.dl.SetReadDeadline(now.Add(b.timeout))
			}
			b.mu.Unlock()
		}
	}
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
