// Package h1server is the gateway's HTTP/1.1 server for cleartext
// listeners: a connection loop of its own for the requests that make up
// nearly all API traffic, with net/http's server behind it for everything
// else.
//
// Each accepted connection is served by one goroutine that reads a request
// head, builds the *http.Request in memory it reuses, runs the handler with
// a ResponseWriter of its own and writes the response with one write. It
// starts no goroutine per request, moves a busy connection's deadlines
// about once every eighth of a timeout where net/http changes them seven
// times a request, and allocates a handful of objects where net/http
// allocates dozens; measured behind the gateway's handler it cuts the
// gateway's CPU per proxied request by about a third (docs/performance.md).
//
// It parses only what it can read exactly as net/http does (see parseHead).
// A connection whose next request is anything else — HTTP/2 with prior
// knowledge, an upgrade (WebSocket, h2c), Expect: 100-continue, a chunked
// or otherwise transfer-coded body, a head over 4 KiB, any irregular
// syntax — is handed over, with the bytes already read, to the net/http
// Server given as Fallback, which serves it from then on with its own
// limits and errors. So every protocol feature and every refusal of a
// malformed request stays net/http's.
package h1server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.x on a listener. Set the fields before Serve.
type Server struct {
	// Handler answers requests. Required.
	Handler http.Handler
	// Fallback serves the connections this server hands over; its
	// ReadHeaderTimeout, WriteTimeout, IdleTimeout and Handler apply to the
	// requests this server reads too (ReadTimeout is left to the handler,
	// which the gateway's entry turns into an idle timeout). Required.
	Fallback *http.Server
	// Logger receives handler panics and connection errors. If nil,
	// slog.Default().
	Logger *slog.Logger

	once    sync.Once
	handoff handoffListener
	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]struct{}
	closing atomic.Bool
}

// init prepares the server's state; Serve, Shutdown and Close may come in
// any order.
func (s *Server) init() {
	s.once.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		s.conns = make(map[*conn]struct{})
		s.handoff.init()
	})
}

// Serve accepts connections on ln until Shutdown or Close, and runs
// Fallback on the connections it hands over. It returns
// http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil || s.Fallback == nil {
		return errors.New("h1server: Handler and Fallback are required")
	}
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handoff.addr = ln.Addr()
	s.mu.Unlock()
	go func() { _ = s.Fallback.Serve(&s.handoff) }()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				// Out of file descriptors and the like: back off and go
				// on, as net/http does, rather than stop serving.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.Logger.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newConn(s, nc)
		if !s.track(c) {
			_ = nc.Close()
			continue
		}
		go c.serve()
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// shuttingDown reports whether responses should end their connections.
func (s *Server) shuttingDown() bool { return s.closing.Load() }

// Shutdown stops accepting, closes idle connections, lets active ones
// finish their current response and waits for them (and for Fallback's
// connections) until ctx ends; then it closes what is left and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	fb := make(chan error, 1)
	go func() { fb <- s.Fallback.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if s.closeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
			s.closeAll()
		case <-tick.C:
			continue
		}
		break
	}
	if ferr := <-fb; err == nil {
		err = ferr
	}
	return err
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.closeAll()
	return s.Fallback.Close()
}

// stopAccepting marks the server closing and closes its listener and the
// hand-over listener.
func (s *Server) stopAccepting() {
	s.init()
	s.closing.Store(true)
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	s.handoff.close()
}

// closeIdle closes the connections waiting for a request and reports how
// many connections are left.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			_ = c.nc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
}

// handoffListener is the listener Fallback serves: it yields the
// connections this server hands over.
type handoffListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func (l *handoffListener) init() {
	l.ch, l.done = make(chan net.Conn), make(chan struct{})
}

// give hands nc to Fallback; it reports false when Fallback no longer
// accepts (the server is closing), and then nc is closed.
func (l *handoffListener) give(nc net.Conn) bool {
	select {
	case l.ch <- nc:
		return true
	case <-l.done:
		_ = nc.Close()
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.ch:
		return nc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) close() { l.closed.Do(func() { close(l.done) }) }

func (l *handoffListener) Close() error { l.close(); return nil }

func (l *handoffListener) Addr() net.Addr {
	if l.addr == nil {
		return &net.TCPAddr{}
	}
	return l.addr
}
