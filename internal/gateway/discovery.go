package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/discovery"
	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/proxy"
	"github.com/portico-dev/portico/internal/gateway/upstream"
	"github.com/portico-dev/portico/internal/problem"
	"github.com/portico-dev/portico/registry"
)

// opener makes a service's provider when its source starts, so a provider
// that needs a connection (etcd) is set up off the reload path and retried
// until it can be.
type opener func(ctx context.Context) (discovery.Provider, func(), error)

// source runs one service's discovery provider and hands every endpoint set
// it finds to the service's pool, which reconciles it (see Pool.Update). It
// lives as long as the service's discovery settings and pool are unchanged,
// across reloads. When the provider fails, the pool keeps the last set.
type source struct {
	service string
	kind    string
	// key identifies the discovery settings the source was made from.
	key    string
	open   opener
	pool   *upstream.Pool
	topts  proxy.TransportOptions
	logger *slog.Logger

	updates  atomic.Uint64
	failures atomic.Uint64

	mu         sync.Mutex
	cancel     context.CancelFunc // set by start
	done       chan struct{}      // closed when the provider returned
	detached   bool               // stopped or replaced: later sets are dropped
	received   bool               // a set arrived since the source started
	count      int
	lastUpdate time.Time
	err        error
	errSince   time.Time
	h2c        bool // the pool's transport speaks cleartext HTTP/2
}

// sourceStatus is what /admin/services shows of a source.
type sourceStatus struct {
	Provider   string `json:"provider"`
	Endpoints  int    `json:"endpoints"`
	Synced     bool   `json:"synced"`
	LastUpdate string `json:"last_update,omitempty"`
	Updates    uint64 `json:"updates"`
	Failures   uint64 `json:"failures"`
	// Error is set while the provider fails; the last set keeps serving.
	Error      string `json:"error,omitempty"`
	ErrorSince string `json:"error_since,omitempty"`
}

// start runs the provider until stop. It is idempotent, and does nothing
// once the source is detached.
func (s *source) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached || s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.run(ctx)
}

// switched reports whether the source gave the pool a transport other
// than the one its settings describe.
func (s *source) switched() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h2c != s.topts.H2C
}

