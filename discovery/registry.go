package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/portico-dev/portico/registry"
)

// Filter selects the registry instances of a service that become
// endpoints. Only passing instances are ever selected.
//
// Version and Metadata are matched against the Meta the endpoint would
// carry: the instance's metadata with its Version, Zone, ID and Contract
// stored under MetaVersion, MetaZone, MetaInstance and MetaContract (these
// win over metadata keys of the same name). So {"zone": "a"} selects the
// instances whose Zone is "a".
type Filter struct {
	// Service is the service whose instances are watched. Required.
	Service string
	// Version, when set, keeps only the instances of that version.
	Version string
	// Metadata, when set, keeps only the instances that carry every pair.
	Metadata map[string]string
}

// match reports whether an endpoint with meta passes the filter.
func (f *Filter) match(meta map[string]string) bool {
	if f.Version != "" && meta[MetaVersion] != f.Version {
		return false
	}
	for k, v := range f.Metadata {
		if got, ok := meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// RegistryOptions tune a registry provider. The zero value is ready to use.
type RegistryOptions struct {
	// Kind is what the provider's Kind returns. If empty, "registry"; the
	// gateway passes "etcd" for a registry kept in etcd.
	Kind string
	// Logger receives the provider's debug logs (retries, resyncs,
	// duplicate addresses). Failures themselves go to the sink. If nil,
	// nothing is logged.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the jittered, exponentially growing
	// wait between attempts while the registry fails. Defaults 100ms and
	// 5s; when only MaxBackoff is set below 100ms, MinBackoff follows it.
	MinBackoff, MaxBackoff time.Duration
	// Settle is how long the provider gathers further changes after one
	// before it pushes the new set, so a burst of registrations becomes a
	// few pushes rather than one per instance. The window starts at the
	// first change, so no change waits longer than Settle. If zero, 20ms;
	// negative pushes after every change.
	Settle time.Duration
}

const (
	defaultSettle     = 20 * time.Millisecond
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
)

// registryProvider follows one service's instances in a registry.Reader:
// the gateway's own store, a remote registry's client, or etcd.
type registryProvider struct {
	r          registry.Reader
	f          Filter
	kind       string
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	settle     time.Duration
}

var _ Provider = (*registryProvider)(nil)

// NewRegistry returns a provider of the passing instances of f.Service in r
// that match f: the gateway's own store, a remote registry's Client, or
// etcd, all of which are a registry.Reader.
//
// Its Run lists the instances, starts watching the changes after the
// listing's revision, pushes the set, then pushes a complete set whenever a
// change alters it (bursts are coalesced, see RegistryOptions.Settle). When
// the watch falls behind the registry's history it lists again, which is
// no failure. When r fails it reports the failure to the sink once, keeps
// the last set, and retries with backoff (listing again, then watching)
// until r answers; the Update that follows clears the failure.
//
// An instance becomes the endpoint scheme://address, with its Scheme(),
// its Weight, and as Meta its metadata plus the Meta* keys of its fields.
// Endpoints are sorted by URL; of instances sharing an address, the most
// recently changed one is kept.
func NewRegistry(r registry.Reader, f Filter, opts RegistryOptions) (Provider, error) {
	if r == nil {
		return nil, errors.New("discovery: registry reader is nil")
	}
	if f.Service == "" {
		return nil, errors.New("discovery: registry filter: service is required")
	}
	if opts.MinBackoff < 0 {
		return nil, fmt.Errorf("discovery: registry options: MinBackoff %v is negative", opts.MinBackoff)
	}
	if opts.MaxBackoff < 0 {
		return nil, fmt.Errorf("discovery: registry options: MaxBackoff %v is negative", opts.MaxBackoff)
	}
	p := &registryProvider{
		r:          r,
		f:          Filter{Service: f.Service, Version: f.Version, Metadata: maps.Clone(f.Metadata)},
		kind:       cmp.Or(opts.Kind, "registry"),
		minBackoff: opts.MinBackoff,
		maxBackoff: cmp.Or(opts.MaxBackoff, defaultMaxBackoff),
		settle:     cmp.Or(opts.Settle, defaultSettle),
	}
	if p.minBackoff == 0 {
		p.minBackoff = min(defaultMinBackoff, p.maxBackoff)
	}
	if p.minBackoff > p.maxBackoff {
		return nil, fmt.Errorf("discovery: registry options: MinBackoff %v is above MaxBackoff %v", p.minBackoff, p.maxBackoff)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p.log = logger.With("provider", p.kind, "service", f.Service)
	return p, nil
}

// Kind returns RegistryOptions.Kind ("registry" by default).
func (p *registryProvider) Kind() string { return p.kind }

// Run follows the registry until ctx ends, then returns nil. It returns an
// error only for a nil sink.
func (p *registryProvider) Run(ctx context.Context, sink Sink) error {
	if sink == nil {
		return errors.New("discovery: registry provider: nil sink")
	}
	run := &registryRun{p: p, sink: sink, instances: map[string]*tracked{}, noted: map[string]bool{}}
	backoff := p.minBackoff
	compacted := 0 // consecutive resyncs without progress
	for ctx.Err() == nil {
		start := time.Now()
		watched, events, err := run.session(ctx)
		if ctx.Err() != nil {
			break
		}
		// A session that followed the registry for a while, or saw a
		// change, proves it works: the next failure starts from the
		// shortest wait again.
		if watched && (events > 0 || time.Since(start) >= p.maxBackoff) {
			backoff, compacted = p.minBackoff, 0
		}
		if errors.Is(err, registry.ErrCompacted) {
			compacted++
			p.log.Debug("registry watch fell behind its history; listing again", "err", err)
			if compacted == 1 {
				continue
			}
			// Compacted again before seeing any change: the registry
			// churns faster than a listing; pace the resyncs, but they
			// are no failure.
		} else {
			run.fail(err)
		}
		wait := jittered(backoff)
		p.log.Debug("registry discovery retrying", "in", wait, "err", err)
		if !sleepOrDone(ctx, wait) {
			break
		}
		backoff = min(backoff*2, p.maxBackoff)
	}
	return nil
}

// registryRun is the state of one Run: the instances as last seen and what
// the sink was last told.
type registryRun struct {
	p    *registryProvider
	sink Sink
	// instances are the service's instances by ID, as listed and then
	// changed by watch events.
	instances map[string]*tracked
	// floor is the revision of the listing the instances started from.
	floor int64
	// last is the set last pushed; pushed tells a pushed empty set from
	// none yet.
	last   []*tracked
	pushed bool
	// failing: Fail was called and no Update has followed.
	failing bool
	// noted holds the log-once keys of conditions still present.
	noted map[string]bool
}

// session lists the instances, pushes the set once the watch is in place
// and follows the watch until it fails or ctx ends. watched reports that
// the watch was established; events counts the changes it delivered.
func (run *registryRun) session(ctx context.Context) (watched bool, events int, err error) {
	p := run.p
	list, rev, err := p.r.Instances(ctx, p.f.Service)
	if err != nil {
		return false, 0, fmt.Errorf("list instances: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := p.r.Watch(wctx, p.f.Service, rev)
	if err != nil {
		return false, 0, fmt.Errorf("watch: %w", err)
	}
	if rev == 0 {
		// Watching after revision 0 means "from now on", not "from the
		// beginning": a change made between the listing and the watch
		// would be lost. List again; the watch may then replay changes
		// the new listing holds, which apply skips.
		if list, rev, err = p.r.Instances(ctx, p.f.Service); err != nil {
			_ = w.Close()
			return false, 0, fmt.Errorf("list instances: %w", err)
		}
	}
	run.reset(list, rev)
	// The set is pushed only now, so that recovering from a failure (which
	// the Update reports to the sink) means the watch works too.
	run.push()
	events, err = run.follow(wctx, w)
	if err != nil && !errors.Is(err, registry.ErrCompacted) {
		err = fmt.Errorf("watch: %w", err)
	}
	return true, events, err
}

// watchOutcome is what one Watcher.Next returned.
type watchOutcome struct {
	ev  registry.Event
	err error
}

// follow applies w's events until w fails or ctx ends, pushing the set at
// most Settle after a change. Next blocks, so a goroutine reads it and the
// loop can wait for an event and the settle timer at once.
func (run *registryRun) follow(ctx context.Context, w registry.Watcher) (int, error) {
	results := make(chan watchOutcome)
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := w.Next(pctx)
			select {
			case results <- watchOutcome{ev, err}:
			case <-pctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel()
		_ = w.Close()
		<-done
	}()

	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	pending := false
	events := 0
	for {
		select {
		case <-ctx.Done():
			return events, ctx.Err()
		case <-settle.C:
			pending = false
			run.push()
		case res := <-results:
			if res.err != nil {
				// What was applied is still true; push it unless a
				// listing is about to replace it.
				if pending && !errors.Is(res.err, registry.ErrCompacted) {
					run.push()
				}
				return events, res.err
			}
			events++
			if !run.apply(res.ev) {
				continue
			}
			switch {
			case run.p.settle < 0:
				run.push()
			case !pending:
				pending = true
				settle.Reset(run.p.settle)
			}
		}
	}
}

// tracked is one instance and what it becomes as an endpoint, worked out
// once per change rather than once per push.
type tracked struct {
	in registry.Instance
	// usable: passing, matching the filter, with a usable address; then
	// key is the endpoint's URL (the sort key) and ep the endpoint.
	usable  bool
	badAddr bool // passing and matching, but the address is unusable
	key     string
	ep      Endpoint
}

// track works out what in becomes.
func (run *registryRun) track(in registry.Instance) *tracked {
	t := &tracked{in: in}
	if in.Status != registry.StatusPassing {
		return t
	}
	meta := instanceMeta(&in)
	if !run.p.f.match(meta) {
		return t
	}
	u, ok := instanceURL(&in)
	if !ok {
		t.badAddr = true
		return t
	}
	t.usable, t.key = true, u.String()
	t.ep = Endpoint{URL: u, Weight: max(in.Weight, 0), Meta: meta}
	return t
}

// reset replaces the instances with a listing of revision rev.
func (run *registryRun) reset(list []registry.Instance, rev int64) {
	clear(run.instances)
	run.floor = rev
	for _, in := range list {
		if in.Service == run.p.f.Service && in.ID != "" {
			run.instances[in.ID] = run.track(in)
		}
	}
}

// apply records one change and reports whether it may change the endpoint
// set: an instance that is no endpoint before or after the change (critical,
// filtered out) changes nothing. Events the listing already reflects, or
// older than what is recorded of their instance, are ignored.
func (run *registryRun) apply(ev registry.Event) bool {
	in := ev.Instance
	if ev.Revision <= run.floor || in.Service != run.p.f.Service || in.ID == "" {
		return false
	}
	cur, known := run.instances[in.ID]
	if known && cur.in.Revision > ev.Revision {
		return false
	}
	switch ev.Type {
	case registry.EventPut:
		in.Revision = max(in.Revision, ev.Revision)
		t := run.track(in)
		run.instances[in.ID] = t
		return t.usable || t.badAddr || known && (cur.usable || cur.badAddr)
	case registry.EventDelete:
		delete(run.instances, in.ID)
		return known && (cur.usable || cur.badAddr)
	}
	run.p.log.Debug("ignoring registry event of unknown type", "type", ev.Type, "instance", in.ID)
	return false
}

// push sends the current set to the sink if it differs from the last one
// pushed, or if an Update must clear a reported failure. The sink gets
// copies: what it does with them cannot reach the provider's state.
func (run *registryRun) push() {
	set := run.build()
	if run.pushed && !run.failing && sameSet(set, run.last) {
		return
	}
	run.last, run.pushed, run.failing = set, true, false
	eps := make([]Endpoint, len(set))
	for i, t := range set {
		eps[i] = Endpoint{URL: cloneURL(t.ep.URL), Weight: t.ep.Weight, Meta: maps.Clone(t.ep.Meta)}
	}
	run.sink.Update(eps)
}

// fail reports err to the sink unless a failure is already reported.
func (run *registryRun) fail(err error) {
	if run.failing {
		return
	}
	run.failing = true
	run.sink.Fail(err)
}

// build returns the instances that become endpoints, one per address,
// sorted by URL.
func (run *registryRun) build() []*tracked {
	byAddr := make(map[string]*tracked, len(run.instances))
	var seen map[string]bool
	if len(run.noted) > 0 {
		seen = make(map[string]bool, len(run.noted))
	}
	for _, t := range run.instances {
		if t.badAddr {
			seen = run.note(seen, "address|"+t.in.ID+"|"+t.in.Address, "skipping instance with an unusable address",
				"instance", t.in.ID, "address", t.in.Address)
		}
		if !t.usable {
			continue
		}
		prev, dup := byAddr[t.in.Address]
		if !dup {
			byAddr[t.in.Address] = t
			continue
		}
		keep, drop := prev, t
		if newerInstance(&t.in, &prev.in) {
			keep, drop = t, prev
		}
		byAddr[t.in.Address] = keep
		seen = run.note(seen, "dup|"+t.in.Address, "instances share an address; keeping the most recently changed",
			"address", t.in.Address, "kept", keep.in.ID, "dropped", drop.in.ID)
	}
	// Forget conditions that are gone, so they are logged again if they
	// come back.
	if len(run.noted) > len(seen) {
		maps.DeleteFunc(run.noted, func(k string, _ bool) bool { return !seen[k] })
	}
	set := slices.Collect(maps.Values(byAddr))
	slices.SortFunc(set, func(a, b *tracked) int { return cmp.Compare(a.key, b.key) })
	return set
}

// note logs msg at debug level the first time key is seen while it stays
// present, and marks key in seen (made when nil), the keys present in this
// build.
func (run *registryRun) note(seen map[string]bool, key, msg string, args ...any) map[string]bool {
	if seen == nil {
		seen = make(map[string]bool)
	}
	seen[key] = true
	if !run.noted[key] {
		run.noted[key] = true
		run.p.log.Debug(msg, args...)
	}
	return seen
}

// newerInstance reports whether a was changed after b (the higher revision; the
// smaller ID breaks ties so the choice does not depend on map order).
func newerInstance(a, b *registry.Instance) bool {
	if a.Revision != b.Revision {
		return a.Revision > b.Revision
	}
	return a.ID < b.ID
}

// instanceMeta returns a new map of the instance's metadata and the Meta*
// keys of its fields.
func instanceMeta(in *registry.Instance) map[string]string {
	m := make(map[string]string, len(in.Metadata)+4)
	maps.Copy(m, in.Metadata)
	m[MetaInstance] = in.ID
	if in.Version != "" {
		m[MetaVersion] = in.Version
	}
	if in.Zone != "" {
		m[MetaZone] = in.Zone
	}
	if in.Contract != "" {
		m[MetaContract] = in.Contract
	}
	return m
}

// instanceURL returns scheme://address for the instance, or false when the
// address is not a plain host:port with a port in 1–65535 that a URL holds
// as it is (no user info, path or escaping). The registry validates
// addresses, but etcd can be written to directly.
func instanceURL(in *registry.Instance) (*url.URL, bool) {
	raw := in.Scheme() + "://" + in.Address
	u, err := url.Parse(raw)
	if err != nil || u.String() != raw || u.Host != in.Address || u.Hostname() == "" {
		return nil, false
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return nil, false
	}
	return u, true
}

// sameSet reports whether two sets made by build hold the same endpoints.
func sameSet(a, b []*tracked) bool {
	return slices.EqualFunc(a, b, func(x, y *tracked) bool {
		return x == y || x.key == y.key && x.ep.Weight == y.ep.Weight && maps.Equal(x.ep.Meta, y.ep.Meta)
	})
}

// jittered returns a random wait in [d/2, d].
func jittered(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleepOrDone waits d unless ctx ends first; it reports whether it waited.
func sleepOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
