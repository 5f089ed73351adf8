package registry

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// Defaults of EtcdOptions.
const (
	DefaultEtcdPrefix      = "/portico/registry/"
	DefaultEtcdDialTimeout = 5 * time.Second
	DefaultEtcdTimeout     = 5 * time.Second
)

// EtcdOptions configures NewEtcd.
type EtcdOptions struct {
	// Endpoints are the cluster's client URLs ("http://10.0.0.1:2379";
	// https uses the system's root certificates). Required.
	Endpoints []string
	// Prefix is the key prefix the registry lives under. Every gateway
	// sharing a registry uses the same one. Empty means DefaultEtcdPrefix
	// ("/portico/registry/"); a missing trailing "/" is added.
	Prefix string
	// DialTimeout bounds connecting to the cluster in NewEtcd. Zero means
	// DefaultEtcdDialTimeout (5s).
	DialTimeout time.Duration
	// Timeout bounds each call whose context has no deadline. Zero means
	// DefaultEtcdTimeout (5s).
	Timeout time.Duration
	// Username and Password authenticate to etcd when Username is set.
	Username, Password string
	// Grace is how long an instance stays listed as critical after its TTL
	// passed without a heartbeat, as in MemoryOptions: zero means
	// DefaultGrace (30s); negative removes it when its TTL passes. etcd
	// counts whole seconds, so a positive grace is rounded up to one.
	Grace time.Duration
	// Logger receives what the store cannot return to a caller (a value
	// in etcd that does not decode, a lease it failed to revoke). Nil
	// discards it.
	Logger *slog.Logger
}

// Etcd is a Store kept in an etcd cluster, so that several gateways serve
// one registry. It is safe for concurrent use. A gateway that only
// discovers instances uses Instances and Watch, which write nothing.
//
// Each instance is two keys under the prefix:
//
//	instances/<service>/<id>  the instance as JSON, on a lease of TTL + grace
//	alive/<service>/<id>      empty, on a second lease of TTL
//
// A heartbeat renews both leases. An instance is passing while its alive
// key exists and critical once etcd expired it; etcd removes the instance
// when the first lease expires too. The registry's revisions are etcd's:
// a listing has the revision it was read at, an event the revision of its
// change. etcd leases count whole seconds, so TTLs are rounded up, and a
// cluster raises a TTL below its minimum (1.5 election timeouts: 2s with
// etcd's defaults); Instance.TTL is the TTL granted.
//
// Listings show LastHeartbeat as of the last write of the instance (its
// registration, or its return from critical): heartbeats only renew
// leases, so they cost no write and no event. A Heartbeat's answer has
// the time of that heartbeat.
type Etcd struct {
	cli      *clientv3.Client
	prefix   string
	eps      string // for error messages
	timeout  time.Duration
	grace    time.Duration // < 0: one lease, no critical phase
	logger   *slog.Logger
	ctx      context.Context // canceled by Close; ends watches
	cancel   context.CancelFunc
	closeErr error
	once     sync.Once

	mu      sync.Mutex
	leases  map[string]*etcdEntry // by "service/id": saves a Get per heartbeat
	sweepAt int                   // len(leases) that triggers the next sweep
}

var _ Store = (*Etcd)(nil)

// etcdRecord is the JSON value of an instance key: the instance and the
// leases that keep it. Status and Revision are not stored; they come from
// the alive key and etcd's revisions.
type etcdRecord struct {
	Instance
	LeaseID      int64 `json:"lease_id"`
	AliveLeaseID int64 `json:"alive_lease_id"`
}

// etcdEntry is what the store knows of an instance it registered or
// heartbeated.
type etcdEntry struct {
	rec     etcdRecord
	modRev  int64     // the instance key's ModRevision
	expires time.Time // when the instance lease ends unless renewed
}

