package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-dev/portico/internal/httpsyntax"
)

const (
	h1BufferSize = 4 << 10
	// maxInterim bounds the 1xx responses skipped before the final one.
	maxInterim = 8
	// maxDrain is the most of an unread body Close discards, from what is
	// already buffered, to keep the connection.
	maxDrain = 4 << 10
	// maxKeptHeaderBuf is the largest header buffer a connection keeps.
	maxKeptHeaderBuf = 8 << 10
)

// defaultUserAgent is sent when the request has no User-Agent header, as
// net/http does; the reverse proxy sets an empty one to send none.
const defaultUserAgent = "Go-http-client/1.1"

// aLongTimeAgo is a deadline in the past: setting it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// h1Conn is one keep-alive connection to an endpoint. It carries one request
// at a time.
type h1Conn struct {
	p  *hostPool
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// raw probes an idle connection for a close by the endpoint.
	raw      syscall.RawConn
	probeFn  func(fd uintptr) bool
	probeRes probeResult
	hdrBuf   []byte
	// written counts the bytes written to nc in the current request.
	written int64
	// reused is set when the connection served an earlier request.
	reused bool
	// idle and idleTimer are guarded by p.mu.
	idle      bool
	idleTimer *time.Timer
	// ctx is the current request's context; stop unregisters abort from it.
	ctx     context.Context
	stop    func() bool
	abortFn func()
	// deadline is the current request's deadline for its response header;
	// zero when none and once the header has arrived.
	deadline time.Time
	// watch is set while the current request's context is watched by
	// polling (sendOptions.watch): nc's deadline is then at most
	// watchInterval away, and each time it passes the context is checked.
	// ctxDeadline is the context's own deadline.
	watch       bool
	ctxDeadline time.Time
	// armed is the deadline set on nc; zero when none.
	armed time.Time
}

// connWriter counts what the connection's buffered writer flushes. While
// the request's context is watched, a write that reaches the watch deadline
// goes on once the context is found alive.
type connWriter struct{ c *h1Conn }

func (w connWriter) Write(b []byte) (int, error) {
	c, total := w.c, 0
	for {
		n, err := c.nc.Write(b)
		c.written += int64(n)
		total += n
		if err != nil && c.watch && errors.Is(err, os.ErrDeadlineExceeded) && c.extend() {
			b = b[n:]
			continue
		}
		return total, err
	}
}

// connReader is what the connection's buffered reader reads from: like
// connWriter, it goes on past a watch deadline while the context is alive.
type connReader struct{ c *h1Conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	for {
		n, err := c.nc.Read(p)
		if n == 0 && err != nil && c.watch && errors.Is(err, os.ErrDeadlineExceeded) && c.extend() {
			continue
		}
		return n, err
	}
}

// watchInterval is how often a request whose context is watched (the
// direct path) checks it while it waits for the endpoint: a client that
// went away is noticed within this time, without a goroutine, a timer or a
// context callback per request.
const watchInterval = time.Second

func newH1Conn(p *hostPool, nc net.Conn) *h1Conn {
	c := &h1Conn{p: p, nc: nc}
	c.br = bufio.NewReaderSize(connReader{c}, h1BufferSize)
	c.bw = bufio.NewWriterSize(connWriter{c}, h1BufferSize)
	c.abortFn = c.abort
	c.idleTimer = time.AfterFunc(time.Hour, func() { p.expire(c) })
	c.idleTimer.Stop()
	c.initProbe()
	return c
}

// abort interrupts the connection's I/O when the request's context ends.
func (c *h1Conn) abort() { _ = c.nc.SetDeadline(aLongTimeAgo) }

// alive reports whether an idle connection may carry a request: the
// endpoint has neither closed it nor sent anything unasked.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	return c.probe()
}

// release ends the connection's current request: it goes back to the pool
// when keep is set and the context never fired, else it is closed.
func (c *h1Conn) release(keep bool) {
	if c.stop != nil {
		if !c.stop() {
			// abort ran or is running: the deadline is in the past.
			keep = false
		}
		c.stop = nil
	}
	c.ctx, c.watch = nil, false
	if cap(c.hdrBuf) > maxKeptHeaderBuf {
		c.hdrBuf = nil
	}
	if keep {
		c.p.put(c)
	} else {
		c.p.discard(c)
	}
}

