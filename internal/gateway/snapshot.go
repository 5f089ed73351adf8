package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy"
	"github.com/portico-dev/portico/internal/gateway/proxy"
	"github.com/portico-dev/portico/internal/gateway/router"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// snapshot is the immutable, compiled form of one configuration: the router,
// each route's compiled handler chain, and the service pools. Requests load
// it once and finish on it even if a reload swaps in a newer one.
type snapshot struct {
	version  int64
	loadedAt time.Time
	cfg      *config.Config
	router   *router.Router
	routes   []compiledRoute
	services map[string]*service
	// unrouted records requests no route answered (400, 404, 405).
	unrouted *routeMetrics
	// views are the pool subsets and shadow views its routes use.
	views map[*upstream.Pool]bool
}

type compiledRoute struct {
	name    string
	service string
	cfg     *config.Route
	handler http.Handler
	metrics *routeMetrics
}

// service is a pool with the fingerprint of the definition it was built from,
// so an unchanged service keeps its pool (connections, and later health and
// breaker state) across reloads.
type service struct {
	fingerprint string
	pool        *upstream.Pool
	transport   http.RoundTripper
	// transportKey identifies the transport settings, so a changed service
	// keeps its transport (and connections) when they did not change.
	transportKey string
	// commit applies a changed definition to a pool carried over from the
	// previous snapshot once the whole snapshot has built; nil otherwise.
	commit func()
	// source feeds the pool of a discovered service; nil for a static one.
	// It is carried over with the pool while the discovery settings stay.
	source *source
}

// build compiles cfg into a snapshot, reusing prev's pools for unchanged
// services and prev's metric children for unchanged routes. It does not
// modify prev; on error nothing of the new snapshot is used.
func (s *Server) build(cfg *config.Config, prev *snapshot, version int64) (*snapshot, error) {
	snap := &snapshot{
		version:  version,
		loadedAt: time.Now(),
		cfg:      cfg,
		services: make(map[string]*service, len(cfg.Services)),
		routes:   make([]compiledRoute, len(cfg.Routes)),
	}
	for i := range cfg.Services {
		svc, err := s.buildService(&cfg.Services[i], prev)
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", cfg.Services[i].Name, err)
		}
		snap.services[cfg.Services[i].Name] = svc
	}

	rroutes := make([]router.Route, len(cfg.Routes))
	env := policy.Env{Logger: s.logger, RequestIDHeader: s.reqIDHeader, Auth: s.auth.Begin(&cfg.Auth),
		RateLimit: s.limits, IPFilterDenied: s.metrics.ipDenied, CORSRejected: s.metrics.corsRejected}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		rr, err := routerRoute(rc, i)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", rc.Name, err)
		}
		rroutes[i] = rr
		terminal, err := s.terminal(rc, snap)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", rc.Name, err)
		}
		h, err := policy.Chain(s.policies, env, rc, terminal)
		if err != nil {
			return nil, err
		}
		snap.routes[i] = compiledRoute{name: rc.Name, service: rc.Service, cfg: rc, handler: h,
			metrics: s.routeMetrics(prev, rc.Name, rc.Service)}
	}
	rt, err := router.New(rroutes)
	if err != nil {
		return nil, err
	}
	snap.router = rt
	commitServices(snap, prev)
	retainViews(snap)
	// The build succeeded: later builds reuse the auth caches it drew on.
	env.Auth.Commit()
	snap.unrouted = s.routeMetrics(prev, "", "")
	return snap, nil
}

func (s *Server) routeMetrics(prev *snapshot, route, svc string) *routeMetrics {
	if prev != nil {
		if route == "" {
			return prev.unrouted
		}
		for i := range prev.routes {
			if r := &prev.routes[i]; r.name == route && r.service == svc {
				return r.metrics
			}
		}
	}
	return s.metrics.forRoute(route, svc)
}