// NewEtcd connects to the cluster and checks that it answers within
// DialTimeout (or ctx's deadline, if sooner); the error then wraps
// ErrUnavailable. ctx bounds only that check. Close the store to
// disconnect.
func NewEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("registry: etcd endpoints: at least one is required")
	}
	useTLS := false
	for i, ep := range opts.Endpoints {
		tlsEP, err := checkEndpoint(ep)
		if err != nil {
			return nil, fmt.Errorf("registry: etcd endpoints[%d] %q: %w", i, ep, err)
		}
		useTLS = useTLS || tlsEP
	}
	prefix := cmp.Or(opts.Prefix, DefaultEtcdPrefix)
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	dial := cmp.Or(max(opts.DialTimeout, 0), DefaultEtcdDialTimeout)
	timeout := cmp.Or(max(opts.Timeout, 0), DefaultEtcdTimeout)
	cfg := clientv3.Config{
		Endpoints:   slices.Clone(opts.Endpoints),
		DialTimeout: dial,
		// Find a dead connection within seconds, not at the next call.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: timeout,
		PermitWithoutStream:  true,
		Username:             opts.Username,
		Password:             opts.Password,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			// Reconnect within seconds of the cluster coming back,
			// instead of gRPC's default backoff of up to two minutes.
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: dial,
		})},
	}
	if useTLS {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Etcd{
		prefix:  prefix,
		eps:     strings.Join(opts.Endpoints, ","),
		timeout: timeout,
		grace:   cmp.Or(opts.Grace, DefaultGrace),
		logger:  logger,
		leases:  make(map[string]*etcdEntry),
		sweepAt: 1024,
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, e.fail("connect", err)
	}
	e.cli = cli
	e.ctx, e.cancel = context.WithCancel(context.Background())
	cctx, cancel := context.WithTimeout(ctx, dial)
	defer cancel()
	if _, err := cli.Get(cctx, prefix, clientv3.WithCountOnly()); err != nil {
		err = e.fail("connect", err)
		_ = e.Close()
		return nil, err
	}
	return e, nil
}

// checkEndpoint accepts http://host:port, https://host:port or host:port,
// and reports whether ep uses TLS.
func checkEndpoint(ep string) (bool, error) {
	hostport := ep
	tlsEP := false
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return false, err
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return false, errors.New("scheme must be http or https")
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return false, errors.New("want scheme://host:port only")
		}
		hostport, tlsEP = u.Host, u.Scheme == "https"
	}
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		return false, errors.New("want host:port, http://host:port or https://host:port")
	}
	return tlsEP, nil
}

// Keys.
const (
	etcdInstances = "instances/"
	etcdAlive     = "alive/"
)

func (e *Etcd) instanceKey(service, id string) string {
	return e.prefix + etcdInstances + service + "/" + id
}

func (e *Etcd) aliveKey(service, id string) string { return e.prefix + etcdAlive + service + "/" + id }

// ttlSeconds rounds d up to whole seconds, at least one.
func ttlSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// Register adds in, or replaces the instance with the same service and ID,
// as passing with the given TTL.
func (e *Etcd) Register(ctx context.Context, in Instance, ttl time.Duration) (Instance, error) {
	out, _, err := e.registerCtx(ctx, in, ttl)
	return out, err
}

// register is Register that reports whether an entry was replaced; the
// handler uses it to answer 201 or 200.
func (e *Etcd) register(in Instance, ttl time.Duration) (Instance, bool, error) {
	return e.registerCtx(context.Background(), in, ttl)
}

