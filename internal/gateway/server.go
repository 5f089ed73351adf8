// Package gateway is Portico's API gateway: listeners, the entry handler, the
// compiled configuration snapshot and its live reload, and the admin API.
//
// The request path is listener → canonical path → router → policy chain →
// pool → proxy → endpoint. A Server holds the current snapshot behind an
// atomic pointer; a reload builds a new snapshot and swaps it in, so each
// request reads the configuration with one atomic load and finishes on the
// snapshot it started on.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"github.com/portico-dev/portico/internal/gateway/h1server"
	"github.com/portico-dev/portico/internal/gateway/policy"
	"github.com/portico-dev/portico/internal/gateway/policy/auth"
	"github.com/portico-dev/portico/internal/gateway/policy/ratelimit"
	"github.com/portico-dev/portico/internal/gateway/proxy"
	"github.com/portico-dev/portico/registry"
	"github.com/portico-dev/portico/telemetry/accesslog"
)

// upgradedCloseTimeout bounds how long shutdown waits to send WebSocket
// close frames before it closes the connections without one.
const upgradedCloseTimeout = 2 * time.Second

// Server is a running gateway.
type Server struct {
	logger      *slog.Logger
	metrics     *Metrics
	access      *accesslog.Logger
	proxy       *proxy.Proxy
	trusted     *forwarded.Trusted
	reqIDHeader string
	policies    []policy.Factory
	// auth holds JWKS, verified-token and introspection caches, which
	// survive reloads.
	auth *auth.Registry
	// limits holds the rate-limit stores (and the Redis client), which
	// survive reloads; created from the static configuration.
	limits *ratelimit.Shared
	// registry is the service registry's store and registryAPI its HTTP
	// API, served on the admin listener; nil when disabled. Static.
	registry    registry.Store
	registryAPI http.Handler
	// etcdStores are the etcd connections of services discovered in etcd.
	etcdStores etcdStores

	// static is the configuration the listeners, admin API and shutdown were
	// set up from; a reload that changes those parts is applied only in part.
	static     *config.Config
	configPath string
	accessOut  io.Writer
	accessFile io.Closer

	reloadMu sync.Mutex // serializes reloads; guards version and lastErr
	version  int64
	lastErr  error
	snap     atomic.Pointer[snapshot]

	ready     atomic.Bool
	listeners []*listener
	admin     *listener
	closeOnce sync.Once
	done      chan struct{}
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the gateway's logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithConfigPath names the file the configuration was loaded from; reloads
// (file watch, SIGHUP, POST /admin/reload) read it again. Default: cfg.File.
func WithConfigPath(path string) Option { return func(s *Server) { s.configPath = path } }

// WithAccessLogOutput sends the access log to w instead of the configured
// output. Default: the configuration's access_log.output.
func WithAccessLogOutput(w io.Writer) Option {
	return func(s *Server) { s.accessOut = w }
}

// New builds a gateway from cfg, which must have been loaded and validated by
// package config. It binds nothing until Start.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	s := &Server{logger: slog.Default(), configPath: cfg.File, static: cfg, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	var err error
	if s.trusted, err = forwarded.NewTrusted(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted_proxies: %w", err)
	}
	s.reqIDHeader = http.CanonicalHeaderKey(cfg.RequestID.Header)
	s.metrics = NewMetrics()
	s.metrics.watchUpstreams(s.pools)
	s.metrics.watchSources(s.sources)
	s.policies = policy.Builtin()
	s.auth = auth.NewRegistry(s.logger)
	s.proxy = proxy.New(proxy.Config{Trusted: s.trusted, RequestIDHeader: s.reqIDHeader, Logger: s.logger})
	if err := s.openAccessLog(cfg.AccessLog); err != nil {
		return nil, err
	}
	if s.limits, err = newRateLimits(cfg.RateLimits, s.metrics, s.logger); err != nil {
		s.closeAccessLog()
		return nil, err
	}
	if err := s.openRegistry(cfg.Registry); err != nil {
		s.closeAccessLog()
		_ = s.limits.Close()
		return nil, err
	}
	snap, err := s.build(cfg, nil, 1)
	if err != nil {
		s.closeAccessLog()
		_ = s.limits.Close()
		s.closeRegistry()
		return nil, err
	}
	s.version = 1
	s.snap.Store(snap)
	s.metrics.Reloaded(true, 1)
	return s, nil
}