func (s *Server) buildService(sc *config.Service, prev *snapshot) (*service, error) {
	fp := sc.Fingerprint()
	var old *service
	if prev != nil {
		if old = prev.services[sc.Name]; old != nil && old.fingerprint == fp {
			return old, nil
		}
	}
	// A discovered service has no endpoints of its own (nil: a carried-over
	// pool keeps serving its set until the source delivers).
	var eps []*upstream.Endpoint
	var schemes map[string]bool
	if sc.Discovery != nil {
		schemes = discoverySchemes(sc.Discovery)
	} else {
		eps = make([]*upstream.Endpoint, 0, len(sc.Endpoints))
		schemes = make(map[string]bool, 2)
		for _, ec := range sc.Endpoints {
			u, err := url.Parse(ec.URL)
			if err != nil {
				return nil, fmt.Errorf("endpoint %q: %w", ec.URL, err)
			}
			schemes[u.Scheme] = true
			eps = append(eps, &upstream.Endpoint{URL: u, Weight: ec.Weight, Meta: ec.Metadata})
		}
	}
	pcfg, err := s.poolConfig(sc)
	if err != nil {
		return nil, err
	}
	topts := transportOptions(sc, schemes)
	tkey := fmt.Sprintf("%+v", topts)
	var svc *service
	var key string
	carry := false
	if sc.Discovery != nil {
		key = discoveryKey(sc, topts)
		carry = old != nil && old.source != nil && old.source.key == key
	}
	if old != nil {
		if old.source != nil && !carry && old.source.switched() {
			// The pool speaks what the replaced source's instances spoke,
			// not what the settings say: give it a transport built from them.
			o := *old
			o.transportKey = ""
			old = &o
		}
		// Reconcile the live pool: unchanged endpoints keep their health,
		// ejection and breaker state.
		if svc, err = s.reconcileService(old, fp, pcfg, eps, topts, tkey); err != nil {
			return nil, err
		}
	} else {
		tr, err := proxy.NewTransport(topts)
		if err != nil {
			return nil, err
		}
		pool, err := upstream.New(sc.Name, tr, pcfg)
		if err != nil {
			return nil, err
		}
		if eps != nil {
			pool.Update(eps)
		}
		svc = &service{fingerprint: fp, pool: pool, transport: tr, transportKey: tkey}
	}
	if sc.Discovery != nil {
		if carry {
			svc.source = old.source
		} else if svc.source, err = s.newSource(sc, svc.pool, topts, key); err != nil {
			return nil, err
		}
	}
	return svc, nil
}

// terminal is the innermost handler of a route: the proxy to its service, or
// its direct response.
func (s *Server) terminal(rc *config.Route, snap *snapshot) (http.Handler, error) {
	if rc.DirectResponse != nil {
		return directResponse(rc.DirectResponse), nil
	}
	svc, ok := snap.services[rc.Service]
	if !ok {
		return nil, fmt.Errorf("unknown service %q", rc.Service)
	}
	t := proxy.Target{Pool: snap.versionPool(svc.pool, rc.Version), Timeout: rc.Timeout.D(), WebSocket: rc.WebSocketEnabled(),
		Retry: retryPolicy(rc), Hedge: hedgePolicy(rc), PropagateDeadline: rc.DeadlinePropagated()}
	if rw := rc.Rewrite; rw != nil {
		spec := router.RewriteSpec{StripPrefix: rw.StripPrefix, Template: rw.Path}
		if rw.ReplacePrefix != nil {
			spec.ReplaceFrom, spec.ReplaceTo = rw.ReplacePrefix.From, rw.ReplacePrefix.To
		}
		rewriter, err := router.NewRewriter(spec, rc.Match.Path)
		if err != nil {
			return nil, fmt.Errorf("rewrite: %w", err)
		}
		t.Rewrite = rewriter.Apply
	}
	h, err := s.versionedHandler(snap, rc, svc, t)
	if err != nil || rc.Mirror == nil {
		return h, err
	}
	m := rc.Mirror
	msvc, ok := snap.services[m.Service]
	if !ok {
		return nil, fmt.Errorf("mirror: unknown service %q", m.Service)
	}
	// The copy makes one attempt, bounded by the mirror's timeout.
	st := t
	st.Pool, st.Retry, st.Hedge, st.WebSocket = snap.shadowPool(msvc.pool, m.Version), nil, nil, false
	st.Timeout = m.Timeout.D()
	shadow, err := s.proxy.Handler(st)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	return newMirrorHandler(h, shadow, m, rc.Name, s.logger, s.metrics.forMirror(rc.Name)), nil
}

