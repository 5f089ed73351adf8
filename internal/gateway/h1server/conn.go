package h1server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// bufSize is the size of a connection's read and write buffers; a
	// request head that does not fit in the read buffer goes to net/http.
	bufSize = 4 << 10
	// maxDiscard is the most of an unread request body drained after the
	// handler to keep the connection, as net/http does.
	maxDiscard = 256 << 10
)

// Connection states, for Shutdown.
const (
	stateIdle int32 = iota
	stateActive
)

var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	state  atomic.Int32

	// The memory of the current request, reused for the next.
	hdr  http.Header
	url  url.URL
	res  response
	body body

	// rd is what br reads from: the connection, after a byte a watcher
	// read ahead of the handler (see reqCtx).
	rd connReader
	// rdl and wdl are the read and write deadlines last set on nc.
	rdl, wdl time.Time
	// bodyLeft is set while the current request's body has unread bytes;
	// a context's Done and Err, which may run on other goroutines, read it.
	bodyLeft atomic.Bool
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, hdr: make(http.Header, 16), remote: nc.RemoteAddr().String()}
	c.rd.nc = nc
	c.br = bufio.NewReaderSize(&c.rd, bufSize)
	c.bw = bufio.NewWriterSize(nc, bufSize)
	c.res.hdr = make(http.Header, 16)
	c.res.buf = make([]byte, 0, bufSize)
	return c
}

// serve reads and answers requests until the connection ends or is handed
// over.
func (c *conn) serve() {
	handedOff := false
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.Logger.Error("handler panicked", "remote", c.remote, "panic", v, "stack", string(buf))
			}
		}
		c.s.untrack(c)
		if !handedOff {
			_ = c.nc.Close()
		}
	}()
	fb := c.s.Fallback
	for first := true; ; first = false {
		c.state.Store(stateIdle)
		if c.s.shuttingDown() {
			return
		}
		idle := fb.IdleTimeout
		if idle <= 0 {
			idle = fb.ReadTimeout
		}
		if first && fb.ReadHeaderTimeout > 0 {
			idle = fb.ReadHeaderTimeout
		}
		if idle > 0 {
			c.readBy(time.Now(), idle)
		}
		n, ok, err := c.readHead(first)
		if err != nil {
			return // closed, timed out or broken before a whole head
		}
		if !ok {
			handedOff = c.handOff()
			return
		}
		h, ok := parseHead(peek(c.br, n), c.hdr)
		if !ok || !parseTarget(h.target, &c.url) {
			handedOff = c.handOff()
			return
		}
		_, _ = c.br.Discard(n)
		if !c.serveRequest(&h) {
			return
		}
	}
}

func peek(br *bufio.Reader, n int) []byte {
	b, _ := br.Peek(n)
	return b
}

// readHead waits for a request head to be buffered whole and returns its
// length. ok is false when it cannot be (too large for the buffer); err
// is set when the connection ended or timed out first.
func (c *conn) readHead(first bool) (n int, ok bool, err error) {
	if _, err := c.br.Peek(1); err != nil {
		return 0, false, err
	}
	c.state.Store(stateActive)
	timed := false
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return i + 4, true, nil
		}
		if len(buf) >= bufSize {
			return 0, false, nil
		}
		if !timed && !first {
			// The head is arriving in pieces: it gets the header timeout
			// from its first byte, as with net/http.
			timed = true
			if d := c.s.Fallback.ReadHeaderTimeout; d > 0 {
				c.setReadDeadline(time.Now().Add(d))
			}
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, false, nil
			}
			return 0, false, err
		}
	}
}

// Deadlines. A connection keeps the read and write deadlines it last set;
// readBy and writeBy move one only when it is more than an eighth of its
// timeout early, and never later than the timeout: a connection busy with
// requests changes its deadlines about once every eighth of a timeout
// instead of twice a request, and an idle client is cut no later than its
// timeout and no sooner than seven eighths of it.