// Metrics returns the gateway's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Start binds every listener and the admin listener and starts serving. The
// gateway reports ready once all are bound.
func (s *Server) Start() error {
	for i := range s.static.Listeners {
		l, err := s.newListener(&s.static.Listeners[i])
		if err != nil {
			s.closeListeners()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	if s.static.Admin.Address != "off" {
		l, err := s.newAdminListener(s.static.Admin)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.admin = l
	}
	for _, l := range s.listeners {
		l.serve(s.logger)
	}
	if s.admin != nil {
		s.admin.serve(s.logger)
	}
	// Under reloadMu, so a reload racing with Start starts its pools too.
	s.reloadMu.Lock()
	startPools(s.snap.Load())
	startSources(s.snap.Load())
	s.ready.Store(true)
	s.reloadMu.Unlock()
	s.logger.Info("gateway started", "listeners", s.listenerAddrs(), "admin", s.AdminAddr(), "routes", len(s.snap.Load().routes))
	return nil
}

// Run starts the gateway and serves until ctx is done, then shuts down
// gracefully. It returns once shutdown is complete.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	if s.configPath != "" {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			if err := s.watch(wctx); err != nil {
				s.logger.Error("configuration file is not watched; reload with SIGHUP or POST /admin/reload", "err", err)
			}
		}()
	}
	var failure error
	select {
	case <-ctx.Done():
	case failure = <-s.serveErrs():
		s.logger.Error("listener failed", "err", failure)
	}
	return errors.Join(failure, s.Shutdown(context.Background()))
}

// Addr returns the bound address of the named listener, or "".
func (s *Server) Addr(name string) string {
	for _, l := range s.listeners {
		if l.name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// AdminAddr returns the bound admin address, or "" when disabled.
func (s *Server) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.ln.Addr().String()
}

func (s *Server) listenerAddrs() []string {
	out := make([]string, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.name+"="+l.ln.Addr().String())
	}
	return out
}

// Shutdown stops the gateway gracefully: /readyz turns 503, the configured
// delay passes so load balancers notice, listeners stop accepting, upgraded
// WebSocket connections are closed with 1001, in-flight requests get the
// drain timeout to finish and idle keep-alive connections are closed. What is
// still running after the drain timeout is cut. ctx can shorten the wait.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		defer close(s.done)
		s.ready.Store(false)
		s.logger.Info("gateway shutting down", "delay", s.static.Shutdown.Delay.D().String(), "drain_timeout", s.static.Shutdown.DrainTimeout.D().String())
		if d := s.static.Shutdown.Delay.D(); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		dctx, cancel := context.WithTimeout(ctx, s.static.Shutdown.DrainTimeout.D())
		defer cancel()
		// Listeners stop accepting first; upgraded connections, which
		// http.Server does not track, are sent their close frames meanwhile,
		// with a short bound so a client that does not read cannot use up
		// the drain time of everyone else.
		var wg sync.WaitGroup
		errs := make([]error, len(s.listeners))
		for i, l := range s.listeners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = l.shutdown(dctx)
			}()
		}
		uctx, ucancel := context.WithTimeout(dctx, upgradedCloseTimeout)
		if n := s.proxy.CloseUpgraded(uctx); n > 0 {
			s.logger.Info("closed upgraded connections", "count", n)
		}
		ucancel()
		wg.Wait()
		err = errors.Join(errs...)
		if s.admin != nil {
			actx, acancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.admin.shutdown(actx)
			acancel()
		}
		for _, svc := range s.snap.Load().services {
			if svc.source != nil {
				svc.source.stop(time.Second)
			}
			svc.pool.Close()
			// The pool's live transport: discovery may have replaced it.
			if c, ok := svc.pool.Transport().(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		}
		s.closeAccessLog()
		_ = s.limits.Close()
		s.closeRegistry()
		if err != nil {
			s.logger.Warn("drain timeout reached; remaining connections were closed", "err", err)
		} else {
			s.logger.Info("gateway stopped")
		}
	})
	return err
}

// Done is closed when Shutdown has finished.
func (s *Server) Done() <-chan struct{} { return s.done }

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		_ = l.ln.Close()
	}
	if s.admin != nil {
		_ = s.admin.ln.Close()
	}
}

func (s *Server) serveErrs() <-chan error {
	ch := make(chan error, len(s.listeners)+1)
	for _, l := range s.listeners {
		go func() {
			if err := <-l.errc; err != nil {
				ch <- fmt.Errorf("listener %q: %w", l.name, err)
			}
		}()
	}
	return ch
}