func (s *source) run(ctx context.Context) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		p, closeFn, err := s.open(ctx)
		if err == nil {
			err = p.Run(ctx, s)
			if closeFn != nil {
				closeFn()
			}
			if err == nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.Fail(err)
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// detach makes the source drop whatever its provider still delivers, at
// once, and stops the provider in the background.
func (s *source) detach() {
	s.mu.Lock()
	s.detached = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// stop detaches the source and waits (bounded) for its provider to return.
func (s *source) stop(timeout time.Duration) {
	s.detach()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(timeout):
		s.logger.Warn("discovery provider did not stop in time", "service", s.service, "provider", s.kind)
	}
}

// Update implements discovery.Sink: it hands the set to the pool.
func (s *source) Update(eps []discovery.Endpoint) {
	ueps := make([]*upstream.Endpoint, len(eps))
	h2c := false
	for i, e := range eps {
		ueps[i] = &upstream.Endpoint{URL: e.URL, Weight: e.Weight, Meta: e.Meta}
		h2c = h2c || e.URL.Scheme == "h2c"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	if h2c != s.h2c {
		s.switchTransport(h2c, eps)
	}
	s.pool.Update(ueps)
	s.updates.Add(1)
	first := !s.received
	s.received, s.count, s.lastUpdate = true, len(eps), time.Now()
	if s.err != nil {
		s.logger.Info("discovery recovered", "service", s.service, "provider", s.kind, "endpoints", len(eps),
			"failed_for", time.Since(s.errSince).Round(time.Millisecond).String())
		s.err = nil
	} else if first {
		s.logger.Info("discovered endpoints", "service", s.service, "provider", s.kind, "endpoints", len(eps))
	} else {
		s.logger.Debug("discovered endpoints", "service", s.service, "provider", s.kind, "endpoints", len(eps))
	}
}

// switchTransport gives the pool a transport that speaks cleartext HTTP/2
// when the service's instances do (h2c and grpc instances), or HTTP/1.1
// again. One transport serves a service, so a service whose instances mix
// both cannot be served correctly; that is logged.
func (s *source) switchTransport(h2c bool, eps []discovery.Endpoint) {
	if h2c {
		for _, e := range eps {
			if e.URL.Scheme == "http" {
				s.logger.Warn("service mixes h2c and http instances; all are sent cleartext HTTP/2",
					"service", s.service, "provider", s.kind)
				break
			}
		}
	}
	o := s.topts
	o.H2C = h2c
	tr, err := proxy.NewTransport(o)
	if err != nil {
		s.logger.Error("transport for discovered endpoints", "service", s.service, "err", err)
		return
	}
	old := s.pool.SetTransport(tr)
	s.h2c = h2c
	if c, ok := old.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Fail implements discovery.Sink: the pool keeps its set and the failure
// is shown until the next Update.
func (s *source) Fail(err error) {
	s.failures.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detached {
		return
	}
	if s.err == nil {
		s.errSince = time.Now()
		s.logger.Warn("discovery failed; the last known endpoints keep serving", "service", s.service,
			"provider", s.kind, "endpoints", s.count, "err", err)
	}
	s.err = err
}

func (s *source) status() sourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := sourceStatus{Provider: s.kind, Endpoints: s.count, Synced: s.received,
		Updates: s.updates.Load(), Failures: s.failures.Load()}
	if !s.lastUpdate.IsZero() {
		st.LastUpdate = s.lastUpdate.UTC().Format(time.RFC3339Nano)
	}
	if s.err != nil {
		st.Error = s.err.Error()
		st.ErrorSince = s.errSince.UTC().Format(time.RFC3339Nano)
	}
	return st
}

// discoveryKey identifies a service's discovery settings and the transport
// settings its source switches between.
func discoveryKey(sc *config.Service, topts proxy.TransportOptions) string {
	b, err := json.Marshal(sc.Discovery)
	if err != nil {
		b = []byte(err.Error())
	}
	return fmt.Sprintf("%s|%+v", b, topts)
}

// newSource prepares (without starting) the source of a discovered service.
func (s *Server) newSource(sc *config.Service, pool *upstream.Pool, topts proxy.TransportOptions, key string) (*source, error) {
	open, kind, err := s.opener(sc)
	if err != nil {
		return nil, err
	}
	return &source{service: sc.Name, kind: kind, key: key, open: open, pool: pool, topts: topts,
		h2c: topts.H2C, logger: s.logger}, nil
}

// opener returns how to make the provider of sc's discovery settings.
func (s *Server) opener(sc *config.Service) (opener, string, error) {
	d := sc.Discovery
	switch {
	case d.Registry != nil:
		rd := d.Registry
		f := discovery.Filter{Service: orName(rd.Service, sc.Name), Version: rd.Version, Metadata: rd.Metadata}
		opts := discovery.RegistryOptions{Logger: s.logger}
		if rd.URL == "" {
			if s.registry == nil {
				return nil, "", errors.New("discovery.registry: the gateway's registry is not enabled; set registry.enabled or discovery.registry.url")
			}
			store := s.registry
			return func(context.Context) (discovery.Provider, func(), error) {
				p, err := discovery.NewRegistry(store, f, opts)
				return p, nil, err
			}, "registry", nil
		}
		c, err := registry.NewClient(rd.URL, registry.ClientOptions{Token: rd.Token, Logger: s.logger})
		if err != nil {
			return nil, "", fmt.Errorf("discovery.registry.url: %w", err)
		}
		return func(context.Context) (discovery.Provider, func(), error) {
			p, err := discovery.NewRegistry(c, f, opts)
			return p, nil, err
		}, "registry", nil
	case d.Etcd != nil:
		ed := d.Etcd
		f := discovery.Filter{Service: orName(ed.Service, sc.Name), Version: ed.Version, Metadata: ed.Metadata}
		eo := registry.EtcdOptions{Endpoints: ed.Endpoints, Prefix: ed.Prefix, DialTimeout: ed.DialTimeout.D(),
			Username: ed.Username, Password: ed.Password, Logger: s.logger}
		return func(ctx context.Context) (discovery.Provider, func(), error) {
			store, release, err := s.etcdStores.acquire(ctx, eo)
			if err != nil {
				return nil, nil, err
			}
			p, err := discovery.NewRegistry(store, f, discovery.RegistryOptions{Kind: "etcd", Logger: s.logger})
			if err != nil {
				release()
				return nil, nil, err
			}
			return p, release, nil
		}, "etcd", nil
	case d.DNS != nil:
		dd := d.DNS
		p, err := discovery.NewDNS(discovery.DNSConfig{Name: dd.Name, Type: dd.Type, Port: dd.Port, Scheme: dd.Scheme,
			Resolvers: dd.Resolvers, Interval: dd.Interval.D(), MinInterval: dd.MinInterval.D(), Timeout: dd.Timeout.D(),
			Metadata: dd.Metadata, Logger: s.logger})
		if err != nil {
			return nil, "", fmt.Errorf("discovery.dns: %w", err)
		}
		return func(context.Context) (discovery.Provider, func(), error) { return p, nil, nil }, "dns", nil
	}
	return nil, "", errors.New("discovery: no provider configured")
}

// etcdStores shares one etcd connection among the services discovered
// from the same cluster and prefix, instead of one client per service.
type etcdStores struct {
	mu     sync.Mutex
	stores map[string]*sharedEtcd
}

type sharedEtcd struct {
	store *registry.Etcd
	refs  int
}

// acquire returns the store for opts, connecting when no service holds one,
// and the function that releases it; the last release closes it.
func (c *etcdStores) acquire(ctx context.Context, opts registry.EtcdOptions) (*registry.Etcd, func(), error) {
	b, _ := json.Marshal([]any{opts.Endpoints, opts.Prefix, opts.Username, opts.Password, opts.DialTimeout})
	key := string(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := c.stores[key]
	if sh == nil {
		// Connecting happens under the lock: a second service of the same
		// cluster waits for this one rather than dialing again.
		store, err := registry.NewEtcd(ctx, opts)
		if err != nil {
			return nil, nil, err
		}
		if c.stores == nil {
			c.stores = make(map[string]*sharedEtcd)
		}
		sh = &sharedEtcd{store: store}
		c.stores[key] = sh
	}
	sh.refs++
	var once sync.Once
	return sh.store, func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if sh.refs--; sh.refs == 0 {
				delete(c.stores, key)
				_ = sh.store.Close()
			}
		})
	}, nil
}