// failed maps an I/O error to the context's cause when the context ended.
func (c *h1Conn) failed(err error) error {
	if c.ctx != nil && c.ctx.Err() != nil {
		return context.Cause(c.ctx)
	}
	return err
}

// attemptInfo tells RoundTrip whether a failed request may be sent again.
type attemptInfo struct {
	// stale: the connection was reused and failed before any response byte
	// arrived, the way a connection the endpoint closed while idle does.
	stale bool
	// nothingWritten: no byte of the request reached the connection and
	// the body was not read.
	nothingWritten bool
	bodyRead       bool
}

// roundTrip sends req and reads the response header, under ctx and o. On
// error the connection is closed.
func (c *h1Conn) roundTrip(ctx context.Context, req *http.Request, o sendOptions) (*http.Response, attemptInfo, error) {
	var info attemptInfo
	c.written = 0
	c.deadline = o.deadline
	switch {
	case o.watch:
		c.watch, c.ctx = true, ctx
		c.ctxDeadline, _ = ctx.Deadline()
		now := o.now
		if now.IsZero() {
			now = time.Now()
		}
		c.arm(now)
	default:
		if ctx.Done() != nil {
			c.ctx = ctx
			c.stop = context.AfterFunc(ctx, c.abortFn)
		}
		if c.armed != c.deadline {
			c.armed = c.deadline
			_ = c.nc.SetDeadline(c.deadline)
		}
	}
	bodyRead, bodyErr, werr := c.writeRequest(req)
	info.bodyRead = bodyRead
	if bodyErr != nil || (werr != nil && !isConnError(werr)) {
		c.release(false)
		if bodyErr != nil {
			return nil, info, bodyErr
		}
		return nil, info, c.timedOut(werr)
	}
	// After a failed write the endpoint may still have answered (say, 413
	// before reading the body): read what it sent, and relay it on a
	// connection that is then closed.
	res, nread, err := c.readResponse(req, werr != nil, &o)
	if err != nil {
		if werr != nil {
			err = werr
		}
		info.stale = c.reused && nread == 0 && isConnError(err)
		info.nothingWritten = c.written == 0 && !bodyRead
		err = c.timedOut(c.failed(err))
		c.release(false)
		return nil, info, err
	}
	return res, info, nil
}

// timedOut maps an I/O timeout to ErrUpstreamTimeout when the request's own
// deadline caused it (a context's end is reported by failed).
func (c *h1Conn) timedOut(err error) error {
	if !c.deadline.IsZero() && isTimeout(err) && (c.ctx == nil || c.ctx.Err() == nil) {
		return ErrUpstreamTimeout
	}
	return err
}

// clearDeadline ends the request's deadline once the response header has
// arrived: a body may stream for as long as it makes progress. A watched
// request keeps its watch deadline. Otherwise an abort that ran meanwhile
// is applied again, so it is not lost.
func (c *h1Conn) clearDeadline() {
	c.deadline = time.Time{}
	if c.watch || c.armed.IsZero() {
		return
	}
	c.armed = time.Time{}
	_ = c.nc.SetDeadline(time.Time{})
	if c.ctx != nil && c.ctx.Err() != nil {
		c.abort()
	}
}

// arm sets nc's deadline for a watched request: the next check of its
// context, or its deadline or its context's if sooner. A deadline already
// set that is still ahead and no later than those serves as it is: an
// early check costs nothing but a look at the context, while moving the
// deadline costs a timer change, so a connection busy with short requests
// moves it about once a watchInterval rather than once a request.
func (c *h1Conn) arm(now time.Time) {
	next := now.Add(watchInterval)
	if !c.deadline.IsZero() && c.deadline.Before(next) {
		next = c.deadline
	}
	if !c.ctxDeadline.IsZero() && c.ctxDeadline.Before(next) {
		next = c.ctxDeadline
	}
	if c.armed.After(now) && !c.armed.After(next) {
		return
	}
	c.armed = next
	_ = c.nc.SetDeadline(next)
}