// listener is one bound address with its http.Server and, on cleartext
// listeners, the gateway's own HTTP/1.1 server in front of it.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
	fast *h1server.Server // nil: srv serves alone
	tls  bool
	errc chan error
}

func (l *listener) serve(logger *slog.Logger) {
	l.errc = make(chan error, 1)
	go func() {
		var err error
		switch {
		case l.tls:
			err = l.srv.ServeTLS(l.ln, "", "")
		case l.fast != nil:
			err = l.fast.Serve(l.ln)
		default:
			err = l.srv.Serve(l.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		l.errc <- err
	}()
}

// shutdown drains the listener; connections still active when ctx ends are
// closed.
func (l *listener) shutdown(ctx context.Context) error {
	if l.fast != nil {
		err := l.fast.Shutdown(ctx)
		if err != nil {
			_ = l.fast.Close()
		}
		return err
	}
	err := l.srv.Shutdown(ctx)
	if err != nil {
		_ = l.srv.Close()
	}
	return err
}

func (s *Server) newListener(lc *config.Listener) (*listener, error) {
	srv := &http.Server{
		Handler:           &entry{s: s, readTimeout: lc.ReadTimeout.D(), writeTimeout: lc.WriteTimeout.D()},
		ReadHeaderTimeout: lc.ReadHeaderTimeout.D(),
		ReadTimeout:       lc.ReadTimeout.D(),
		WriteTimeout:      lc.WriteTimeout.D(),
		IdleTimeout:       lc.IdleTimeout.D(),
		MaxHeaderBytes:    int(lc.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(s.logger.With("listener", lc.Name).Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if lc.Protocol == "https" {
		cert, err := tls.LoadX509KeyPair(lc.TLS.CertFile, lc.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("listener %q: load certificate: %w", lc.Name, err)
		}
		minVersion := uint16(tls.VersionTLS12)
		if lc.TLS.MinVersion == "1.3" {
			minVersion = tls.VersionTLS13
		}
		srv.Protocols.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion}
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
	}
	l := &listener{name: lc.Name, ln: ln, srv: srv, tls: srv.TLSConfig != nil}
	if !l.tls && lc.Server != config.ServerNetHTTP {
		l.fast = &h1server.Server{Handler: srv.Handler, Fallback: srv, Logger: s.logger.With("listener", lc.Name)}
	}
	return l, nil
}

func (s *Server) openAccessLog(ac config.AccessLog) error {
	if !ac.IsEnabled() {
		return nil
	}
	w := s.accessOut
	if w == nil {
		var err error
		if w, s.accessFile, err = openOutput(ac.Output); err != nil {
			return fmt.Errorf("access_log.output: %w", err)
		}
	}
	al, err := accesslog.New(accesslog.Options{Output: w, RedactQuery: slices.Concat(ac.RedactQuery, s.static.CredentialQueryParams()), OnDrop: s.metrics.accessLogDrops.Inc})
	if err != nil {
		return fmt.Errorf("access_log: %w", err)
	}
	s.access = al
	return nil
}

func (s *Server) closeAccessLog() {
	if s.access != nil {
		_ = s.access.Close()
	}
	if s.accessFile != nil {
		_ = s.accessFile.Close()
	}
}

// Validate compiles cfg the way New would, without binding anything, and
// returns the first problem found beyond what package config checks.
func Validate(cfg *config.Config) error {
	s := &Server{logger: slog.New(slog.DiscardHandler), static: cfg, metrics: NewMetrics(), policies: policy.Builtin()}
	s.auth = auth.NewRegistry(s.logger)
	var err error
	if s.trusted, err = forwarded.NewTrusted(cfg.TrustedProxies); err != nil {
		return fmt.Errorf("trusted_proxies: %w", err)
	}
	s.proxy = proxy.New(proxy.Config{Trusted: s.trusted, Logger: s.logger})
	if s.limits, err = newRateLimits(cfg.RateLimits, s.metrics, s.logger); err != nil {
		return err
	}
	defer s.limits.Close()
	if cfg.Registry.IsEnabled() {
		// Services discovered in the gateway's own registry need one to
		// compile against; which backend it uses does not matter here.
		s.registry = registry.NewMemory(registry.MemoryOptions{Logger: s.logger})
		defer s.closeRegistry()
	}
	_, err = s.build(cfg, nil, 1)
	return err
}