func orName(v, name string) string {
	if v != "" {
		return v
	}
	return name
}

// discoverySchemes returns the endpoint schemes a discovered service starts
// with, which decide its first transport: DNS names its scheme; registry
// instances say theirs, and the source switches the transport when they
// speak h2c.
func discoverySchemes(d *config.Discovery) map[string]bool {
	if d.DNS != nil && d.DNS.Scheme != "" {
		return map[string]bool{d.DNS.Scheme: true}
	}
	return map[string]bool{"http": true}
}

// startSources starts the sources of a snapshot's services (idempotent).
func startSources(snap *snapshot) {
	for _, svc := range snap.services {
		if svc.source != nil {
			svc.source.start()
		}
	}
}

// openRegistry makes the registry store and its HTTP API from the static
// configuration.
func (s *Server) openRegistry(rc config.Registry) error {
	if !rc.IsEnabled() {
		return nil
	}
	var store registry.Store
	switch rc.Backend {
	case "", "memory":
		store = registry.NewMemory(registry.MemoryOptions{Grace: rc.GracePeriod.D(), Logger: s.logger})
	case "etcd":
		if rc.Etcd == nil {
			return errors.New("registry: backend etcd needs registry.etcd")
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(rc.Etcd.DialTimeout.D(), time.Second))
		defer cancel()
		es, err := registry.NewEtcd(ctx, registry.EtcdOptions{Endpoints: rc.Etcd.Endpoints, Prefix: rc.Etcd.Prefix,
			DialTimeout: rc.Etcd.DialTimeout.D(), Username: rc.Etcd.Username, Password: rc.Etcd.Password,
			Grace: rc.GracePeriod.D(), Logger: s.logger})
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		store = es
	default:
		return fmt.Errorf("registry: unknown backend %q", rc.Backend)
	}
	tokens := make([]registry.Token, len(rc.Tokens))
	for i, t := range rc.Tokens {
		tokens[i] = registry.Token{Name: t.Name, Token: t.Token, Services: t.Services}
	}
	if len(tokens) == 0 && s.static.Admin.Token != "" {
		// No registration tokens: a gateway that guards its admin API does
		// not leave the registry, served on the same listener, open.
		tokens = []registry.Token{{Name: "admin", Token: s.static.Admin.Token, Services: []string{"*"}}}
	}
	h, err := registry.NewHandler(store, registry.HandlerOptions{Tokens: tokens, ReadToken: rc.ReadToken,
		DefaultTTL: rc.DefaultTTL.D(), MinTTL: rc.MinTTL.D(), MaxTTL: rc.MaxTTL.D(), Logger: s.logger})
	if err != nil {
		_ = store.Close()
		return fmt.Errorf("registry: %w", err)
	}
	s.registry, s.registryAPI = store, h
	return nil
}

// closeRegistry stops the registry's timers and watches.
func (s *Server) closeRegistry() {
	if s.registry != nil {
		_ = s.registry.Close()
	}
}

// registryHandler serves the registry API, or 404 when it is disabled.
func (s *Server) registryHandler() http.Handler {
	if s.registryAPI != nil {
		return s.registryAPI
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Error(w, http.StatusNotFound, "the registry is not enabled on this gateway")
	})
}
