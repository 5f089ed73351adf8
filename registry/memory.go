package registry

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of MemoryOptions.
const (
	DefaultGrace   = 30 * time.Second
	DefaultHistory = 10000
)

// MemoryOptions configures NewMemory.
type MemoryOptions struct {
	// Grace is how long an instance stays listed as critical after its TTL
	// passed without a heartbeat, before it is removed. Zero means
	// DefaultGrace (30s); a negative value removes an instance as soon as
	// its TTL passes, without a critical phase.
	Grace time.Duration
	// History is how many recent events are kept so that a watch can
	// resume after a revision. Zero means DefaultHistory (10000).
	History int
	// Logger receives expiries (critical, removed). Nil discards them.
	Logger *slog.Logger
}

// Memory is a Store that keeps the registry in this process. It is safe for
// concurrent use.
//
// Each instance has one timer, armed for its next transition (TTL end, or
// grace end while critical). A heartbeat only moves the instance's deadline
// under the lock; when the timer fires before the deadline it re-arms itself
// for the remainder. So a heartbeat costs a map lookup and never touches the
// runtime's timer heap, and the timer fires about once per TTL however often
// the instance heartbeats.
//
// Lock order: mu, then hmu. mu guards the instances; hmu guards the event
// history and the broadcast channel watchers wait on. An event is appended
// with both held, so the revision is stable under either.
type Memory struct {
	grace  time.Duration
	logger *slog.Logger

	mu       sync.Mutex
	services map[string]map[string]*entry
	closed   bool

	hmu     sync.RWMutex
	ring    []Event // ring[(rev-1)%cap(ring)] holds revision rev
	rev     atomic.Int64
	history int
	notify  chan struct{} // closed and replaced when an event is appended
	done    chan struct{} // closed by Close
}

var _ Store = (*Memory)(nil)

// entry is one registered instance. All fields are guarded by Memory.mu.
// inst.Metadata is never modified in place (a registration stores a fresh
// copy), so events may share it.
type entry struct {
	inst     Instance
	ttl      time.Duration
	deadline time.Time // the TTL ends (passing) or the grace ends (critical)
	timer    *time.Timer
}

// NewMemory returns an empty in-memory store. Close it to stop its timers.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Memory{
		grace:    opts.Grace,
		logger:   opts.Logger,
		services: make(map[string]map[string]*entry),
		ring:     make([]Event, 0, min(opts.History, 1024)),
		notify:   make(chan struct{}),
		done:     make(chan struct{}),
		history:  opts.History,
	}
}

// Register adds in, or replaces the instance with the same service and ID,
// as passing with the given TTL.
func (m *Memory) Register(ctx context.Context, in Instance, ttl time.Duration) (Instance, error) {
	out, _, err := m.register(in, ttl)
	return out, err
}

// register is Register that also reports whether an instance was replaced.
func (m *Memory) register(in Instance, ttl time.Duration) (Instance, bool, error) {
	if err := Validate(&in); err != nil {
		return Instance{}, false, err
	}
	if ttl <= 0 {
		return Instance{}, false, invalid("ttl", "must be positive")
	}
	now := time.Now()
	in.Metadata = cloneMeta(in.Metadata)
	in.Status = StatusPassing
	in.TTL = Duration(ttl)
	in.RegisteredAt = now.UTC()
	in.LastHeartbeat = in.RegisteredAt
	e := &entry{inst: in, ttl: ttl, deadline: now.Add(ttl)}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Instance{}, false, ErrClosed
	}
	ids := m.services[in.Service]
	if ids == nil {
		ids = make(map[string]*entry)
		m.services[in.Service] = ids
	}
	old := ids[in.ID]
	if old != nil {
		old.timer.Stop()
	}
	ids[in.ID] = e
	m.appendLocked(EventPut, e)
	e.timer = time.AfterFunc(ttl, func() { m.expire(e) })
	return cloneInstance(e.inst), old != nil, nil
}

