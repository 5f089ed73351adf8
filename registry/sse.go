package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the watch stream a Client reads.
const (
	// maxSSELine bounds one line of the stream, and maxSSEData the data of
	// one event: an event carries one instance, at most a few tens of KiB.
	maxSSELine = 1 << 20
	maxSSEData = 1 << 20
	// Reconnection waits of a Watcher grow from minBackoff to maxBackoff.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// errSSETooLong: a line or an event of the stream is over its limit.
var errSSETooLong = errors.New("server-sent event over 1 MiB")

// sseEvent is one dispatched server-sent event. ID and Data are valid until
// the next call to sseReader.next.
type sseEvent struct {
	// Type is the event field, "message" when the event had none.
	Type string
	// ID is the last event ID: it persists from earlier events when this
	// one has no id field.
	ID   []byte
	Data []byte
}

// sseReader parses a text/event-stream as the HTML standard's event stream
// interpretation does: lines end in CRLF, LF or a lone CR; a leading byte
// order mark is skipped; lines starting with a colon are comments; a line
// without a colon is a field with an empty value; one space after the colon
// is dropped; data lines join with LF; an empty line dispatches the event
// unless it has no data; an id containing NUL is ignored; unknown fields
// (and retry, since the Watcher paces itself) are ignored; an event cut off
// by the end of the stream is dropped.
type sseReader struct {
	sc      *bufio.Scanner
	started bool // the byte order mark was checked
	skipLF  bool // the last line ended in CR: a LF right after it is part of that line end
	id      []byte
	typ     []byte
	data    []byte
}

func newSSEReader(r io.Reader) *sseReader {
	p := &sseReader{sc: bufio.NewScanner(r)}
	p.sc.Buffer(make([]byte, 0, 4096), maxSSELine)
	p.sc.Split(p.splitLine)
	return p
}

// splitLine is a bufio.SplitFunc that yields lines ended by CRLF, LF or CR.
// A CR at the end of the buffer ends its line at once, so an event ended by
// CRs is not held back waiting for the next byte.
func (p *sseReader) splitLine(data []byte, atEOF bool) (int, []byte, error) {
	if p.skipLF && len(data) > 0 {
		p.skipLF = false
		if data[0] == '\n' {
			return 1, nil, nil
		}
	}
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		// At EOF an unterminated line belongs to an event that was never
		// dispatched: drop it.
		return 0, nil, nil
	}
	if data[i] == '\n' {
		return i + 1, data[:i], nil
	}
	if i+1 < len(data) {
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	}
	p.skipLF = true
	return i + 1, data[:i], nil
}

var utf8BOM = []byte("\xef\xbb\xbf")

// next returns the next event. It returns io.EOF at the end of the stream,
// an error wrapping errSSETooLong for an oversized line or event, and the
// reader's error otherwise.
func (p *sseReader) next() (sseEvent, error) {
	for p.sc.Scan() {
		line := p.sc.Bytes()
		if !p.started {
			p.started = true
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if len(line) == 0 {
			if len(p.data) == 0 {
				p.typ = p.typ[:0]
				continue
			}
			ev := sseEvent{Type: eventType(p.typ), ID: p.id, Data: p.data[:len(p.data)-1]}
			p.typ, p.data = p.typ[:0], p.data[:0]
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, line[len(line):]
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if len(p.data)+len(value)+1 > maxSSEData {
				return sseEvent{}, fmt.Errorf("%w: data of one event", errSSETooLong)
			}
			p.data = append(p.data, value...)
			p.data = append(p.data, '\n')
		case "event":
			p.typ = append(p.typ[:0], value...)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.id = append(p.id[:0], value...)
			}
		}
	}
	err := p.sc.Err()
	switch {
	case err == nil:
		return sseEvent{}, io.EOF
	case errors.Is(err, bufio.ErrTooLong):
		return sseEvent{}, fmt.Errorf("%w: line", errSSETooLong)
	}
	return sseEvent{}, err
}

// eventType returns the event type named by b without allocating for the
// registry's own types.
func eventType(b []byte) string {
	switch string(b) {
	case "":
		return "message"
	case EventPut:
		return EventPut
	case EventDelete:
		return EventDelete
	}
	return string(b)
}