// extend runs when a watched request's I/O reached nc's deadline. It
// reports whether the I/O goes on: the context is alive and neither the
// request's deadline nor the context's has passed.
func (c *h1Conn) extend() bool {
	if c.ctx.Err() != nil {
		return false
	}
	now := time.Now()
	if !c.deadline.IsZero() && !now.Before(c.deadline) || !c.ctxDeadline.IsZero() && !now.Before(c.ctxDeadline) {
		return false
	}
	c.arm(now)
	return true
}

// isConnError reports an error from the connection itself (closed, reset,
// broken pipe), as opposed to a malformed response or a timeout.
func isConnError(err error) bool {
	if err == io.EOF || err == io.ErrUnexpectedEOF || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	return false
}

// writeRequest writes req and flushes it. bodyErr is a failure to read the
// request body; err a failure to write.
func (c *h1Conn) writeRequest(req *http.Request) (bodyRead bool, bodyErr, err error) {
	bw := c.bw
	if !validMethod(req.Method) {
		return false, nil, fmt.Errorf("invalid method %q", req.Method)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return false, nil, errors.New("invalid Host header")
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	if err := writeRequestURI(bw, req.URL); err != nil {
		return false, nil, err
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: " + defaultUserAgent + "\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		if !httpguts.ValidHeaderFieldValue(ua[0]) {
			return false, nil, errors.New("invalid User-Agent header value")
		}
		writeField(bw, "User-Agent", ua[0])
	}
	if u := req.URL.User; u != nil {
		if _, ok := req.Header["Authorization"]; !ok {
			pw, _ := u.Password()
			writeField(bw, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
		}
	}
	if req.Close {
		if _, ok := req.Header["Connection"]; !ok {
			bw.WriteString("Connection: close\r\n")
		}
	}
	if req.ContentLength > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	for name, vv := range req.Header {
		switch name {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return false, nil, fmt.Errorf("invalid header field name %q", name)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false, nil, fmt.Errorf("invalid header field value for %q", name)
			}
			writeField(bw, name, textproto.TrimString(v))
		}
	}
	bw.WriteString("\r\n")
	if req.ContentLength > 0 {
		bodyRead, bodyErr, err = c.writeBody(req.Body, req.ContentLength)
		if bodyErr != nil || err != nil {
			return bodyRead, bodyErr, err
		}
	}
	return bodyRead, nil, bw.Flush()
}

func writeField(bw *bufio.Writer, name, value string) {
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}

// writeBody copies exactly n bytes of body to the connection.
func (c *h1Conn) writeBody(body io.Reader, n int64) (bodyRead bool, bodyErr, err error) {
	bw := c.bw
	left := n
	for left > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return bodyRead, nil, err
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), left)]
		m, rerr := body.Read(buf)
		bodyRead = true
		if m > 0 {
			if _, err := bw.Write(buf[:m]); err != nil {
				return bodyRead, nil, err
			}
			left -= int64(m)
		}
		if rerr == io.EOF && left > 0 {
			return bodyRead, fmt.Errorf("http: ContentLength=%d with Body length %d", n, n-left), nil
		}
		if rerr != nil && rerr != io.EOF {
			return bodyRead, rerr, nil
		}
	}
	return bodyRead, nil, nil
}