// Heartbeat renews the instance's TTL. A passing instance changes nothing
// but its LastHeartbeat, so no event is emitted; a critical one becomes
// passing again (a put event).
func (m *Memory) Heartbeat(ctx context.Context, service, id string) (Instance, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Instance{}, ErrClosed
	}
	e := m.services[service][id]
	if e == nil {
		return Instance{}, ErrNotFound
	}
	e.inst.LastHeartbeat = now.UTC()
	e.deadline = now.Add(e.ttl)
	if e.inst.Status != StatusPassing {
		e.inst.Status = StatusPassing
		m.appendLocked(EventPut, e)
		// The timer may be armed for the end of the grace period, later
		// than the new deadline.
		e.timer.Reset(e.ttl)
	}
	return cloneInstance(e.inst), nil
}

// Deregister removes the instance at once.
func (m *Memory) Deregister(ctx context.Context, service, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	e := m.services[service][id]
	if e == nil {
		return ErrNotFound
	}
	m.removeLocked(e)
	return nil
}

// expire runs when e's timer fires: it re-arms the timer if heartbeats
// moved the deadline, and otherwise marks e critical or removes it.
func (m *Memory) expire(e *entry) {
	now := time.Now()
	m.mu.Lock()
	if m.closed || m.services[e.inst.Service][e.inst.ID] != e {
		m.mu.Unlock() // deregistered or replaced meanwhile
		return
	}
	if now.Before(e.deadline) {
		e.timer.Reset(e.deadline.Sub(now))
		m.mu.Unlock()
		return
	}
	critical := e.inst.Status == StatusPassing && m.grace > 0
	if critical {
		e.inst.Status = StatusCritical
		e.deadline = e.deadline.Add(m.grace)
		m.appendLocked(EventPut, e)
		e.timer.Reset(max(e.deadline.Sub(now), 0))
	} else {
		m.removeLocked(e)
	}
	service, id, last := e.inst.Service, e.inst.ID, e.inst.LastHeartbeat
	m.mu.Unlock()
	if critical {
		m.logger.Info("registry: instance critical: no heartbeat within its TTL",
			"service", service, "id", id, "last_heartbeat", last, "grace", m.grace)
	} else {
		m.logger.Info("registry: instance removed: no heartbeat within its TTL and grace period",
			"service", service, "id", id, "last_heartbeat", last)
	}
}

// removeLocked deletes e and emits its delete event. m.mu must be held.
func (m *Memory) removeLocked(e *entry) {
	e.timer.Stop()
	ids := m.services[e.inst.Service]
	delete(ids, e.inst.ID)
	if len(ids) == 0 {
		delete(m.services, e.inst.Service)
	}
	m.appendLocked(EventDelete, e)
}

// appendLocked gives e the next revision and records the event in the
// history. m.mu must be held.
func (m *Memory) appendLocked(typ string, e *entry) {
	m.hmu.Lock()
	rev := m.rev.Load() + 1
	e.inst.Revision = rev
	ev := Event{Type: typ, Instance: e.inst, Revision: rev}
	if len(m.ring) < m.history {
		m.ring = append(m.ring, ev)
	} else {
		m.ring[(rev-1)%int64(m.history)] = ev
	}
	m.rev.Store(rev)
	close(m.notify)
	m.notify = make(chan struct{})
	m.hmu.Unlock()
}

// Instances lists the instances of service (every service when empty),
// sorted by service then ID, as deep copies, and the current revision.
func (m *Memory) Instances(ctx context.Context, service string) ([]Instance, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0, ErrClosed
	}
	var out []Instance
	add := func(ids map[string]*entry) {
		for _, e := range ids {
			out = append(out, cloneInstance(e.inst))
		}
	}
	if service != "" {
		out = make([]Instance, 0, len(m.services[service]))
		add(m.services[service])
	} else {
		for _, ids := range m.services {
			add(ids)
		}
	}
	slices.SortFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	if out == nil {
		out = []Instance{}
	}
	return out, m.rev.Load(), nil
}

// Instance returns one instance, or ErrNotFound.
func (m *Memory) Instance(ctx context.Context, service, id string) (Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Instance{}, ErrClosed
	}
	e := m.services[service][id]
	if e == nil {
		return Instance{}, ErrNotFound
	}
	return cloneInstance(e.inst), nil
}