func (e *Etcd) registerCtx(ctx context.Context, in Instance, ttl time.Duration) (Instance, bool, error) {
	if err := Validate(&in); err != nil {
		return Instance{}, false, err
	}
	if ttl <= 0 {
		return Instance{}, false, invalid("ttl", "must be positive")
	}
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return Instance{}, false, err
	}
	defer cancel()
	alive, lease, err := e.grantLeases(ctx, ttlSeconds(ttl))
	if err != nil {
		return Instance{}, false, err
	}
	now := time.Now().UTC()
	in.Metadata = maps.Clone(in.Metadata)
	in.TTL = Duration(time.Duration(alive.TTL) * time.Second)
	in.RegisteredAt, in.LastHeartbeat = now, now
	in.Status, in.Revision = "", 0
	rec := etcdRecord{Instance: in, LeaseID: int64(lease.ID), AliveLeaseID: int64(alive.ID)}
	val, err := json.Marshal(rec)
	if err != nil {
		return Instance{}, false, fmt.Errorf("registry: encode instance: %w", err)
	}
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpPut(e.instanceKey(in.Service, in.ID), string(val), clientv3.WithLease(lease.ID), clientv3.WithPrevKV()),
		clientv3.OpPut(e.aliveKey(in.Service, in.ID), "", clientv3.WithLease(alive.ID), clientv3.WithPrevKV()),
	).Commit()
	if err != nil {
		go e.revoke(alive.ID, lease.ID)
		return Instance{}, false, e.fail("register", err)
	}
	rev := resp.Header.Revision
	// The keys moved to the new leases; the old ones hold nothing now.
	// Revoking them ends heartbeats that still use them (ErrNotFound: a
	// gateway that cached them reads the instance again).
	prevI := resp.Responses[0].GetResponsePut().GetPrevKv()
	prevA := resp.Responses[1].GetResponsePut().GetPrevKv()
	var old []clientv3.LeaseID
	if prevI != nil {
		old = append(old, clientv3.LeaseID(prevI.Lease))
		var prev etcdRecord
		if json.Unmarshal(prevI.Value, &prev) == nil {
			old = append(old, clientv3.LeaseID(prev.LeaseID), clientv3.LeaseID(prev.AliveLeaseID))
		}
	}
	if prevA != nil {
		old = append(old, clientv3.LeaseID(prevA.Lease))
	}
	old = slices.DeleteFunc(old, func(id clientv3.LeaseID) bool { return id == lease.ID || id == alive.ID })
	e.revoke(old...)

	e.remember(in.Service, in.ID, &etcdEntry{rec: rec, modRev: rev, expires: time.Now().Add(time.Duration(lease.TTL) * time.Second)})
	in.Metadata = maps.Clone(in.Metadata) // the cached record keeps its own
	in.Status, in.Revision = StatusPassing, rev
	return in, prevI != nil, nil
}

// grantLeases grants the alive lease (ttl seconds) and the instance lease
// (ttl + grace), at once; with no grace period they are one lease. The
// cluster may raise a TTL below its minimum, and the instance lease must
// outlast the alive lease by the grace period: when it would not, a longer
// one is granted.
func (e *Etcd) grantLeases(ctx context.Context, ttl int64) (alive, lease *clientv3.LeaseGrantResponse, err error) {
	if e.grace <= 0 {
		alive, err = e.cli.Grant(ctx, ttl)
		if err != nil {
			return nil, nil, e.fail("grant lease", err)
		}
		return alive, alive, nil
	}
	grace := ttlSeconds(e.grace)
	var aliveErr error
	var wg sync.WaitGroup
	wg.Go(func() { alive, aliveErr = e.cli.Grant(ctx, ttl) })
	lease, err = e.cli.Grant(ctx, ttl+grace)
	wg.Wait()
	if err == nil && aliveErr == nil && lease.TTL < alive.TTL+grace {
		go e.revoke(lease.ID)
		lease, err = e.cli.Grant(ctx, alive.TTL+grace)
	}
	if aliveErr != nil {
		err = aliveErr
	}
	if err != nil {
		var granted []clientv3.LeaseID
		for _, g := range []*clientv3.LeaseGrantResponse{alive, lease} {
			if g != nil {
				granted = append(granted, g.ID)
			}
		}
		go e.revoke(granted...)
		return nil, nil, e.fail("grant lease", err)
	}
	return alive, lease, nil
}

// Heartbeat renews the instance's leases. A passing instance changes
// nothing in etcd, so no event is emitted; a critical one gets a new alive
// key and becomes passing again (a put event).
func (e *Etcd) Heartbeat(ctx context.Context, service, id string) (Instance, error) {
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return Instance{}, err
	}
	defer cancel()
	ent := e.cached(service, id)
	// An entry is stale when its instance is gone, or when another
	// gateway replaced or revived it (then a fresh read finds it). Three
	// reads cover racing with such changes.
	for attempt := 0; ; attempt++ {
		if ent == nil {
			if ent, err = e.load(ctx, service, id); err != nil {
				if errors.Is(err, ErrNotFound) {
					e.forget(service, id)
				}
				return Instance{}, err
			}
		}
		out, err := e.renew(ctx, ent)
		if !errors.Is(err, errStale) {
			return out, err // on other errors, the cached entry stays valid
		}
		e.forget(service, id)
		if attempt == 2 {
			return Instance{}, ErrNotFound
		}
		ent = nil
	}
}

