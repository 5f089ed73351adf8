package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// CloseGoingAway is the WebSocket close code sent by CloseUpgraded.
const CloseGoingAway = 1001

// closeWait bounds how long CloseUpgraded waits for a client to accept the
// close frame when its context has no deadline.
const closeWait = 5 * time.Second

// errGoingAway cancels the upstream side of a connection CloseUpgraded closed.
var errGoingAway = errors.New("gateway closed the upgraded connection")

// upgradeType returns the protocol a request or response asks to switch to,
// the way ReverseProxy reads it.
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	if v := h["Upgrade"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// CloseUpgraded ends every upgraded (WebSocket) connection: it sends the
// client a close frame with status 1001 "going away", closes the client
// connection and cancels the upstream one. It waits for each client to take
// the frame until ctx's deadline (5s if ctx has none) and returns how many
// connections it closed. After it returns the proxy answers new WebSocket
// handshakes with 503; it is meant for shutdown.
func (p *Proxy) CloseUpgraded(ctx context.Context) int {
	conns := p.upgraded.closeAll()
	if len(conns) == 0 {
		return 0
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(closeWait)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.goAway(deadline) })
	}
	wg.Wait()
	return len(conns)
}

// connSet tracks the client side of upgraded connections.
type connSet struct {
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	closing bool
}

func (s *connSet) add(c *trackedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *connSet) remove(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// closeAll marks the set closing and returns its members.
func (s *connSet) closeAll() []*trackedConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// Upgraded returns the number of upgraded connections currently open.
func (p *Proxy) Upgraded() int {
	p.upgraded.mu.Lock()
	defer p.upgraded.mu.Unlock()
	return len(p.upgraded.conns)
}

// upgradeWriter wraps the ResponseWriter of a WebSocket handshake so the
// connection ReverseProxy hijacks is tracked.
type upgradeWriter struct {
	http.ResponseWriter
	a *attempt
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (u *upgradeWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The listener's deadlines were meant for HTTP exchanges; a WebSocket
	// lives as long as its peers want.
	_ = conn.SetDeadline(time.Time{})
	a := u.a
	c := &trackedConn{Conn: conn, set: &a.h.p.upgraded, cancel: a.cancel}
	if brw.Reader.Buffered() > 0 {
		c.br = brw.Reader
	}
	if !c.set.add(c) {
		conn.Close()
		return nil, nil, ErrShuttingDown
	}
	a.hijacked = true
	// ReverseProxy writes the 101 on the hijacked connection, where no
	// response recorder sees it.
	a.ex.Status = http.StatusSwitchingProtocols
	return c, brw, nil
}

// trackedConn is the client side of an upgraded connection. Writes are
// serialized with the close frame CloseUpgraded sends, and the frames written
// are followed so that the close frame is only ever sent between two frames.
type trackedConn struct {
	net.Conn
	set    *connSet
	cancel context.CancelCauseFunc
	// br holds client bytes the server read before the hijack; they are
	// returned before reading the connection again.
	br *bufio.Reader
	// started is set once ReverseProxy relays frames, which it does only
	// after writing the 101 response.
	started atomic.Bool

	mu      sync.Mutex // guards the fields below and serializes writes
	frames  frameScanner
	stopped bool // no more writes: closed, half-closed or close frame sent

	closeOnce sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.started.Store(true)
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started.Store(true)
	if c.stopped {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Write(p)
	c.frames.scan(p[:n])
	return n, err
}

// CloseWrite half-closes the client connection when the endpoint has
// finished sending, as ReverseProxy does for plain connections.
func (c *trackedConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection does not support half-close")
}

func (c *trackedConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		c.set.remove(c)
		err = c.Conn.Close()
	})
	return err
}

// goAway sends the close frame if the stream is between frames and the
// endpoint has not already started the closing handshake, then closes both
// sides. A client that does not take the frame by deadline is cut.
func (c *trackedConn) goAway(deadline time.Time) {
	// A write blocked on a slow client holds mu; the deadline releases it.
	_ = c.Conn.SetWriteDeadline(deadline)
	c.mu.Lock()
	if !c.stopped && c.started.Load() && c.frames.atBoundary() && !c.frames.closeSent {
		_, _ = c.Conn.Write(closeFrame(CloseGoingAway, "going away"))
	}
	c.stopped = true
	c.mu.Unlock()
	if c.cancel != nil {
		c.cancel(errGoingAway)
	}
	_ = c.Close()
}

// closeFrame returns an unmasked (server to client) WebSocket close frame.
// reason must be at most 123 bytes.
func closeFrame(code uint16, reason string) []byte {
	b := make([]byte, 4, 4+len(reason))
	b[0] = 0x88 // FIN, opcode close
	b[1] = byte(2 + len(reason))
	binary.BigEndian.PutUint16(b[2:], code)
	return append(b, reason...)
}

// frameScanner follows WebSocket frame boundaries in a byte stream written
// in arbitrary pieces.
type frameScanner struct {
	hdr       [14]byte
	hn        int    // header bytes collected
	need      int    // header length, known once two bytes are in
	remain    uint64 // payload bytes left in the current frame
	closeSent bool   // a close frame went by
}

func (s *frameScanner) atBoundary() bool { return s.hn == 0 && s.remain == 0 }

func (s *frameScanner) scan(p []byte) {
	for len(p) > 0 {
		if s.remain > 0 {
			n := min(uint64(len(p)), s.remain)
			s.remain -= n
			p = p[n:]
			continue
		}
		s.hdr[s.hn] = p[0]
		s.hn++
		p = p[1:]
		if s.hn == 2 {
			s.need = 2
			switch s.hdr[1] & 0x7f {
			case 126:
				s.need += 2
			case 127:
				s.need += 8
			}
			if s.hdr[1]&0x80 != 0 {
				s.need += 4 // masking key
			}
		}
		if s.hn < 2 || s.hn < s.need {
			continue
		}
		switch l := s.hdr[1] & 0x7f; l {
		case 126:
			s.remain = uint64(binary.BigEndian.Uint16(s.hdr[2:4]))
		case 127:
			s.remain = binary.BigEndian.Uint64(s.hdr[2:10])
		default:
			s.remain = uint64(l)
		}
		if s.hdr[0]&0x0f == 0x8 {
			s.closeSent = true
		}
		s.hn = 0
	}
}
