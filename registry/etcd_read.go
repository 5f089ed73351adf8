package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Instances lists the instances of service (every service when empty),
// sorted by service then ID, and the revision they were read at. Both key
// ranges are read in one transaction, so at one revision.
func (e *Etcd) Instances(ctx context.Context, service string) ([]Instance, int64, error) {
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpGet(e.rangePrefix(etcdInstances, service), clientv3.WithPrefix()),
		clientv3.OpGet(e.rangePrefix(etcdAlive, service), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, 0, e.fail("list instances", err)
	}
	st := e.newState(resp.Responses[0].GetResponseRange().GetKvs(), resp.Responses[1].GetResponseRange().GetKvs())
	out := make([]Instance, 0, len(st.instances))
	for k, rec := range st.instances {
		in := rec.Instance
		in.Status = st.status(k)
		in.Revision = max(rec.Revision, st.alive[k])
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	return out, resp.Header.Revision, nil
}

// Instance returns one instance, or ErrNotFound.
func (e *Etcd) Instance(ctx context.Context, service, id string) (Instance, error) {
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return Instance{}, err
	}
	defer cancel()
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpGet(e.instanceKey(service, id)),
		clientv3.OpGet(e.aliveKey(service, id), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return Instance{}, e.fail("get instance", err)
	}
	st := e.newState(resp.Responses[0].GetResponseRange().GetKvs(), resp.Responses[1].GetResponseRange().GetKvs())
	k := service + "/" + id
	rec := st.instances[k]
	if rec == nil {
		return Instance{}, ErrNotFound
	}
	in := rec.Instance
	in.Status = st.status(k)
	in.Revision = max(rec.Revision, st.alive[k])
	return in, nil
}

// Services summarizes every service with at least one instance, sorted by
// name, from one listing.
func (e *Etcd) Services(ctx context.Context) ([]ServiceSummary, error) {
	list, _, err := e.Instances(ctx, "")
	if err != nil {
		return nil, err
	}
	out := []ServiceSummary{}
	for _, in := range list { // sorted by service
		if len(out) == 0 || out[len(out)-1].Name != in.Service {
			out = append(out, ServiceSummary{Name: in.Service})
		}
		s := &out[len(out)-1]
		s.Instances++
		if in.Status == StatusPassing {
			s.Passing++
		}
		if in.Version != "" && !slices.Contains(s.Versions, in.Version) {
			s.Versions = append(s.Versions, in.Version)
		}
	}
	for i := range out {
		slices.Sort(out[i].Versions)
	}
	return out, nil
}

// Revision returns the cluster's current revision.
func (e *Etcd) Revision(ctx context.Context) (int64, error) {
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	resp, err := e.cli.Get(ctx, e.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, e.fail("read revision", err)
	}
	return resp.Header.Revision, nil
}

// rangePrefix returns the key prefix of kind for service (every service
// when empty).
func (e *Etcd) rangePrefix(kind, service string) string {
	if service == "" {
		return e.prefix + kind
	}
	return e.prefix + kind + service + "/"
}

// parseKey splits a key under the prefix into its kind, service and id.
func (e *Etcd) parseKey(key []byte) (kind, service, id string, ok bool) {
	rest, ok := strings.CutPrefix(string(key), e.prefix)
	if !ok {
		return "", "", "", false
	}
	for _, k := range [...]string{etcdInstances, etcdAlive} {
		if r, found := strings.CutPrefix(rest, k); found {
			service, id, ok = strings.Cut(r, "/")
			ok = ok && service != "" && id != "" && !strings.Contains(id, "/")
			return k, service, id, ok
		}
	}
	return "", "", "", false
}

// decode reads an instance key's value; the key's service and id win over
// the value's. A value that does not decode is logged and reported as
// absent.
func (e *Etcd) decode(key, value []byte, service, id string) (*etcdRecord, bool) {
	var rec etcdRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		e.logger.Warn("registry: ignoring an etcd instance value that does not decode", "key", string(key), "err", err)
		return nil, false
	}
	rec.Service, rec.ID = service, id
	return &rec, true
}

// etcdState is the registry as read from etcd at one revision, or as
// followed by a watch.
type etcdState struct {
	// instances by "service/id"; Revision is the key's ModRevision, and
	// Status what a watch last reported.
	instances map[string]*etcdRecord
	// alive holds the ModRevision of each alive key, by "service/id".
	alive map[string]int64
}

