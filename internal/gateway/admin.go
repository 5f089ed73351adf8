package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/upstream"
	"github.com/portico-dev/portico/internal/problem"
)

// newAdminListener binds the admin API: health and readiness probes, metrics,
// and the /admin endpoints to inspect and reload the configuration.
func (s *Server) newAdminListener(ac config.Admin) (*listener, error) {
	ln, err := net.Listen("tcp", ac.Address)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	srv := &http.Server{
		Handler:           s.adminHandler(ac.Token),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.With("listener", "admin").Handler(), slog.LevelDebug),
	}
	return &listener{name: "admin", ln: ln, srv: srv}, nil
}

func (s *Server) adminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	// The registry authenticates its writers and readers with tokens of
	// its own (registry.tokens, registry.read_token).
	mux.Handle("/registry/", s.registryHandler())
	protected := http.NewServeMux()
	protected.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	protected.HandleFunc("GET /admin/routes", s.handleRoutes)
	protected.HandleFunc("GET /admin/services", s.handleServices)
	protected.HandleFunc("GET /admin/config", s.handleConfig)
	protected.HandleFunc("GET /admin/status", s.handleStatus)
	protected.HandleFunc("POST /admin/reload", s.handleReload)
	mux.Handle("/", requireToken(token, protected))
	return mux
}

// requireToken admits requests carrying "Authorization: Bearer <token>". The
// comparison is over hashes, in constant time, so neither the token's content
// nor its length leaks through timing. An empty token admits everyone.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portico-admin"`)
			problem.Error(w, http.StatusUnauthorized, "a valid admin bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		problem.Error(w, http.StatusServiceUnavailable, "the gateway is not ready or is shutting down")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type adminRoute struct {
	Name      string   `json:"name"`
	Hosts     []string `json:"hosts,omitempty"`
	Path      string   `json:"path"`
	Methods   []string `json:"methods,omitempty"`
	Headers   []string `json:"headers,omitempty"`
	Service   string   `json:"service,omitempty"`
	Direct    bool     `json:"direct_response,omitempty"`
	Rewrite   any      `json:"rewrite,omitempty"`
	Timeout   string   `json:"timeout"`
	MaxBody   int64    `json:"max_body_bytes"`
	WebSocket bool     `json:"websocket"`
	// Version, Split and Mirror are the route's version-aware routing.
	Version string         `json:"version,omitempty"`
	Split   []config.Split `json:"split,omitempty"`
	Mirror  *config.Mirror `json:"mirror,omitempty"`
}

