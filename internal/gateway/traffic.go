package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/discovery"
	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/upstream"
)

// versionPool returns the pool a route sends to: the service's whole pool,
// or the subset of its instances of one version, which the snapshot
// records as in use.
func (snap *snapshot) versionPool(p *upstream.Pool, version string) *upstream.Pool {
	if version == "" {
		return p
	}
	return snap.use(p.Subset(discovery.MetaVersion, version))
}

// shadowPool returns the view of p (or of its version) that a route's
// mirrored copies go to.
func (snap *snapshot) shadowPool(p *upstream.Pool, version string) *upstream.Pool {
	if version == "" {
		return snap.use(p.Shadow("", ""))
	}
	return snap.use(p.Shadow(discovery.MetaVersion, version))
}

func (snap *snapshot) use(view *upstream.Pool) *upstream.Pool {
	if snap.views == nil {
		snap.views = make(map[*upstream.Pool]bool)
	}
	snap.views[view] = true
	return view
}

// retainViews drops the subsets and shadow views no route of snap uses,
// so versions routes stopped naming no longer follow every update.
func retainViews(snap *snapshot) {
	for _, svc := range snap.services {
		svc.pool.RetainSubsets(func(v *upstream.Pool) bool { return snap.views[v] })
	}
}

// splitBranch is one version of a split route.
type splitBranch struct {
	pool *upstream.Pool
	next http.Handler
}

// splitHandler divides a route's requests between versions by weight. The
// order of branches comes from a precomputed smooth weighted round robin
// sequence, so the shares are exact over every full turn rather than only
// on average, and choosing costs one atomic add. A branch whose version has
// no endpoints at all passes its turn to the next branch that has some.
type splitHandler struct {
	branches []splitBranch
	seq      []uint16 // branch indexes, one full turn
	n        atomic.Uint64
}

// maxSplitTurn bounds the precomputed sequence (2 bytes an entry); weights
// whose reduced sum is larger are scaled down to it, which moves a share
// by at most 1/maxSplitTurn.
const maxSplitTurn = 10000