// newState reads the key-values of the instances and alive ranges.
func (e *Etcd) newState(ikvs, akvs []*mvccpb.KeyValue) *etcdState {
	st := &etcdState{instances: make(map[string]*etcdRecord, len(ikvs)), alive: make(map[string]int64, len(akvs))}
	for _, kv := range akvs {
		if kind, service, id, ok := e.parseKey(kv.Key); ok && kind == etcdAlive {
			st.alive[service+"/"+id] = kv.ModRevision
		}
	}
	for _, kv := range ikvs {
		kind, service, id, ok := e.parseKey(kv.Key)
		if !ok || kind != etcdInstances {
			continue
		}
		if rec, ok := e.decode(kv.Key, kv.Value, service, id); ok {
			k := service + "/" + id
			rec.Revision = kv.ModRevision
			rec.Status = st.status(k)
			st.instances[k] = rec
		}
	}
	return st
}

// status is the status of the instance with key k.
func (st *etcdState) status(k string) string {
	if _, ok := st.alive[k]; ok {
		return StatusPassing
	}
	return StatusCritical
}

// Watch returns the changes to service (every service when empty) with a
// revision greater than after; after 0 means changes from now on. It fails
// with ErrCompacted when etcd compacted revision after, or when after is
// beyond the cluster's revision (a revision of another cluster: list
// again).
//
// The watch follows the whole prefix and keeps the watched instances in
// memory, to turn alive keys that come and go into status changes. It ends
// when ctx ends, when it is closed, or when the store is closed. While the
// cluster cannot be reached, Next keeps waiting: the etcd client
// reconnects and resumes after the last revision it received. A member
// that lost the cluster's leader ends the watch with ErrUnavailable
// instead of leaving it stuck, so that the caller lists again.
func (e *Etcd) Watch(ctx context.Context, service string, after int64) (Watcher, error) {
	if after < 0 {
		return nil, fmt.Errorf("registry: etcd watch after revision %d: %w", after, ErrCompacted)
	}
	st, rev, err := e.stateAt(ctx, service, after)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	stop := context.AfterFunc(e.ctx, cancel)
	w := &etcdWatcher{
		e:       e,
		service: service,
		st:      st,
		wctx:    wctx,
		closed:  make(chan struct{}),
		release: func() { stop(); cancel() },
		probe:   time.NewTimer(etcdWatchProbe),
	}
	w.wch = e.cli.Watch(wctx, e.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	return w, nil
}

// stateAt reads the watched instances at revision rev (the current one when
// 0) and returns them with the revision they were read at.
func (e *Etcd) stateAt(ctx context.Context, service string, rev int64) (*etcdState, int64, error) {
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpGet(e.rangePrefix(etcdInstances, service), opts...),
		clientv3.OpGet(e.rangePrefix(etcdAlive, service), append(opts, clientv3.WithKeysOnly())...),
	).Commit()
	if err != nil {
		return nil, 0, e.fail(fmt.Sprintf("watch after revision %d", rev), err)
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	st := e.newState(resp.Responses[0].GetResponseRange().GetKvs(), resp.Responses[1].GetResponseRange().GetKvs())
	return st, rev, nil
}

// etcdWatcher turns etcd's key events into registry events.
type etcdWatcher struct {
	e       *Etcd
	service string
	wch     clientv3.WatchChan
	wctx    context.Context
	release func() // ends the etcd watch

	mu      sync.Mutex // serializes Next; guards what follows
	st      *etcdState
	pending []Event
	err     error // set when the watch failed for good

	closed    chan struct{}
	closeOnce sync.Once

	// probe fires after etcdWatchProbe without a watch response: etcd's
	// client retries a lost connection silently, so the watcher asks the
	// cluster itself whether it is still there.
	probe *time.Timer
}

// etcdWatchProbe is how long a watch may go without a response before the
// watcher checks that the cluster answers; a cluster that does not ends the
// watch with ErrUnavailable, so its caller can report the outage.
const etcdWatchProbe = 3 * time.Second

// Next returns the next change. It may be called again after it returned
// ctx's error; any other error ends the watch.
func (w *etcdWatcher) Next(ctx context.Context) (Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		select {
		case <-w.closed:
			return Event{}, ErrClosed
		default:
		}
		if len(w.pending) > 0 {
			ev := w.pending[0]
			w.pending[0] = Event{}
			w.pending = w.pending[1:]
			return ev, nil
		}
		if w.err != nil {
			return Event{}, w.err
		}
		select {
		case resp, ok := <-w.wch:
			if !ok {
				w.err = w.ended()
				continue
			}
			w.probe.Reset(etcdWatchProbe)
			w.err = w.apply(&resp)
		case <-w.probe.C:
			if err := w.alive(); err != nil {
				w.err = err
				w.release()
				continue
			}
			w.probe.Reset(etcdWatchProbe)
		case <-w.closed:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// alive asks the cluster for one serializable count, bounded by the
// store's timeout, and returns the failure if it does not answer.
func (w *etcdWatcher) alive() error {
	ctx, cancel, err := w.e.begin(w.wctx)
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := w.e.cli.Get(ctx, w.e.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable()); err != nil {
		if w.wctx.Err() != nil {
			return w.ended()
		}
		return w.e.fail("watch", err)
	}
	return nil
}

// ended is the error of a watch whose etcd channel closed.
func (w *etcdWatcher) ended() error {
	if err := w.wctx.Err(); err != nil && w.e.ctx.Err() == nil {
		return fmt.Errorf("%w: watch context: %w", ErrClosed, err)
	}
	return ErrClosed
}

// apply turns one watch response into pending events.
func (w *etcdWatcher) apply(resp *clientv3.WatchResponse) error {
	if w.wctx.Err() != nil { // the client reports its cancellation as an error
		return w.ended()
	}
	if resp.CompactRevision != 0 {
		return fmt.Errorf("registry: etcd watch: %w (etcd keeps revisions from %d on)", ErrCompacted, resp.CompactRevision)
	}
	if err := resp.Err(); err != nil {
		return w.e.fail("watch", err)
	}
	// etcd does not split the events of one revision across responses;
	// one transaction's keys are applied together.
	evs := resp.Events
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Kv.ModRevision == evs[i].Kv.ModRevision {
			j++
		}
		w.applyRevision(evs[i].Kv.ModRevision, evs[i:j])
		i = j
	}
	return nil
}

// applyRevision applies the key events of one revision to the state, then
// emits one event per instance whose entry or status changed: a put of the
// instance key is a put, its delete a delete, and an alive key that comes
// or goes a put with the new status.
func (w *etcdWatcher) applyRevision(rev int64, evs []*clientv3.Event) {
	type touch struct {
		k, service, id string
		entry          bool // the instance key changed
	}
	var touched []touch
	seen := make(map[string]int, len(evs))
	for _, ev := range evs {
		kind, service, id, ok := w.e.parseKey(ev.Kv.Key)
		if !ok || w.service != "" && service != w.service {
			continue
		}
		k := service + "/" + id
		if kind == etcdAlive {
			if ev.Type == clientv3.EventTypePut {
				w.st.alive[k] = rev
			} else {
				delete(w.st.alive, k)
			}
		} else {
			var rec *etcdRecord
			if ev.Type == clientv3.EventTypePut {
				rec, _ = w.e.decode(ev.Kv.Key, ev.Kv.Value, service, id)
			}
			if rec != nil {
				w.st.instances[k] = rec
			} else { // deleted, or no longer decodes
				delete(w.st.instances, k)
			}
		}
		i, dup := seen[k]
		if !dup {
			i = len(touched)
			seen[k] = i
			touched = append(touched, touch{k: k, service: service, id: id})
		}
		touched[i].entry = touched[i].entry || kind == etcdInstances
	}
	for _, t := range touched {
		rec := w.st.instances[t.k]
		if rec == nil {
			if t.entry {
				w.pending = append(w.pending, Event{Type: EventDelete, Revision: rev,
					Instance: Instance{ID: t.id, Service: t.service, Revision: rev}})
			}
			continue // an alive key of an instance that is gone
		}
		status := w.st.status(t.k)
		if !t.entry && status == rec.Status {
			continue
		}
		rec.Status, rec.Revision = status, rev
		in := rec.Instance
		in.Metadata = maps.Clone(in.Metadata)
		w.pending = append(w.pending, Event{Type: EventPut, Instance: in, Revision: rev})
	}
}

// Close ends the watch; Next then returns ErrClosed.
func (w *etcdWatcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.closed)
		w.release()
		w.probe.Stop()
	})
	return nil
}