func (s *Server) handleRoutes(w http.ResponseWriter, r *http.Request) {
	snap := s.snap.Load()
	out := make([]adminRoute, 0, len(snap.routes))
	for _, rt := range snap.routes {
		c := rt.cfg
		ar := adminRoute{Name: c.Name, Hosts: c.Match.Hosts, Path: c.Match.Path, Methods: c.Match.Methods,
			Service: c.Service, Direct: c.DirectResponse != nil, Timeout: c.Timeout.D().String(),
			MaxBody: int64(c.MaxBodyBytes), WebSocket: c.WebSocketEnabled(),
			Version: c.Version, Split: c.Split, Mirror: c.Mirror}
		if c.Rewrite != nil {
			ar.Rewrite = c.Rewrite
		}
		for _, h := range c.Match.Headers {
			ar.Headers = append(ar.Headers, describeHeaderMatch(h))
		}
		out = append(out, ar)
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": snap.version, "routes": out})
}

func describeHeaderMatch(h config.HeaderMatch) string {
	switch {
	case h.Equals != nil:
		return h.Name + " == " + *h.Equals
	case h.Present != nil && *h.Present:
		return h.Name + " present"
	case h.Present != nil:
		return h.Name + " absent"
	default:
		return h.Name + " ~ " + h.Regex
	}
}

type adminEndpoint struct {
	URL       string `json:"url"`
	Weight    int    `json:"weight"`
	Available bool   `json:"available"`
	Health    string `json:"health"`
	// HealthError is the last failed health check's reason.
	HealthError string `json:"health_error,omitempty"`
	Ejected     bool   `json:"ejected"`
	// EjectedFor is the time left of the current ejection.
	EjectedFor string `json:"ejected_for,omitempty"`
	Ejections  uint64 `json:"ejections"`
	Breaker    string `json:"breaker"`
	Draining   bool   `json:"draining"`
	InFlight   int64  `json:"in_flight"`
	// LatencyEWMA is the moving average time to response headers.
	LatencyEWMA string            `json:"latency_ewma"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

type adminService struct {
	Name        string          `json:"name"`
	Fingerprint string          `json:"fingerprint"`
	Balancer    string          `json:"balancer"`
	Available   int             `json:"available"`
	Panic       bool            `json:"panic"`
	InFlight    int64           `json:"in_flight"`
	Endpoints   []adminEndpoint `json:"endpoints"`
	// Draining lists endpoints that left the set but still serve requests.
	Draining []adminEndpoint `json:"draining,omitempty"`
	// RetryBudget is the number of retries the budget allows now.
	RetryBudget int64 `json:"retry_budget_remaining"`
	// Discovery is the state of the service's discovery provider; absent
	// for a service with static endpoints.
	Discovery *sourceStatus `json:"discovery,omitempty"`
	// Subsets are the versions routes select, with their endpoint counts.
	Subsets []adminSubset `json:"subsets,omitempty"`
}

type adminSubset struct {
	Version   string `json:"version"`
	Endpoints int    `json:"endpoints"`
	Available int    `json:"available"`
	Panic     bool   `json:"panic"`
}

func describeEndpoint(ep *upstream.Endpoint) adminEndpoint {
	st := ep.Status()
	ae := adminEndpoint{URL: ep.URL.String(), Weight: st.Weight, Available: st.Available, Health: "healthy",
		HealthError: st.HealthError, Ejected: st.Ejected, Ejections: st.Ejections, Breaker: st.Breaker,
		Draining: st.Draining, InFlight: st.InFlight, LatencyEWMA: st.Latency.String(), Metadata: ep.Meta}
	if !st.Healthy {
		ae.Health = "unhealthy"
	}
	if st.EjectedFor > 0 {
		ae.EjectedFor = st.EjectedFor.Round(time.Millisecond).String()
	}
	return ae
}

func (s *Server) handleServices(w http.ResponseWriter, r *http.Request) {
	snap := s.snap.Load()
	out := make([]adminService, 0, len(snap.services))
	now := time.Now()
	for name, svc := range snap.services {
		p := svc.pool
		as := adminService{Name: name, Fingerprint: svc.fingerprint, Balancer: p.Balancer(), Available: p.Available(),
			Panic: p.Panicking(), Endpoints: []adminEndpoint{}, RetryBudget: p.Budget().Remaining(now)}
		for _, ep := range p.Endpoints() {
			ae := describeEndpoint(ep)
			as.InFlight += ae.InFlight
			as.Endpoints = append(as.Endpoints, ae)
		}
		for _, ep := range p.Draining() {
			as.Draining = append(as.Draining, describeEndpoint(ep))
		}
		if svc.source != nil {
			st := svc.source.status()
			as.Discovery = &st
		}
		for _, sub := range p.Subsets() {
			if sub.IsShadow() {
				continue
			}
			_, v, _ := sub.SubsetOf()
			as.Subsets = append(as.Subsets, adminSubset{Version: v, Endpoints: len(sub.Endpoints()),
				Available: sub.Available(), Panic: sub.Panicking()})
		}
		out = append(out, as)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"version": snap.version, "services": out})
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	snap := s.snap.Load()
	writeJSON(w, http.StatusOK, snap.cfg.Redacted())
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	snap := s.snap.Load()
	s.reloadMu.Lock()
	lastErr := s.lastErr
	s.reloadMu.Unlock()
	st := map[string]any{
		"version":    snap.version,
		"loaded_at":  snap.loadedAt.UTC().Format(time.RFC3339Nano),
		"ready":      s.ready.Load(),
		"config":     s.configPath,
		"last_error": nil,
	}
	if lastErr != nil {
		st["last_error"] = errorLines(lastErr)
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	version, err := s.Reload()
	if errors.Is(err, ErrNoConfigFile) {
		problem.Error(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		w.Header().Set("Content-Type", problem.ContentType)
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"type": "about:blank", "title": "Configuration rejected", "status": http.StatusUnprocessableEntity,
			"detail": "the configuration was not applied; the previous one keeps serving", "errors": errorLines(err),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "applied", "version": version})
}

// errorLines splits a (possibly joined) error into one string per problem.
func errorLines(err error) []string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