// versionedHandler is the proxy to the route's service, or to each version
// of a split.
func (s *Server) versionedHandler(snap *snapshot, rc *config.Route, svc *service, t proxy.Target) (http.Handler, error) {
	if len(rc.Split) == 0 {
		return s.proxy.Handler(t)
	}
	branches := make([]splitBranch, len(rc.Split))
	weights := make([]int, len(rc.Split))
	for i, sp := range rc.Split {
		bt := t
		bt.Pool = snap.versionPool(svc.pool, sp.Version)
		h, err := s.proxy.Handler(bt)
		if err != nil {
			return nil, fmt.Errorf("split[%d]: %w", i, err)
		}
		branches[i], weights[i] = splitBranch{pool: bt.Pool, next: h}, sp.Weight
	}
	return newSplitHandler(weights, branches), nil
}

func routerRoute(rc *config.Route, i int) (router.Route, error) {
	rr := router.Route{Name: rc.Name, Hosts: rc.Match.Hosts, Path: rc.Match.Path, Methods: rc.Match.Methods, Value: i}
	if rc.CORS != nil && len(rc.Match.Methods) > 0 && !slices.Contains(rc.Match.Methods, http.MethodOptions) {
		// Preflights use OPTIONS; the cors policy answers them and refuses
		// other OPTIONS requests with 405, as the router would have.
		rr.Methods = append(slices.Clip(rc.Match.Methods), http.MethodOptions)
	}
	for _, hm := range rc.Match.Headers {
		m := router.HeaderMatch{Name: http.CanonicalHeaderKey(hm.Name), Equals: hm.Equals, Present: hm.Present}
		if hm.Regex != "" {
			re, err := regexp.Compile(hm.Regex)
			if err != nil {
				return rr, fmt.Errorf("header %q: %w", hm.Name, err)
			}
			m.Regex = re
		}
		rr.Headers = append(rr.Headers, m)
	}
	return rr, nil
}

func transportOptions(sc *config.Service, schemes map[string]bool) proxy.TransportOptions {
	t := sc.Transport
	o := proxy.TransportOptions{
		H2C:                 schemes["h2c"],
		DialTimeout:         t.DialTimeout.D(),
		KeepAlive:           t.KeepAlive.D(),
		TLSHandshakeTimeout: t.TLSHandshakeTimeout.D(),
		IdleConnTimeout:     t.IdleConnTimeout.D(),
		MaxIdleConnsPerHost: t.MaxIdleConnsPerHost,
		MaxConnsPerHost:     t.MaxConnsPerHost,
	}
	if tls := t.TLS; tls != nil {
		o.CAFile, o.ServerName = tls.CAFile, tls.ServerName
		o.CertFile, o.KeyFile = tls.CertFile, tls.KeyFile
		o.InsecureSkipVerify = tls.InsecureSkipVerify
	}
	return o
}

// directResponse answers from the gateway itself.
func directResponse(dr *config.DirectResponse) http.Handler {
	status := dr.Status
	if status == 0 {
		status = http.StatusOK
	}
	ct := dr.ContentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	body := []byte(dr.Body)
	// Shared, read-only header values: no allocation per response.
	ctv, lengthv := []string{ct}, []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = ctv[:1:1]
		h["Content-Length"] = lengthv[:1:1]
		w.WriteHeader(status)
		if r.Method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified {
			_, _ = w.Write(body)
		}
	})
}