// clientWatcher is the Watcher of a Client. A goroutine reads the stream,
// reconnects after it drops and hands each event to Next over an unbuffered
// channel, so a slow reader holds the stream back rather than piling events
// up in memory.
type clientWatcher struct {
	c       *Client
	service string
	events  chan Event
	done    chan struct{} // closed when the goroutine ends; err is set then
	err     error
	cancel  context.CancelFunc
	closed  atomic.Bool
	once    sync.Once
}

var _ Watcher = (*clientWatcher)(nil)

// watchStream is one open watch response.
type watchStream struct {
	body   io.ReadCloser
	sse    *sseReader
	idle   *idleReader
	rev    int64 // the X-Registry-Revision header, 0 if absent
	cancel context.CancelFunc
}

func (s *watchStream) close() {
	s.idle.timer.Stop()
	_ = s.body.Close()
	s.cancel()
}

// Watch streams the changes to service (every service when empty) with a
// revision greater than after; after 0 means changes from now on. ctx
// bounds the whole watch, not only its start: when it ends, Next returns its
// error. Watch fails when the first connection does, with ErrCompacted when
// after is older than the registry's history; later the Watcher reconnects
// by itself after a dropped stream, resuming after the last revision it
// delivered, and fails only on an answer that retrying cannot change
// (ErrCompacted, an authorization error, a malformed event). A watch that
// delivered nothing yet and started when the registry was at revision 0
// cannot be resumed exactly (revision 0 means "from now on"): if the
// registry changed while it was disconnected, it fails with ErrCompacted.
func (c *Client) Watch(ctx context.Context, service string, after int64) (Watcher, error) {
	if after < 0 {
		return nil, fmt.Errorf("watch %q: revision %d is negative", service, after)
	}
	wctx, cancel := context.WithCancel(ctx)
	s, err := c.openWatch(wctx, service, after)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %q after revision %d: %w", service, after, err)
	}
	if after == 0 {
		// Resume a dropped stream after the revision it started at, not
		// "from now on" again, which would miss the changes in between.
		after = s.rev
	}
	w := &clientWatcher{c: c, service: service, events: make(chan Event), done: make(chan struct{}), cancel: cancel}
	go w.run(wctx, s, after)
	return w, nil
}

// openWatch connects the stream. Only the wait for the response headers is
// bounded by unaryTimeout; the stream lasts as long as ctx.
func (c *Client) openWatch(ctx context.Context, service string, after int64) (*watchStream, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if after > 0 {
		q.Set("revision", strconv.FormatInt(after, 10))
	}
	u := c.base + "/watch"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	c.authorize(req)
	timer := time.AfterFunc(unaryTimeout, cancel)
	resp, err := c.hc.Do(req)
	if !timer.Stop() {
		if err == nil {
			_ = resp.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("no response from %s within %s", u, unaryTimeout)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		err := readProblem(resp)
		cancel()
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !hasMediaType(ct, "text/event-stream") {
		drainClose(resp.Body)
		cancel()
		return nil, &protocolError{fmt.Sprintf("GET %s answered Content-Type %q, not text/event-stream: is this a Portico registry?", u, ct)}
	}
	rev, _ := strconv.ParseInt(resp.Header.Get(RevisionHeader), 10, 64)
	idle := &idleReader{r: resp.Body, d: c.idle, timer: time.AfterFunc(c.idle, cancel)}
	return &watchStream{body: resp.Body, sse: newSSEReader(idle), idle: idle, rev: rev, cancel: cancel}, nil
}

// idleReader cancels its stream (through timer) when a read waits longer
// than d for data.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(ir.d)
	}
	return n, err
}