// readBy makes the read deadline about now+d.
func (c *conn) readBy(now time.Time, d time.Duration) {
	if want := now.Add(d); c.rdl.After(now) && !c.rdl.After(want) && want.Sub(c.rdl) <= d/8 {
		return
	}
	c.setReadDeadline(now.Add(d))
}

// writeBy makes the write deadline about now+d.
func (c *conn) writeBy(now time.Time, d time.Duration) {
	if want := now.Add(d); c.wdl.After(now) && !c.wdl.After(want) && want.Sub(c.wdl) <= d/8 {
		return
	}
	c.setWriteDeadline(now.Add(d))
}

// setReadDeadline and setWriteDeadline are called on the connection's
// goroutine, or by a watcher's start while the handler runs, when nothing
// else sets deadlines.
func (c *conn) setReadDeadline(t time.Time) {
	c.rdl = t
	_ = c.nc.SetReadDeadline(t)
}

func (c *conn) setWriteDeadline(t time.Time) {
	c.wdl = t
	_ = c.nc.SetWriteDeadline(t)
}

// handOff passes the connection, with what was read of it, to Fallback.
func (c *conn) handOff() bool {
	c.s.untrack(c)
	// A byte a watcher read ahead is in br by now: readHead read it.
	buffered, _ := c.br.Peek(c.br.Buffered())
	rc := &replayConn{Conn: c.nc, buf: append([]byte(nil), buffered...)}
	return c.s.handoff.give(rc)
}

// serveRequest runs the handler for the parsed head h and writes the
// response. It reports whether the connection goes on.
func (c *conn) serveRequest(h *head) bool {
	fb := c.s.Fallback
	now := time.Now()
	if d := fb.WriteTimeout; d > 0 {
		c.writeBy(now, d)
	}
	ctx := &reqCtx{c: c}
	var rb io.ReadCloser = http.NoBody
	c.body = body{c: c, ctx: ctx, remain: h.contentLength}
	c.bodyLeft.Store(h.contentLength > 0)
	if h.contentLength > 0 {
		rb = &c.body
	}
	tmpl := http.Request{
		Method: h.method, URL: &c.url, Header: c.hdr, Body: rb, ContentLength: h.contentLength,
		Host: h.host, RemoteAddr: c.remote, RequestURI: h.target, Close: h.close,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: h.minor,
	}
	if h.minor == 0 {
		tmpl.Proto = "HTTP/1.0"
	}
	r := tmpl.WithContext(ctx)
	w := &c.res
	w.reset(c, r, h, now)

	c.s.Handler.ServeHTTP(w, r)

	ctx.end()
	keep := w.finish()
	c.hdr, c.res.hdr = clearOrNew(c.hdr), clearOrNew(c.res.hdr)
	if !keep || h.close || c.s.shuttingDown() {
		return false
	}
	// What the handler left of the body is read past, up to a limit.
	return c.body.remain == 0 || c.body.err == nil && c.drain()
}

// clearOrNew returns h cleared, or a new map when h grew large.
func clearOrNew(h http.Header) http.Header {
	if len(h) > 64 {
		return make(http.Header, 16)
	}
	clear(h)
	return h
}

// drain discards the unread rest of the request body.
func (c *conn) drain() bool {
	if c.body.remain > maxDiscard {
		return false
	}
	_, err := c.br.Discard(int(c.body.remain))
	c.body.remain = 0
	return err == nil
}

// body is a request body of known length.
type body struct {
	c      *conn
	ctx    *reqCtx
	remain int64
	closed bool
	err    error
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.c.bodyLeft.Store(false)
		b.ctx.bodyDone()
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *body) Close() error {
	b.closed = true
	return nil
}