// errStale: the leases an entry names are gone, or the instance changed.
var errStale = errors.New("registry: etcd entry changed")

// load reads an instance key into an entry.
func (e *Etcd) load(ctx context.Context, service, id string) (*etcdEntry, error) {
	key := e.instanceKey(service, id)
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return nil, e.fail("get instance", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	kv := resp.Kvs[0]
	rec, ok := e.decode(kv.Key, kv.Value, service, id)
	if !ok || kv.Lease == 0 {
		return nil, ErrNotFound // registering again repairs it
	}
	rec.LeaseID = kv.Lease // the key's own lease is the authority
	return &etcdEntry{rec: *rec, modRev: kv.ModRevision}, nil
}

// renew keeps both of ent's leases alive, reviving the alive key if its
// lease expired, and returns the instance as passing. ent may be shared
// with other heartbeats: it is not modified.
func (e *Etcd) renew(ctx context.Context, shared *etcdEntry) (Instance, error) {
	ent := *shared
	rec := &ent.rec
	var aliveErr error
	var wg sync.WaitGroup
	if rec.AliveLeaseID != rec.LeaseID {
		wg.Go(func() { aliveErr = e.keepAlive(ctx, rec.AliveLeaseID) })
	}
	err := e.keepAlive(ctx, rec.LeaseID)
	wg.Wait()
	if err != nil {
		return Instance{}, err
	}
	now := time.Now()
	if errors.Is(aliveErr, errStale) {
		if err := e.revive(ctx, &ent, now); err != nil {
			return Instance{}, err
		}
	} else if aliveErr != nil {
		return Instance{}, aliveErr
	}
	leaseTTL := time.Duration(ttlSeconds(rec.TTL.D()+max(e.grace, 0))) * time.Second
	next := &etcdEntry{rec: *rec, modRev: ent.modRev, expires: now.Add(leaseTTL)}
	next.rec.LastHeartbeat = now.UTC()
	e.remember(rec.Service, rec.ID, next)
	out := next.rec.Instance
	out.Metadata = maps.Clone(out.Metadata)
	out.Status, out.Revision = StatusPassing, ent.modRev
	return out, nil
}

// keepAlive renews one lease; errStale when it no longer exists.
func (e *Etcd) keepAlive(ctx context.Context, id int64) error {
	if id == 0 {
		return errStale
	}
	_, err := e.cli.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return errStale
	}
	if err != nil {
		return e.fail("renew lease", err)
	}
	return nil
}

// revive puts the alive key of a critical instance back under a new lease,
// and records that lease in the instance, unless the instance changed
// since ent was read (errStale). It updates ent.
func (e *Etcd) revive(ctx context.Context, ent *etcdEntry, now time.Time) error {
	rec := ent.rec
	alive, err := e.cli.Grant(ctx, ttlSeconds(rec.TTL.D()))
	if err != nil {
		return e.fail("grant lease", err)
	}
	rec.AliveLeaseID = int64(alive.ID)
	rec.LastHeartbeat = now.UTC()
	val, err := json.Marshal(rec)
	if err != nil {
		go e.revoke(alive.ID)
		return fmt.Errorf("registry: encode instance: %w", err)
	}
	ikey := e.instanceKey(rec.Service, rec.ID)
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(ikey), "=", ent.modRev)).
		Then(
			clientv3.OpPut(ikey, string(val), clientv3.WithLease(clientv3.LeaseID(rec.LeaseID))),
			clientv3.OpPut(e.aliveKey(rec.Service, rec.ID), "", clientv3.WithLease(alive.ID)),
		).Commit()
	if err != nil || !resp.Succeeded {
		go e.revoke(alive.ID)
		if err != nil {
			return e.fail("revive instance", err)
		}
		return errStale
	}
	ent.rec, ent.modRev = rec, resp.Header.Revision
	return nil
}

