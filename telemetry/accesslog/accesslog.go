// Package accesslog writes the gateway's access log: one JSON object per
// request, one request per line.
//
// Logging never blocks the request path. Log formats the line synchronously
// into a pooled buffer and hands it to a bounded queue; a single background
// goroutine batches queued lines into large writes. When the queue is full
// (the output is slower than the traffic) the line is dropped and counted
// instead of slowing requests down.
//
// A line holds these fields, in this order:
//
//	time         RFC 3339 time (UTC, nanoseconds) the request was accepted
//	request_id   the request id
//	route        the matched route, "" if none matched
//	service      the service the route forwards to, "" if none
//	endpoint     the endpoint that served the request, "" if none
//	method       the request method
//	path         the canonical path, then "?" and the query if there is one,
//	             with the values of redacted parameters replaced by "REDACTED"
//	status       the status sent to the client (499 if it went away)
//	bytes_in     request body bytes read
//	bytes_out    response body bytes written
//	duration_ms  time from acceptance to logging, milliseconds, 3 decimals
//	upstream_ms  upstream round trip in milliseconds; omitted without upstream
//	client_ip    the client address derived from trusted proxies
//	proto        the request protocol, e.g. "HTTP/1.1"
//	grpc_status  the grpc-status of a gRPC response; omitted when empty
//	error        the class of the error that ended the request (see
//	             ErrorClasser); omitted when there was none
//
// The user agent and other request headers are not logged. Every string is
// escaped by hand (control characters, DEL, U+2028, U+2029, invalid UTF-8),
// so whatever a client sends, one request is exactly one line of valid JSON.
package accesslog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultBufferSize    = 8192
	DefaultFlushInterval = 200 * time.Millisecond
)

const (
	// batchSize is the size of the buffer lines are batched in before one
	// Write to the output.
	batchSize = 64 << 10
	// maxPooledLine is the largest line buffer returned to the pool, so one
	// huge request does not pin memory for the life of the process.
	maxPooledLine = 16 << 10
	// initialLine is the starting capacity of a pooled line buffer.
	initialLine = 512
)

// Options configure a Logger.
type Options struct {
	// Output receives the log lines. Required. It is only ever called from
	// the Logger's writer goroutine, so it needs no locking of its own.
	Output io.Writer
	// RedactQuery lists query parameter names whose values are logged as
	// "REDACTED". Names are compared without case, after percent-decoding
	// the parameter name, so "%74oken" matches "token". If empty, nothing is
	// redacted.
	RedactQuery []string
	// BufferSize is how many lines may wait for the writer before new lines
	// are dropped. Default 8192.
	BufferSize int
	// FlushInterval is the longest a logged line waits in the batch buffer
	// before it is written to Output. Default 200ms.
	FlushInterval time.Duration
	// OnDrop, if not nil, is called once for each line dropped because the
	// queue was full. It runs on the request path and must not block.
	OnDrop func()
}

// Logger writes access log lines. It is safe for concurrent use.
type Logger struct {
	out      io.Writer
	redact   [][]byte
	interval time.Duration
	onDrop   func()

	queue chan *line
	lines sync.Pool

	dropped atomic.Uint64
	closed  atomic.Bool

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
	// werr is the first write error; written by the writer goroutine and
	// read after done is closed.
	werr error
}

// line is one formatted log line and the scratch space used to build it.
type line struct {
	b       []byte
	scratch []byte
}

// New returns a Logger writing to opts.Output and starts its writer goroutine.
// Call Close to flush and stop it.
func New(opts Options) (*Logger, error) {
	if opts.Output == nil {
		return nil, errors.New("accesslog: Output is required")
	}
	if opts.BufferSize < 0 {
		return nil, fmt.Errorf("accesslog: BufferSize %d is negative", opts.BufferSize)
	}
	if opts.FlushInterval < 0 {
		return nil, fmt.Errorf("accesslog: FlushInterval %s is negative", opts.FlushInterval)
	}
	if opts.BufferSize == 0 {
		opts.BufferSize = DefaultBufferSize
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	l := &Logger{
		out:      opts.Output,
		interval: opts.FlushInterval,
		onDrop:   opts.OnDrop,
		queue:    make(chan *line, opts.BufferSize),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, name := range opts.RedactQuery {
		if name == "" {
			return nil, errors.New("accesslog: RedactQuery contains an empty name")
		}
		l.redact = append(l.redact, []byte(name))
	}
	l.lines.New = func() any {
		return &line{b: make([]byte, 0, initialLine), scratch: make([]byte, 0, 64)}
	}
	go l.run()
	return l, nil
}

// Log formats the access log line of the finished request x and queues it.
// method, rawQuery (r.URL.RawQuery, without "?") and proto (r.Proto) are the
// request facts the Exchange does not carry. The duration is measured from
// x.Start to the call, so Log is called once the response is complete.
//
// Log never blocks: if the queue is full the line is dropped and OnDrop is
// called. After Close, Log drops lines silently.
func (l *Logger) Log(x *exchange.Exchange, method, rawQuery, proto string) {
	if l.closed.Load() {
		return
	}
	ln := l.lines.Get().(*line)
	ln.b = l.format(ln, x, method, rawQuery, proto, time.Now())
	select {
	case l.queue <- ln:
	default:
		l.release(ln)
		l.dropped.Add(1)
		if l.onDrop != nil {
			l.onDrop()
		}
	}
}

// Dropped returns how many lines were dropped because the queue was full.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Close writes every queued line, stops the writer goroutine and returns the
// first error Output returned, if any. Lines logged concurrently with Close
// may be lost. Close waits for Output to accept the last batch. It is safe to
// call more than once.
func (l *Logger) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	<-l.done
	if l.werr != nil {
		return fmt.Errorf("accesslog: write: %w", l.werr)
	}
	return nil
}

func (l *Logger) release(ln *line) {
	if cap(ln.b) > maxPooledLine {
		return
	}
	ln.b = ln.b[:0]
	l.lines.Put(ln)
}

// run is the writer goroutine. Lines are copied into a 64 KiB buffer, which
// is written when it fills and at most FlushInterval after its first line.
func (l *Logger) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.out, batchSize)
	timer := time.NewTimer(l.interval)
	timer.Stop()
	armed := false
	for {
		select {
		case ln := <-l.queue:
			l.write(w, ln)
			if !armed && w.Buffered() > 0 {
				timer.Reset(l.interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			l.flush(w)
		case <-l.stop:
			timer.Stop()
			for {
				select {
				case ln := <-l.queue:
					l.write(w, ln)
				default:
					l.flush(w)
					return
				}
			}
		}
	}
}

func (l *Logger) write(w *bufio.Writer, ln *line) {
	_, err := w.Write(ln.b)
	l.release(ln)
	if err != nil {
		l.fail(w, err)
	}
}

func (l *Logger) flush(w *bufio.Writer) {
	if err := w.Flush(); err != nil {
		l.fail(w, err)
	}
}

// fail records err and resets w: a bufio.Writer keeps failing after one
// error, but a log output that failed once (a full disk) may recover, so the
// failed batch is discarded and logging continues.
func (l *Logger) fail(w *bufio.Writer, err error) {
	if l.werr == nil {
		l.werr = err
	}
	w.Reset(l.out)
}