// connReader reads the connection, giving first a byte a watcher read.
// The watcher stores the byte before it exits, and the connection's
// goroutine reads again only after waiting for that (watcher.stop), so the
// byte needs no lock.
type connReader struct {
	nc      net.Conn
	stashed bool
	b       [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.stashed && len(p) > 0 {
		p[0] = r.b[0]
		r.stashed = false
		return 1, nil
	}
	return r.nc.Read(p)
}

// replayConn is a handed-over connection: its reads return what this
// server had buffered, then the connection's own bytes.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// reqCtx is a request's context. It is canceled when the handler returns,
// and when the client goes away while the handler runs — which it finds
// out only when asked: Err looks at the socket without reading it (one
// system call, made when a caller checks, such as the proxy's client watch
// every second), and Done starts a watcher that reads the connection in the
// background, as net/http does for every request. Most requests never call
// Done, so they cost no goroutine.
type reqCtx struct {
	c         *conn
	mu        sync.Mutex
	err       error
	done      chan struct{}
	w         *watcher
	wantWatch bool
	// key and val are the one value a handler may give the context
	// (HoldValue), before anything else sees it.
	key, val any
}

// HoldValue stores val under key if no value is held yet; the gateway's
// entry gives the request its exchange this way instead of copying the
// request for a context.WithValue.
func (x *reqCtx) HoldValue(key, val any) bool {
	if x.key != nil {
		return false
	}
	x.key, x.val = key, val
	return true
}

func (x *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (x *reqCtx) Value(key any) any {
	if x.key != nil && key == x.key {
		return x.val
	}
	switch key {
	case http.ServerContextKey:
		return x.c.s.Fallback
	case http.LocalAddrContextKey:
		return x.c.nc.LocalAddr()
	}
	return nil
}

// Done starts the watcher, or, while the handler has yet to read the whole
// request body, arranges for it to start once the body is read: until then
// the connection carries the body, and a client that leaves shows as an
// error reading it.
func (x *reqCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		switch {
		case x.err != nil:
			close(x.done)
		case x.c.bodyLeft.Load():
			x.wantWatch = true
		default:
			x.w = startWatcher(x)
		}
	}
	return x.done
}

// bodyDone runs when the request body has been read to its end.
func (x *reqCtx) bodyDone() {
	x.mu.Lock()
	if x.wantWatch && x.err == nil && x.w == nil {
		x.w = startWatcher(x)
	}
	x.mu.Unlock()
}

func (x *reqCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err == nil && x.w == nil && !x.c.bodyLeft.Load() && x.c.peerClosed() {
		x.cancelLocked()
	}
	return x.err
}

func (x *reqCtx) cancelLocked() {
	if x.err == nil {
		x.err = context.Canceled
		if x.done != nil {
			close(x.done)
		}
	}
}

func (x *reqCtx) cancel() {
	x.mu.Lock()
	x.cancelLocked()
	x.mu.Unlock()
}

// end cancels the context when the handler has returned and stops its
// watcher.
func (x *reqCtx) end() {
	x.mu.Lock()
	w := x.w
	x.cancelLocked()
	x.mu.Unlock()
	if w != nil {
		w.stop(x.c)
	}
}

// watcher reads one byte of the connection in the background while the
// handler runs: EOF or an error means the client went away; a byte is the
// start of a pipelined request, kept for br.
type watcher struct {
	exited chan struct{}
}

func startWatcher(x *reqCtx) *watcher {
	w := &watcher{exited: make(chan struct{})}
	c := x.c
	if c.br.Buffered() > 0 {
		close(w.exited) // a pipelined request is waiting: the client is there
		return w
	}
	// The idle or header deadline set before the request must not end the
	// watch of a long request. It is cleared here, before the goroutine
	// starts, so that stop's deadline in the past always comes after it.
	c.setReadDeadline(time.Time{})
	go func() {
		defer close(w.exited)
		var b [1]byte
		n, err := c.nc.Read(b[:])
		if n == 1 {
			c.rd.b[0], c.rd.stashed = b[0], true
			return
		}
		// A timeout is stop's deadline in the past (the context is canceled
		// already then) or one a handler set: not a departed client.
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			x.cancel()
		}
	}()
	return w
}

// stop ends the watcher's read and waits for it.
func (w *watcher) stop(c *conn) {
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-w.exited
	c.setReadDeadline(time.Time{})
}