// Deregister removes the instance's keys at once and revokes its leases.
func (e *Etcd) Deregister(ctx context.Context, service, id string) error {
	ctx, cancel, err := e.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	// One transaction, so that watchers see one delete and no passage
	// through critical.
	resp, err := e.cli.Txn(ctx).Then(
		clientv3.OpDelete(e.instanceKey(service, id), clientv3.WithPrevKV()),
		clientv3.OpDelete(e.aliveKey(service, id), clientv3.WithPrevKV()),
	).Commit()
	if err != nil {
		return e.fail("deregister", err)
	}
	e.forget(service, id)
	var leases []clientv3.LeaseID
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseDeleteRange().GetPrevKvs() {
			leases = append(leases, clientv3.LeaseID(kv.Lease))
		}
	}
	// Revoked so that a heartbeat through another gateway that cached
	// them fails instead of renewing leases that hold nothing.
	e.revoke(leases...)
	if resp.Responses[0].GetResponseDeleteRange().GetDeleted() == 0 {
		return ErrNotFound
	}
	return nil
}

// revoke revokes leases at once, skipping zero and repeated IDs. It waits
// at most the store's timeout and only logs failures: the leases expire by
// themselves anyway. Leases granted for a call that failed are revoked in
// the background, so that the failure is not delayed.
func (e *Etcd) revoke(ids ...clientv3.LeaseID) {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	ids = slices.DeleteFunc(ids, func(id clientv3.LeaseID) bool { return id == 0 })
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			_, err := e.cli.Revoke(ctx, id)
			if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && e.ctx.Err() == nil {
				e.logger.Warn("registry: could not revoke an etcd lease; it expires by itself", "lease", int64(id), "err", err)
			}
		})
	}
	wg.Wait()
}

// cached returns the entry the store holds for the instance, or nil.
func (e *Etcd) cached(service, id string) *etcdEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leases[service+"/"+id]
}

// remember caches ent. Entries of instances that stopped heartbeating
// through this store are swept once their leases expired, when the cache
// doubled since the last sweep.
func (e *Etcd) remember(service, id string, ent *etcdEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leases[service+"/"+id] = ent
	if len(e.leases) < e.sweepAt {
		return
	}
	now := time.Now()
	maps.DeleteFunc(e.leases, func(_ string, v *etcdEntry) bool { return now.After(v.expires) })
	e.sweepAt = max(2*len(e.leases), 1024)
}

func (e *Etcd) forget(service, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.leases, service+"/"+id)
}

// Close ends every watch (their Next returns ErrClosed) and disconnects.
// Later calls fail with ErrClosed. Close is idempotent.
func (e *Etcd) Close() error {
	e.once.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		if e.cli != nil {
			if err := e.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
				e.closeErr = fmt.Errorf("registry: close etcd client: %w", err)
			}
		}
	})
	return e.closeErr
}

// begin checks that the store is open and bounds ctx by the store's
// timeout when it has no deadline.
func (e *Etcd) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if e.ctx.Err() != nil {
		return nil, nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	return ctx, cancel, nil
}

// fail wraps an etcd client error of op: ErrClosed after Close,
// ErrCompacted for a revision out of etcd's history, ErrUnavailable for a
// cluster that cannot be reached or has no leader, as is otherwise.
func (e *Etcd) fail(op string, err error) error {
	switch {
	case e.ctx != nil && e.ctx.Err() != nil:
		return fmt.Errorf("registry: etcd %s: %w", op, ErrClosed)
	case errors.Is(err, rpctypes.ErrCompacted), errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("registry: etcd %s: %w: %w", op, ErrCompacted, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("registry: etcd %s: %w", op, err)
	case unavailable(err):
		return fmt.Errorf("%w: etcd %s at %s: %w", ErrUnavailable, op, e.eps, err)
	}
	return fmt.Errorf("registry: etcd %s at %s: %w", op, e.eps, err)
}

// unavailable reports whether err says the cluster could not answer.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable || ee.Code() == codes.DeadlineExceeded
	}
	if s, ok := grpcstatus.FromError(err); ok {
		return s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded
	}
	return false
}
