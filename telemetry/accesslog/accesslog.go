// Package accesslog writes the gateway's access log: one JSON object per
// request, one request per line.
//
// Logging never blocks the request path. Log formats the line synchronously
// into a pooled buffer and appends it, under a lock held only for the copy,
// to the current batch; a single background goroutine writes whole batches
// to the output. When more lines are waiting than the queue holds (the output
// is slower than the traffic) the line is dropped and counted instead of
// slowing requests down.
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
	"errors"
	"fmt"
	"io"
	"runtime"
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
	// batchSize is the capacity of a batch buffer: lines are gathered into
	// it and written to the output with one Write when it is full.
	batchSize = 64 << 10
	// maxSpare is how many written batch buffers are kept for reuse.
	maxSpare = 4
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
	maxLines int

	// lines holds formatting buffers. A buffer is taken and returned on the
	// request goroutine, so it normally stays in its processor's own slot.
	lines sync.Pool
	// second caches the formatted date and time of the latest second seen.
	second atomic.Pointer[secondText]

	// mu guards the queue: the batch being filled, the full batches
	// waiting for the writer and the written ones kept for reuse. It is
	// held only to copy a line or to swap buffers, never during a Write.
	mu         sync.Mutex
	batch      []byte
	batchLines int
	full       [][]byte
	fullLines  int
	spare      [][]byte
	// wake tells the writer that the first line of a batch arrived (so it
	// arms the flush timer) or that a batch is full. It holds one signal.
	wake chan struct{}

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
		maxLines: opts.BufferSize,
		wake:     make(chan struct{}, 1),
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
	l.LogAt(x, method, rawQuery, proto, time.Now())
}

// LogAt is Log for a request whose response completed at end, for callers
// that have already read the clock; the duration is end minus x.Start.
func (l *Logger) LogAt(x *exchange.Exchange, method, rawQuery, proto string, end time.Time) {
	if l.closed.Load() {
		return
	}
	ln := l.lines.Get().(*line)
	ln.b = l.format(ln, x, method, rawQuery, proto, end)
	queued, signal, filled := l.enqueue(ln.b)
	l.release(ln)
	if signal {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	if filled {
		// Let the writer run: with one processor (GOMAXPROCS=1) and a
		// request goroutine that never waits, it would otherwise run
		// only when the scheduler preempts this one, and lines would be
		// dropped meanwhile. This happens once per batch, not per line.
		runtime.Gosched()
	}
	if !queued {
		l.dropped.Add(1)
		if l.onDrop != nil {
			l.onDrop()
		}
	}
}

// enqueue copies p into the current batch. It reports whether the line was
// queued, whether the writer must be woken (the line started a batch while
// nothing else was waiting, or it filled one) and whether a batch filled.
func (l *Logger) enqueue(p []byte) (queued, signal, filled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.batchLines+l.fullLines >= l.maxLines {
		return false, false, false
	}
	if l.batchLines > 0 && len(l.batch)+len(p) > cap(l.batch) {
		l.full = append(l.full, l.batch)
		l.fullLines += l.batchLines
		l.batch, l.batchLines = nil, 0
		signal, filled = true, true
	}
	if l.batch == nil {
		l.batch = l.newBatch()
		signal = signal || len(l.full) == 0
	}
	l.batch = append(l.batch, p...)
	l.batchLines++
	return true, signal, filled
}

// newBatch returns an empty batch buffer, reusing a written one if it can.
// l.mu is held.
func (l *Logger) newBatch() []byte {
	if n := len(l.spare); n > 0 {
		b := l.spare[n-1]
		l.spare[n-1] = nil
		l.spare = l.spare[:n-1]
		return b
	}
	return make([]byte, 0, batchSize)
}

// take appends the full batches to out and, when all is set, the batch being
// filled too; the lines taken no longer count against BufferSize. It reports
// whether lines are still waiting.
func (l *Logger) take(out [][]byte, all bool) ([][]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out = append(out, l.full...)
	clear(l.full)
	l.full, l.fullLines = l.full[:0], 0
	if all && l.batchLines > 0 {
		out = append(out, l.batch)
		l.batch, l.batchLines = nil, 0
	}
	return out, l.batchLines > 0
}

// recycle keeps written batch buffers for reuse.
func (l *Logger) recycle(bufs [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range bufs {
		if len(l.spare) < maxSpare && cap(b) <= batchSize {
			l.spare = append(l.spare, b[:0])
		}
		bufs[i] = nil
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

// run is the writer goroutine. A batch is written when it is full and at
// most FlushInterval after its first line.
func (l *Logger) run() {
	defer close(l.done)
	timer := time.NewTimer(l.interval)
	timer.Stop()
	armed := false
	var out [][]byte
	var waiting bool
	for {
		select {
		case <-l.wake:
			out, waiting = l.take(out[:0], false)
			l.write(out)
			if waiting && !armed {
				timer.Reset(l.interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			out, _ = l.take(out[:0], true)
			l.write(out)
		case <-l.stop:
			timer.Stop()
			out, _ = l.take(out[:0], true)
			l.write(out)
			return
		}
	}
}

// write hands each batch to the output. A failed write loses that batch
// only: a log output that failed once (a full disk) may recover.
func (l *Logger) write(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	for _, b := range bufs {
		if _, err := l.out.Write(b); err != nil && l.werr == nil {
			l.werr = err
		}
	}
	l.recycle(bufs)
}