// writeRequestURI writes the origin-form target of u.
func writeRequestURI(bw *bufio.Writer, u *url.URL) error {
	if u.Opaque != "" {
		bw.WriteString(u.RequestURI())
		return nil
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		q := u.RawQuery
		for i := 0; i < len(q); i++ {
			if q[i] <= ' ' || q[i] == 0x7f {
				return errors.New("invalid character in request query")
			}
		}
		bw.WriteByte('?')
		bw.WriteString(q)
	}
	return nil
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// readResponse reads the final response header of req, skipping interim
// 1xx responses other than 101, and sets up its body. nread is how many
// bytes arrived before an error.
func (c *h1Conn) readResponse(req *http.Request, broken bool, o *sendOptions) (*http.Response, int, error) {
	nread := 0
	res := o.res
	if res == nil {
		res = new(http.Response)
	}
	*res = http.Response{Request: req}
	for interim := 0; ; interim++ {
		buf, n, err := readHeaderBlock(c.br, c.hdrBuf)
		c.hdrBuf = buf[:0]
		nread += n
		if err != nil {
			if err == io.EOF && nread > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, nread, err
		}
		block := string(buf)
		eol := strings.IndexByte(block, '\n')
		if err := parseStatusLine(block[:eol-1], res); err != nil {
			return nil, nread, err
		}
		hdr, err := parseHeaderInto(o.hdr, block[eol+1:])
		if err != nil {
			return nil, nread, err
		}
		res.Header = hdr
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if interim >= maxInterim {
			return nil, nread, malformed("too many 1xx responses")
		}
		if err := o.gotInterim(res.StatusCode, hdr); err != nil {
			return nil, nread, err
		}
	}
	c.clearDeadline()
	return res, nread, c.setBody(req, res, broken, o.body)
}

// setBody gives res the body its framing calls for. When the response
// has no body, the connection is released at once. A broken connection is
// never kept.
func (c *h1Conn) setBody(req *http.Request, res *http.Response, broken bool, b *h1Body) error {
	f, err := responseFraming(res, req.Method)
	if err != nil {
		return err
	}
	if f.chunked {
		if res.Trailer, err = announcedTrailers(res); err != nil {
			return err
		}
	}
	keep := !broken && res.ProtoMinor == 1 && res.StatusCode != http.StatusSwitchingProtocols &&
		!httpsyntax.HasToken(res.Header["Connection"], "close") && !req.Close &&
		(f.chunked || f.length >= 0)
	res.Close = !keep
	if !f.chunked && f.length == 0 {
		res.Body = http.NoBody
		c.release(keep)
		return nil
	}
	if b == nil {
		b = new(h1Body)
	}
	*b = h1Body{c: c, res: res, remain: f.length, keep: keep}
	if f.chunked {
		b.cr = httputil.NewChunkedReader(c.br)
	}
	res.Body = b
	return nil
}

// h1Body is the body of a response read by h1Client. Reading it to its end
// returns the connection to the pool; closing it before the end closes the
// connection unless the rest is a few bytes already buffered.
type h1Body struct {
	c      *h1Conn // nil once the connection is released
	res    *http.Response
	cr     io.Reader // chunked reader; nil otherwise
	remain int64     // bytes left with Content-Length; -1 when delimited by close
	keep   bool
	err    error // sticky: io.EOF at the end, or what failed
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	c := b.c
	var n int
	var err error
	switch {
	case b.cr != nil:
		n, err = b.cr.Read(p)
		if err == io.EOF {
			err = b.readTrailer()
		}
	case b.remain >= 0:
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err = c.br.Read(p)
		b.remain -= int64(n)
		switch {
		case b.remain == 0:
			err = io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	default:
		n, err = c.br.Read(p)
	}
	if err != nil {
		b.end(err)
		return n, b.err
	}
	return n, nil
}

// end releases the connection when the body ended or failed.
func (b *h1Body) end(err error) {
	c := b.c
	b.c = nil
	if err == io.EOF {
		b.err = io.EOF
		c.release(b.keep)
		return
	}
	b.err = c.failed(err)
	c.release(false)
}

// readTrailer reads the trailer section after the last chunk into
// res.Trailer and returns io.EOF, or the error that ended the body.
func (b *h1Body) readTrailer() error {
	c := b.c
	buf, _, err := readHeaderBlock(c.br, c.hdrBuf)
	c.hdrBuf = buf[:0]
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if len(buf) == 2 {
		return io.EOF
	}
	hdr, err := parseHeaderBlock(string(buf))
	if err != nil {
		return err
	}
	if b.res.Trailer == nil {
		b.res.Trailer = hdr
		return io.EOF
	}
	for k, v := range hdr {
		b.res.Trailer[k] = v
	}
	return io.EOF
}

func (b *h1Body) Close() error {
	if c := b.c; c != nil {
		b.c = nil
		keep := false
		if b.cr == nil && b.remain >= 0 && b.remain <= maxDrain && b.remain <= int64(c.br.Buffered()) {
			_, _ = c.br.Discard(int(b.remain))
			keep = b.keep
		}
		c.release(keep)
	}
	b.err = http.ErrBodyReadAfterClose
	return nil
}