// run follows s, reconnecting as needed, until the watch fails or ctx ends.
func (w *clientWatcher) run(ctx context.Context, s *watchStream, last int64) {
	defer close(w.done)
	attempt := 0
	for {
		start := time.Now()
		delivered, err := w.follow(ctx, s, &last)
		s.close()
		if !w.retry(ctx, err) {
			return
		}
		// A stream that worked for a while proves the way there works:
		// start the waits from the shortest one again.
		if delivered > 0 || time.Since(start) >= maxBackoff {
			attempt = 0
		}
		w.c.log.Debug("registry watch stream ended; reconnecting", "service", w.service, "after", last, "err", err)
		for {
			if !sleepCtx(ctx, jitter(backoffDelay(attempt))) {
				w.retry(ctx, ctx.Err())
				return
			}
			attempt++
			s, err = w.c.openWatch(ctx, w.service, last)
			if err == nil && last == 0 && s.rev > 0 {
				// The API cannot resume after revision 0 (it means "from
				// now on"), and the registry changed meanwhile: what
				// changed is unknown, so the caller must list again.
				s.close()
				err = fmt.Errorf("%w: the registry changed while the watch from its first revision was disconnected", ErrCompacted)
			}
			if err == nil {
				break
			}
			if !w.retry(ctx, err) {
				return
			}
			if attempt >= reconnectAttempts {
				// The registry is down, not just a connection: end the
				// watch so the caller can tell (discovery reports it and
				// keeps its last set) and list again when it is back.
				w.err = fmt.Errorf("%w: watch %q: %d reconnections failed: %w", ErrUnavailable, w.service, attempt, err)
				return
			}
			w.c.log.Debug("registry watch reconnect failed", "service", w.service, "after", last, "err", err)
		}
	}
}

// retry reports whether the watch should reconnect after err, and records
// the error Next returns when it should not.
func (w *clientWatcher) retry(ctx context.Context, err error) bool {
	switch {
	case w.closed.Load():
		w.err = ErrClosed
	case ctx.Err() != nil:
		w.err = ctx.Err()
	case retryable(err):
		return true
	default:
		w.err = fmt.Errorf("watch %q: %w", w.service, err)
	}
	return false
}

// follow hands the events of s to Next until the stream ends, skipping
// those at or before *last, and returns how many it delivered.
func (w *clientWatcher) follow(ctx context.Context, s *watchStream, last *int64) (int, error) {
	delivered := 0
	for {
		se, err := s.sse.next()
		if err != nil {
			if errors.Is(err, errSSETooLong) {
				err = &protocolError{err.Error()}
			}
			return delivered, err
		}
		if se.Type != EventPut && se.Type != EventDelete {
			continue // a type of a later version of the API
		}
		var ev Event
		if err := json.Unmarshal(se.Data, &ev); err != nil {
			return delivered, &protocolError{fmt.Sprintf("decode event %q: %v", se.ID, err)}
		}
		if ev.Revision == 0 {
			ev.Revision, _ = strconv.ParseInt(string(se.ID), 10, 64)
		}
		if ev.Type == "" {
			ev.Type = se.Type
		}
		if ev.Revision <= *last {
			continue // replayed after a reconnect: already delivered
		}
		select {
		case w.events <- ev:
			*last = ev.Revision
			delivered++
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
	}
}

// Next blocks until the next change, ctx ends, or the watch fails. After
// ctx's error it may be called again; any other error ends the watch.
func (w *clientWatcher) Next(ctx context.Context) (Event, error) {
	if w.closed.Load() {
		return Event{}, ErrClosed
	}
	select {
	case ev := <-w.events:
		return ev, nil
	case <-w.done:
		if w.closed.Load() {
			return Event{}, ErrClosed
		}
		return Event{}, w.err
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close ends the watch and waits for its connection to close. Next then
// returns ErrClosed.
func (w *clientWatcher) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		w.cancel()
	})
	<-w.done
	return nil
}

// reconnectAttempts is how many reconnections in a row may fail (about
// 0.1 + 0.2 + 0.4 s of waiting) before the watch ends with ErrUnavailable.
const reconnectAttempts = 3

// protocolError: the server answered something other than the registry
// API; reconnecting would not help.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "registry: " + e.msg }

// retryable reports whether a watch that failed with err should reconnect:
// after transport errors and server-side failures, not after an answer
// that says the request itself is wrong.
func retryable(err error) bool {
	if errors.Is(err, ErrCompacted) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusRequestTimeout || ae.Status == http.StatusTooManyRequests
	}
	var pe *protocolError
	return !errors.As(err, &pe)
}

// backoffDelay is the wait before retry number attempt (from 0): minBackoff
// doubling up to maxBackoff.
func backoffDelay(attempt int) time.Duration {
	if attempt > 6 {
		return maxBackoff
	}
	return min(minBackoff<<attempt, maxBackoff)
}

// jitter returns a random duration in [d/2, d], so that clients that lost
// the registry at the same moment do not come back at the same moment.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d and reports whether ctx was still live throughout.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
