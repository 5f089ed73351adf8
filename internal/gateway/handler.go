package gateway

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"github.com/portico-dev/portico/internal/gateway/router"
	"github.com/portico-dev/portico/internal/problem"
)

// entry is the handler every listener serves: it gives the request its
// identity (request id, client address), computes the canonical path once,
// routes on the current snapshot and runs the matched route's compiled chain.
// Everything it needs per request comes from one pooled value and one atomic
// load of the snapshot.
type entry struct {
	s            *Server
	readTimeout  time.Duration
	writeTimeout time.Duration
}

// state is the per-request memory the entry handler reuses through a pool.
type state struct {
	x   exchange.Exchange
	rec recorder
	// rm is the matched route's metrics, set before its chain runs so that a
	// response aborted by a panic is still counted under its route.
	rm *routeMetrics
}

var statePool = sync.Pool{New: func() any { return new(state) }}

func (e *entry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := e.s
	st := statePool.Get().(*state)
	x := &st.x
	x.Reset()
	x.Start = time.Now()
	s.metrics.inFlight.Add(1)

	x.ClientIP = forwarded.ClientIP(s.trusted, r.RemoteAddr, r.Header)
	x.ID = s.requestID(r)
	// Not backed by pooled memory: net/http reads the header after the
	// handler has returned and the state is back in the pool.
	w.Header()[s.reqIDHeader] = []string{x.ID}

	rec := &st.rec
	rec.reset(w, r, x.Start, e.readTimeout, e.writeTimeout)

	snap := s.snap.Load()
	st.rm = nil
	// The proxy aborts the client connection with a panic(http.ErrAbortHandler)
	// when an upstream body is truncated; the request is still logged and
	// counted, and the panic continues to net/http, which closes the connection.
	defer e.finish(st, snap, r)
	s.serve(snap, st, r)
}

// finish records the request's metrics and access-log line and returns its
// state to the pool.
func (e *entry) finish(st *state, snap *snapshot, r *http.Request) {
	s, x, rec, rm := e.s, &st.x, &st.rec, st.rm
	rec.body.finish()
	if x.Status == 0 {
		x.Status = rec.status
		if x.Status == 0 {
			x.Status = http.StatusOK
		}
	}
	x.BytesOut = rec.bytes
	if rec.body != nil {
		x.BytesIn = rec.body.n.Load()
	}
	s.metrics.inFlight.Add(-1)
	if rm == nil {
		rm = snap.unrouted
	}
	// One clock read serves the metrics and the access log.
	end := time.Now()
	rm.observe(r.Method, x.Status, end.Sub(x.Start), x.UpstreamDuration, x.BytesIn, x.BytesOut, x.GRPCStatus)
	if s.access != nil {
		q := r.URL.RawQuery
		if x.LogQuery != "" {
			q = x.LogQuery
		}
		s.access.LogAt(x, r.Method, q, r.Proto, end)
	}
	statePool.Put(st)
}

// serve routes r and runs the matched route's chain, setting st.rm to the
// route's metrics; st.rm stays nil when no route answered.
func (s *Server) serve(snap *snapshot, st *state, r *http.Request) {
	w, x := http.ResponseWriter(&st.rec), &st.x
	path, err := router.CanonicalPath(r)
	if err != nil {
		s.metrics.rejectedTargets.Inc()
		x.Err = err
		x.Path = rejectedTarget(r.RequestURI)
		problem.Write(w, problem.Details{Status: http.StatusBadRequest, Detail: badPathDetail(err), RequestID: x.ID})
		return
	}
	x.Path = path
	m, res := snap.router.Lookup(r.Host, r.Method, path, r.Header, &x.Params)
	switch res {
	case router.NotFound:
		problem.Write(w, problem.Details{Status: http.StatusNotFound, Detail: "no route matches this request", RequestID: x.ID})
		return
	case router.MethodNotAllowed:
		w.Header()["Allow"] = []string{m.Allow}
		problem.Write(w, problem.Details{Status: http.StatusMethodNotAllowed, Detail: "method " + sanitizeMethod(r.Method) + " is not allowed here", RequestID: x.ID})
		return
	}
	rt := &snap.routes[m.Value]
	req := r
	if ctx := exchange.NewContext(r.Context(), x); ctx != r.Context() {
		req = r.WithContext(ctx)
	}
	if rt.cfg.MethodOverride {
		// The override is applied before the chain, so the route that
		// answers the effective method authorizes it.
		if rt = s.methodOverride(snap, w, req, x, rt); rt == nil {
			return
		}
	}
	x.Route, x.Service = rt.name, rt.service
	st.rm = rt.metrics
	rt.handler.ServeHTTP(w, req)
}

// requestID keeps a valid id sent by a trusted proxy and mints one otherwise.
func (s *Server) requestID(r *http.Request) string {
	if s.trusted != nil {
		if v := r.Header[s.reqIDHeader]; len(v) == 1 && forwarded.ValidRequestID(v[0]) {
			if peer, ok := forwarded.PeerAddr(r.RemoteAddr); ok && s.trusted.Contains(peer) {
				return v[0]
			}
		}
	}
	return forwarded.NewRequestID()
}

func badPathDetail(err error) string {
	if errors.Is(err, router.ErrBadPath) {
		return err.Error()
	}
	return "the request target is not a valid path"
}

// rejectedTarget is what the access log shows as the path of a request
// refused for its target: the raw path, cut to a bounded length (the log
// escapes whatever bytes it holds). The query is logged separately.
func rejectedTarget(target string) string {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if len(target) > 512 {
		target = target[:512] + "..."
	}
	return target
}

// sanitizeMethod keeps a client-supplied method printable and short before it
// is echoed in an error detail.
func sanitizeMethod(m string) string {
	if len(m) > 32 {
		m = m[:32]
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c < '!' || c > '~' {
			return "(invalid)"
		}
	}
	return m
}