// Services summarizes every service with at least one instance, sorted by
// name.
func (m *Memory) Services(ctx context.Context) ([]ServiceSummary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := make([]ServiceSummary, 0, len(m.services))
	for name, ids := range m.services {
		s := ServiceSummary{Name: name, Instances: len(ids)}
		for _, e := range ids {
			if e.inst.Status == StatusPassing {
				s.Passing++
			}
			if v := e.inst.Version; v != "" && !slices.Contains(s.Versions, v) {
				s.Versions = append(s.Versions, v)
			}
		}
		slices.Sort(s.Versions)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Revision returns the current revision: that of the last change.
func (m *Memory) Revision(ctx context.Context) (int64, error) {
	if m.isClosed() {
		return 0, ErrClosed
	}
	return m.rev.Load(), nil
}

func (m *Memory) isClosed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Close stops every timer and ends every watch (their Next returns
// ErrClosed). Later calls fail with ErrClosed. Close is idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for _, ids := range m.services {
		for _, e := range ids {
			e.timer.Stop()
		}
	}
	close(m.done)
	return nil
}

// Watch returns the changes to service (every service when empty) with a
// revision greater than after; after 0 means changes from now on. It fails
// with ErrCompacted when after is older than the kept history, or newer
// than the current revision (a revision of another store's history, such as
// from before a restart: list again).
func (m *Memory) Watch(ctx context.Context, service string, after int64) (Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	if m.isClosed() {
		return nil, ErrClosed
	}
	rev := m.rev.Load()
	if after == 0 {
		after = rev
	}
	if after < 0 || after > rev || after < m.oldestLocked()-1 {
		return nil, ErrCompacted
	}
	return &memoryWatcher{m: m, service: service, next: after + 1, closed: make(chan struct{})}, nil
}

// oldestLocked is the oldest revision in the history (1 while nothing was
// overwritten). m.hmu must be held.
func (m *Memory) oldestLocked() int64 {
	return max(m.rev.Load()-int64(len(m.ring))+1, 1)
}

// memoryWatcher reads the store's history through a cursor. It has no
// buffer of its own: a watcher that falls behind by more than the history
// fails with ErrCompacted instead of holding up the store.
type memoryWatcher struct {
	m       *Memory
	service string

	mu        sync.Mutex // serializes Next
	next      int64      // the revision to deliver next
	err       error      // set when the watch failed for good
	closed    chan struct{}
	closeOnce sync.Once
}

// Next returns the next change. It may be called again after it returned
// ctx's error; any other error ends the watch.
func (w *memoryWatcher) Next(ctx context.Context) (Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return Event{}, w.err
	}
	for {
		ev, ok, wait, err := w.poll()
		if err != nil {
			w.err = err
			return Event{}, err
		}
		if ok {
			ev.Instance = cloneInstance(ev.Instance)
			return ev, nil
		}
		select {
		case <-wait:
		case <-w.closed:
			w.err = ErrClosed
			return Event{}, ErrClosed
		case <-w.m.done:
			w.err = ErrClosed
			return Event{}, ErrClosed
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// poll returns the next matching event if there is one, or the channel to
// wait on for more.
func (w *memoryWatcher) poll() (Event, bool, <-chan struct{}, error) {
	m := w.m
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	select {
	case <-m.done:
		return Event{}, false, nil, ErrClosed
	case <-w.closed:
		return Event{}, false, nil, ErrClosed
	default:
	}
	if w.next < m.oldestLocked() {
		return Event{}, false, nil, ErrCompacted
	}
	for rev := m.rev.Load(); w.next <= rev; {
		ev := m.ring[(w.next-1)%int64(m.history)]
		w.next++
		if w.service == "" || ev.Instance.Service == w.service {
			return ev, true, nil, nil
		}
	}
	return Event{}, false, m.notify, nil
}

// Close ends the watch; Next then returns ErrClosed.
func (w *memoryWatcher) Close() error {
	w.closeOnce.Do(func() { close(w.closed) })
	return nil
}

// cloneInstance returns in with a copy of its metadata, so the caller may
// change it without touching the store.
func cloneInstance(in Instance) Instance {
	in.Metadata = cloneMeta(in.Metadata)
	return in
}

func cloneMeta(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	return maps.Clone(md)
}