func newSplitHandler(weights []int, branches []splitBranch) *splitHandler {
	w := append([]int(nil), weights...)
	g := 0
	for _, x := range w {
		g = gcd(g, x)
	}
	sum := 0
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if sum > maxSplitTurn {
		scaled := 0
		for i := range w {
			w[i] = max(1, w[i]*maxSplitTurn/sum)
			scaled += w[i]
		}
		sum = scaled
	}
	seq := make([]uint16, 0, sum)
	cur := make([]int, len(w))
	for range sum {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		seq = append(seq, uint16(best))
	}
	return &splitHandler{branches: branches, seq: seq}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (h *splitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(h.seq[(h.n.Add(1)-1)%uint64(len(h.seq))])
	for k := range h.branches {
		b := &h.branches[(i+k)%len(h.branches)]
		if len(b.pool.Endpoints()) > 0 {
			b.next.ServeHTTP(w, r)
			return
		}
	}
	// No version has endpoints: the chosen one answers 503.
	h.branches[i].next.ServeHTTP(w, r)
}

// mirrorHandler sends a copy of a share of a route's requests to a shadow
// pool, in the background: the copy's response is discarded, and a slow or
// failing shadow neither delays nor changes the client's response. Bodies
// of known length up to maxBody are held for the copy; larger ones, bodies
// of unknown length, upgrades and requests beyond the in-flight cap are not
// mirrored (and counted).
type mirrorHandler struct {
	next, shadow http.Handler
	service      string
	route        string
	log          *slog.Logger
	percent      float64
	maxBody      int64
	timeout      time.Duration
	slots        chan struct{}
	n            atomic.Uint64
	m            *mirrorMetrics
}

func newMirrorHandler(next, shadow http.Handler, mc *config.Mirror, route string, log *slog.Logger, m *mirrorMetrics) *mirrorHandler {
	return &mirrorHandler{next: next, shadow: shadow, service: mc.Service, route: route, log: log, percent: float64(mc.Percent),
		maxBody: int64(mc.MaxBodyBytes), timeout: mc.Timeout.D(), slots: make(chan struct{}, max(mc.MaxInFlight, 1)), m: m}
}

// chosen spreads the mirrored share evenly: request n is mirrored when
// n·percent/100 crosses an integer.
func (h *mirrorHandler) chosen() bool {
	if h.percent >= 100 {
		return true
	}
	n := float64(h.n.Add(1))
	return int64(n*h.percent/100) != int64((n-1)*h.percent/100)
}

func (h *mirrorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.chosen() || r.Header.Get("Upgrade") != "" {
		h.next.ServeHTTP(w, r)
		return
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		// A body of unknown length may be a full-duplex stream (gRPC, a
		// bidirectional HTTP/2 exchange) whose client waits for response
		// headers before it sends more: holding it back for a copy would
		// stall the client, so such requests are not mirrored.
		if r.ContentLength < 0 || r.ContentLength > h.maxBody {
			h.m.skipped.Inc()
			h.next.ServeHTTP(w, r)
			return
		}
		buf, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
		if err != nil || int64(len(buf)) > h.maxBody {
			// Too large, or the client failed mid-body: the client's request
			// goes on with what was read put back in front, unmirrored.
			r.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
			h.m.skipped.Inc()
			h.next.ServeHTTP(w, r)
			return
		}
		body = buf
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	select {
	case h.slots <- struct{}{}:
		cp := h.copyRequest(r, body)
		h.m.sent.Inc()
		go h.send(cp)
	default:
		h.m.dropped.Inc()
	}
	h.next.ServeHTTP(w, r)
}

// copyRequest clones r for the shadow before anything downstream changes
// it. The copy has an exchange of its own (the client's is pooled and
// reused once the client's request ends) and a context of its own: nothing
// of the client's connection (its cancellation, or net/http's server
// values, which make the proxy abort a handler by panicking), bounded by
// the mirror timeout.
func (h *mirrorHandler) copyRequest(r *http.Request, body []byte) *http.Request {
	mx := &exchange.Exchange{Start: time.Now(), Service: h.service}
	if x := exchange.From(r.Context()); x != nil {
		mx.ID, mx.ClientIP, mx.Path, mx.UpstreamPath = x.ID, x.ClientIP, x.Path, x.UpstreamPath
		mx.Route, mx.Params, mx.Consumer, mx.MethodOverride = x.Route, x.Params, x.Consumer, x.MethodOverride
	}
	ctx := exchange.NewContext(context.Background(), mx)
	cp := r.Clone(ctx)
	cp.Host = shadowHost(r.Host)
	if body != nil {
		cp.Body = io.NopCloser(bytes.NewReader(body))
		cp.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else {
		cp.Body = http.NoBody
	}
	return cp
}

func (h *mirrorHandler) send(r *http.Request) {
	defer func() { <-h.slots }()
	defer func() {
		// A copy whose response broke off must never take the process
		// down; the proxy signals that with http.ErrAbortHandler.
		if v := recover(); v != nil {
			h.m.failed.Inc()
			if v != http.ErrAbortHandler {
				h.log.Error("mirrored request panicked", "route", h.route, "panic", v)
			}
		}
	}()
	ctx := r.Context()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	dw := &discardWriter{h: http.Header{}}
	h.shadow.ServeHTTP(dw, r)
	// A response that broke off after its headers is a failure too; the
	// proxy records it on the copy's exchange.
	if x := exchange.From(r.Context()); dw.status >= 500 || dw.status == 0 || x != nil && x.Err != nil {
		h.m.failed.Inc()
	}
}

// shadowHost marks the copy's Host the way other proxies do, so the shadow
// can tell mirrored traffic apart: "api.example.com:8080" becomes
// "api.example.com-shadow:8080".
func shadowHost(host string) string {
	if h, port, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h+"-shadow", port)
	}
	return host + "-shadow"
}

type prefixedBody struct {
	io.Reader
	io.Closer
}

// discardWriter takes a mirrored response and keeps only its status.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }

func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 && code >= 200 {
		d.status = code
	}
}

func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return len(p), nil
}

// Flush lets the proxy flush streamed responses into the discard.
func (d *discardWriter) Flush() {}
