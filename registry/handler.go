package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/problem"
)

// Defaults of HandlerOptions.
const (
	DefaultTTL               = 10 * time.Second
	DefaultMinTTL            = time.Second
	DefaultMaxTTL            = 5 * time.Minute
	DefaultKeepaliveInterval = 15 * time.Second
)

const (
	// BasePath is where the API is served; the handler expects full paths
	// under it (it is not meant to be mounted with http.StripPrefix).
	BasePath = "/registry/v1"
	// RevisionHeader carries the registry's current revision on every
	// successful response.
	RevisionHeader = "X-Registry-Revision"
	// ProblemTypeBase prefixes the type of the API's problem details; the
	// suffix names the problem ("not-found", "compacted", ...).
	ProblemTypeBase = "https://portico.dev/problems/registry/"

	maxBodyBytes = 64 << 10
	authRealm    = `Bearer realm="portico-registry"`
)

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	// Tokens are the registration tokens. When there is at least one,
	// register, heartbeat and deregister need a token whose services cover
	// the instance's service. When there are none, writes are open.
	Tokens []Token
	// ReadToken, when set, is needed (or any registration token) to list,
	// show and watch. When empty, reads are open.
	ReadToken string
	// DefaultTTL is the TTL of a registration that asks for none. Default
	// 10s.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL bound the TTL a registration may ask for; outside
	// them it is refused with 400. Defaults 1s and 5m.
	MinTTL, MaxTTL time.Duration
	// KeepaliveInterval is how long a watch stream may stay silent before a
	// keepalive comment is sent. Default 15s.
	KeepaliveInterval time.Duration
	// Logger receives registrations, deregistrations and refused requests.
	// Nil discards them.
	Logger *slog.Logger
}

// Token is a registration token.
type Token struct {
	// Name identifies the token in logs; the secret is never logged.
	Name string
	// Token is the secret a writer sends as "Authorization: Bearer <token>".
	Token string
	// Services are the services the token may write: exact names, or
	// prefixes ending in "*" ("billing-*"; "*" alone is every service).
	Services []string
}

// token is a Token as the handler checks it: the secret kept only as its
// SHA-256 digest.
type token struct {
	name     string
	digest   [sha256.Size]byte
	services []string
}

// covers reports whether the token may write service.
func (t *token) covers(service string) bool {
	for _, p := range t.services {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(service, prefix) {
				return true
			}
		} else if p == service {
			return true
		}
	}
	return false
}

// Optional store methods the handler uses when present.
type (
	// revisioner reports the current revision without listing.
	revisioner interface {
		Revision(ctx context.Context) (int64, error)
	}
	// instanceGetter reads one instance without listing its service.
	instanceGetter interface {
		Instance(ctx context.Context, service, id string) (Instance, error)
	}
	// replaceReporter registers and tells whether an entry was replaced.
	replaceReporter interface {
		register(in Instance, ttl time.Duration) (Instance, bool, error)
	}
)

type handler struct {
	store      Store
	tokens     []token
	readDigest *[sha256.Size]byte
	defaultTTL time.Duration
	minTTL     time.Duration
	maxTTL     time.Duration
	keepalive  time.Duration
	logger     *slog.Logger
	routes     []route
}

// NewHandler returns the registry's HTTP API over store, serving the paths
// under BasePath. Every error is answered as application/problem+json.
func NewHandler(store Store, opts HandlerOptions) (http.Handler, error) {
	if store == nil {
		return nil, errors.New("registry handler: store is nil")
	}
	h := &handler{
		store:      store,
		defaultTTL: orDefault(opts.DefaultTTL, DefaultTTL),
		minTTL:     orDefault(opts.MinTTL, DefaultMinTTL),
		maxTTL:     orDefault(opts.MaxTTL, DefaultMaxTTL),
		keepalive:  orDefault(opts.KeepaliveInterval, DefaultKeepaliveInterval),
		logger:     opts.Logger,
		routes:     routeTable(),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case h.minTTL < 0 || h.maxTTL < 0 || h.defaultTTL < 0:
		return nil, errors.New("registry handler: TTLs must not be negative")
	case h.minTTL > h.maxTTL:
		return nil, fmt.Errorf("registry handler: min TTL %v is above max TTL %v", h.minTTL, h.maxTTL)
	case h.defaultTTL < h.minTTL || h.defaultTTL > h.maxTTL:
		return nil, fmt.Errorf("registry handler: default TTL %v is outside [%v, %v]", h.defaultTTL, h.minTTL, h.maxTTL)
	case h.keepalive < 0:
		return nil, errors.New("registry handler: keepalive interval must not be negative")
	}
	if err := h.setTokens(opts.Tokens); err != nil {
		return nil, err
	}
	if opts.ReadToken != "" {
		d := sha256.Sum256([]byte(opts.ReadToken))
		h.readDigest = &d
	}
	return h, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (h *handler) setTokens(tokens []Token) error {
	names := make(map[string]bool, len(tokens))
	secrets := make(map[[sha256.Size]byte]string, len(tokens))
	for i, t := range tokens {
		where := fmt.Sprintf("registry handler: tokens[%d]", i)
		if t.Name == "" {
			return fmt.Errorf("%s: name must not be empty", where)
		}
		where += fmt.Sprintf(" (%q)", t.Name)
		if names[t.Name] {
			return fmt.Errorf("%s: duplicate name", where)
		}
		names[t.Name] = true
		if t.Token == "" {
			return fmt.Errorf("%s: token must not be empty", where)
		}
		d := sha256.Sum256([]byte(t.Token))
		if other, ok := secrets[d]; ok {
			return fmt.Errorf("%s: same secret as token %q", where, other)
		}
		secrets[d] = t.Name
		if len(t.Services) == 0 {
			return fmt.Errorf("%s: services must list at least one service or pattern", where)
		}
		for j, p := range t.Services {
			if err := validatePattern(p); err != nil {
				return fmt.Errorf("%s: services[%d]: %w", where, j, err)
			}
		}
		h.tokens = append(h.tokens, token{name: t.Name, digest: d, services: append([]string(nil), t.Services...)})
	}
	return nil
}

// route is one endpoint of the API. path is relative to BasePath, with
// {service} and {id} as parameters, as in the OpenAPI document.
type route struct {
	method string
	path   string
	segs   []string
	serve  func(h *handler, w http.ResponseWriter, r *http.Request, p params)
}

type params struct{ service, id string }

// routeTable lists every endpoint; the OpenAPI document must list the same.
func routeTable() []route {
	rs := []route{
		{method: http.MethodGet, path: "/services", serve: (*handler).listServices},
		{method: http.MethodGet, path: "/services/{service}/instances", serve: (*handler).listInstances},
		{method: http.MethodGet, path: "/services/{service}/instances/{id}", serve: (*handler).getInstance},
		{method: http.MethodPut, path: "/services/{service}/instances/{id}", serve: (*handler).register},
		{method: http.MethodDelete, path: "/services/{service}/instances/{id}", serve: (*handler).deregister},
		{method: http.MethodPut, path: "/services/{service}/instances/{id}/heartbeat", serve: (*handler).heartbeat},
		{method: http.MethodGet, path: "/watch", serve: (*handler).watch},
	}
	for i := range rs {
		rs[i].segs = strings.Split(rs[i].path[1:], "/")
	}
	return rs
}

func (rt *route) match(segs []string) (params, bool) {
	var p params
	if len(segs) != len(rt.segs) {
		return p, false
	}
	for i, s := range rt.segs {
		switch s {
		case "{service}":
			p.service = segs[i]
		case "{id}":
			p.id = segs[i]
		default:
			if segs[i] != s {
				return p, false
			}
		}
	}
	return p, true
}

// ServeHTTP routes the request. A path no route matches is 404; a path that
// matches with another method is 405 with Allow.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r.URL.EscapedPath())
	var allow []string
	if ok {
		for i := range h.routes {
			rt := &h.routes[i]
			p, ok := rt.match(segs)
			if !ok {
				continue
			}
			if rt.method == r.Method {
				rt.serve(h, w, r, p)
				return
			}
			allow = append(allow, rt.method)
		}
	}
	if len(allow) == 0 {
		h.problem(w, http.StatusNotFound, "", "no registry API endpoint at "+r.URL.Path)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	h.problem(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("method %s is not allowed here; allowed: %s", r.Method, strings.Join(allow, ", ")))
}

// splitPath returns the unescaped segments of an escaped path under
// BasePath. Splitting before unescaping keeps an encoded '/' inside its
// segment, where validation refuses it.
func splitPath(escaped string) ([]string, bool) {
	rest, ok := strings.CutPrefix(escaped, BasePath+"/")
	if !ok {
		return nil, false
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		u, err := pathUnescape(s)
		if err != nil {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
}

func pathUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	return url.PathUnescape(s)
}

// problem writes a problem details document; typ is the suffix of its type
// ("" for about:blank).
func (h *handler) problem(w http.ResponseWriter, status int, typ, detail string) {
	d := problem.Details{Status: status, Detail: detail}
	if typ != "" {
		d.Type = ProblemTypeBase + typ
	}
	problem.Write(w, d)
}

// storeErrors maps the store's errors to statuses and problem types.
var storeErrors = [...]struct {
	err    error
	status int
	typ    string
}{
	{ErrNotFound, http.StatusNotFound, "not-found"},
	{ErrInvalid, http.StatusBadRequest, "invalid"},
	{ErrCompacted, http.StatusGone, "compacted"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{ErrClosed, http.StatusServiceUnavailable, "unavailable"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
}

// fail answers a store error. notFound is the detail of ErrNotFound.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		h.logger.Debug("registry: client went away", "method", r.Method, "path", r.URL.Path)
		return
	}
	for _, m := range storeErrors {
		if !errors.Is(err, m.err) {
			continue
		}
		detail := err.Error()
		switch m.status {
		case http.StatusNotFound:
			detail = notFound
		case http.StatusGone:
			detail = "the revision to resume after is older than the registry's kept history, or not of this registry; list again and watch from the listing's revision"
		case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			h.logger.Warn("registry: storage error", "method", r.Method, "path", r.URL.Path, "err", err)
			detail = "the registry's storage is unavailable; retry later"
		}
		h.problem(w, m.status, m.typ, detail)
		return
	}
	h.logger.Error("registry: unexpected storage error", "method", r.Method, "path", r.URL.Path, "err", err)
	h.problem(w, http.StatusInternalServerError, "", "internal error")
}

func (h *handler) badRequest(w http.ResponseWriter, detail string) {
	h.problem(w, http.StatusBadRequest, "invalid", detail)
}

// bearer returns the request's bearer token, or "" when there is none.
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// lookup returns the registration token whose secret is s, or nil. Every
// token is compared, in constant time, on digests.
func (h *handler) lookup(s string) *token {
	sum := sha256.Sum256([]byte(s))
	var found *token
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i].digest[:]) == 1 {
			found = &h.tokens[i]
		}
	}
	return found
}

// authWrite admits a write to service and returns the token's name ("" when
// writes are open); otherwise it answers 401 or 403 and returns false.
func (h *handler) authWrite(w http.ResponseWriter, r *http.Request, service string) (string, bool) {
	if len(h.tokens) == 0 {
		return "", true
	}
	s := bearer(r)
	if s == "" {
		h.refuse(w, r, http.StatusUnauthorized, "missing token", "", "a registration token is required: Authorization: Bearer <token>")
		return "", false
	}
	t := h.lookup(s)
	if t == nil {
		h.refuse(w, r, http.StatusUnauthorized, "unknown token", "", "the bearer token is not a registration token")
		return "", false
	}
	if !t.covers(service) {
		h.refuse(w, r, http.StatusForbidden, "token does not cover the service", t.name,
			fmt.Sprintf("this token may not write service %q", service))
		return "", false
	}
	return t.name, true
}

// authRead admits a read, or answers 401 and returns false.
func (h *handler) authRead(w http.ResponseWriter, r *http.Request) bool {
	if h.readDigest == nil {
		return true
	}
	s := bearer(r)
	if s == "" {
		h.refuse(w, r, http.StatusUnauthorized, "missing token", "", "a read token is required: Authorization: Bearer <token>")
		return false
	}
	sum := sha256.Sum256([]byte(s))
	if subtle.ConstantTimeCompare(sum[:], h.readDigest[:]) == 1 || h.lookup(s) != nil {
		return true
	}
	h.refuse(w, r, http.StatusUnauthorized, "unknown token", "", "the bearer token is neither the read token nor a registration token")
	return false
}

// refuse logs a refused request with the token's name (never the token)
// and answers it.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason, name, detail string) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason}
	if name != "" {
		attrs = append(attrs, "token", name)
	}
	h.logger.Warn("registry: request refused", attrs...)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", authRealm)
		h.problem(w, status, "unauthorized", detail)
		return
	}
	h.problem(w, status, "forbidden", detail)
}

// revision returns the store's current revision for RevisionHeader, at
// least floor. It is best effort: on error it returns floor.
func (h *handler) revision(ctx context.Context, service string, floor int64) int64 {
	var rev int64
	var err error
	if rs, ok := h.store.(revisioner); ok {
		rev, err = rs.Revision(ctx)
	} else {
		_, rev, err = h.store.Instances(ctx, service)
	}
	if err != nil {
		return floor
	}
	return max(rev, floor)
}

// writeJSON answers v with status and the revision header.
func writeJSON(w http.ResponseWriter, status int, rev int64, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Error(w, http.StatusInternalServerError, "internal error")
		return
	}
	body = append(body, '\n')
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set(RevisionHeader, strconv.FormatInt(rev, 10))
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (h *handler) validPath(w http.ResponseWriter, p params) bool {
	if err := validateService(p.service); err != nil {
		h.badRequest(w, err.Error())
		return false
	}
	if p.id != "" {
		if err := validateID(p.id); err != nil {
			h.badRequest(w, err.Error())
			return false
		}
	}
	return true
}

func notFoundDetail(p params) string {
	return fmt.Sprintf("instance %q of service %q is not registered", p.id, p.service)
}

func (h *handler) register(w http.ResponseWriter, r *http.Request, p params) {
	name, ok := h.authWrite(w, r, p.service)
	if !ok || !h.validPath(w, p) {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			h.problem(w, http.StatusUnsupportedMediaType, "", "Content-Type must be application/json")
			return
		}
	}
	if r.ContentLength > maxBodyBytes {
		h.problem(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is over %d bytes", maxBodyBytes))
		return
	}
	in, ttl, status, err := decodeRegistration(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if status == http.StatusBadRequest {
			h.badRequest(w, err.Error())
		} else {
			h.problem(w, status, "", err.Error())
		}
		return
	}
	if in.Service != "" && in.Service != p.service {
		h.badRequest(w, fmt.Sprintf("service: %q in the body does not match %q in the path", in.Service, p.service))
		return
	}
	if in.ID != "" && in.ID != p.id {
		h.badRequest(w, fmt.Sprintf("id: %q in the body does not match %q in the path", in.ID, p.id))
		return
	}
	in.Service, in.ID = p.service, p.id
	if ttl == 0 {
		ttl = h.defaultTTL
	}
	if ttl < h.minTTL || ttl > h.maxTTL {
		h.badRequest(w, fmt.Sprintf("ttl: %v is outside [%v, %v]", ttl, h.minTTL, h.maxTTL))
		return
	}
	if err := Validate(&in); err != nil {
		h.badRequest(w, err.Error())
		return
	}
	out, replaced, err := h.storeRegister(r.Context(), in, ttl)
	if err != nil {
		h.fail(w, r, err, notFoundDetail(p))
		return
	}
	h.logger.Info("registry: instance registered", "service", out.Service, "id", out.ID,
		"address", out.Address, "version", out.Version, "ttl", ttl, "replaced", replaced, "token", name)
	status = http.StatusCreated
	if replaced {
		status = http.StatusOK
	}
	writeJSON(w, status, h.revision(r.Context(), p.service, out.Revision), out)
}

// storeRegister registers in and tells whether it replaced an entry. A
// store that cannot tell is asked first; two registrations of the same
// instance at once may then both be reported as new.
func (h *handler) storeRegister(ctx context.Context, in Instance, ttl time.Duration) (Instance, bool, error) {
	if rr, ok := h.store.(replaceReporter); ok {
		return rr.register(in, ttl)
	}
	_, err := h.lookupInstance(ctx, in.Service, in.ID)
	replaced := err == nil
	out, err := h.store.Register(ctx, in, ttl)
	return out, replaced, err
}

func (h *handler) heartbeat(w http.ResponseWriter, r *http.Request, p params) {
	if _, ok := h.authWrite(w, r, p.service); !ok || !h.validPath(w, p) {
		return
	}
	out, err := h.store.Heartbeat(r.Context(), p.service, p.id)
	if err != nil {
		h.fail(w, r, err, notFoundDetail(p)+"; register it again")
		return
	}
	writeJSON(w, http.StatusOK, h.revision(r.Context(), p.service, out.Revision), out)
}

func (h *handler) deregister(w http.ResponseWriter, r *http.Request, p params) {
	name, ok := h.authWrite(w, r, p.service)
	if !ok || !h.validPath(w, p) {
		return
	}
	if err := h.store.Deregister(r.Context(), p.service, p.id); err != nil {
		h.fail(w, r, err, notFoundDetail(p))
		return
	}
	h.logger.Info("registry: instance deregistered", "service", p.service, "id", p.id, "token", name)
	w.Header().Set(RevisionHeader, strconv.FormatInt(h.revision(r.Context(), p.service, 0), 10))
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) listServices(w http.ResponseWriter, r *http.Request, _ params) {
	if !h.authRead(w, r) {
		return
	}
	// The revision is read first, so the listing reflects at least it.
	rev := h.revision(r.Context(), "", 0)
	svcs, err := h.store.Services(r.Context())
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	if svcs == nil {
		svcs = []ServiceSummary{}
	}
	writeJSON(w, http.StatusOK, rev, struct {
		Revision int64            `json:"revision"`
		Services []ServiceSummary `json:"services"`
	}{rev, svcs})
}

func (h *handler) listInstances(w http.ResponseWriter, r *http.Request, p params) {
	if !h.authRead(w, r) || !h.validPath(w, p) {
		return
	}
	ins, rev, err := h.store.Instances(r.Context(), p.service)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	if ins == nil {
		ins = []Instance{}
	}
	writeJSON(w, http.StatusOK, rev, struct {
		Revision  int64      `json:"revision"`
		Instances []Instance `json:"instances"`
	}{rev, ins})
}

func (h *handler) getInstance(w http.ResponseWriter, r *http.Request, p params) {
	if !h.authRead(w, r) || !h.validPath(w, p) {
		return
	}
	in, err := h.lookupInstance(r.Context(), p.service, p.id)
	if err != nil {
		h.fail(w, r, err, notFoundDetail(p))
		return
	}
	writeJSON(w, http.StatusOK, h.revision(r.Context(), p.service, in.Revision), in)
}

// lookupInstance reads one instance, by listing its service when the store
// cannot read one alone.
func (h *handler) lookupInstance(ctx context.Context, service, id string) (Instance, error) {
	if g, ok := h.store.(instanceGetter); ok {
		return g.Instance(ctx, service, id)
	}
	ins, _, err := h.store.Instances(ctx, service)
	if err != nil {
		return Instance{}, err
	}
	for _, in := range ins {
		if in.ID == id {
			return in, nil
		}
	}
	return Instance{}, ErrNotFound
}

// watch streams the changes after a revision as Server-Sent Events.
func (h *handler) watch(w http.ResponseWriter, r *http.Request, _ params) {
	if !h.authRead(w, r) {
		return
	}
	q := r.URL.Query()
	service := q.Get("service")
	if service != "" {
		if err := validateService(service); err != nil {
			h.badRequest(w, err.Error())
			return
		}
	}
	var after int64
	for _, src := range [...]struct{ name, value string }{
		{"revision", q.Get("revision")}, {"Last-Event-ID", r.Header.Get("Last-Event-ID")},
	} {
		if src.value == "" {
			continue
		}
		n, err := strconv.ParseInt(src.value, 10, 64)
		if err != nil || n < 0 {
			h.badRequest(w, src.name+": must be a non-negative integer")
			return
		}
		after = n // Last-Event-ID, read last, wins.
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rev := h.revision(ctx, service, 0)
	if after == 0 {
		// Pin "from now on" to the revision the header reports, so that a
		// client resuming after it misses nothing and gets nothing twice.
		// (At revision 0 the store decides what "now" is.)
		after = rev
	}
	wt, err := h.store.Watch(ctx, service, after)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	defer wt.Close()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	hd.Set(RevisionHeader, strconv.FormatInt(rev, 10))
	rc := http.NewResponseController(w)
	// A stream outlives the server's write timeout.
	_ = rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		h.logger.Warn("registry: watch: the response cannot be streamed", "err", err)
		return
	}

	type result struct {
		ev  Event
		err error
	}
	// Next runs in its own goroutine so that keepalives go out while it
	// blocks; the unbuffered channel holds it back until each event is
	// written.
	results := make(chan result)
	go func() {
		for {
			ev, err := wt.Next(ctx)
			select {
			case results <- result{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	keepalive := time.NewTimer(h.keepalive)
	defer keepalive.Stop()
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case res := <-results:
			if res.err != nil {
				if !errors.Is(res.err, ErrClosed) && ctx.Err() == nil {
					h.logger.Info("registry: watch ended", "service", service, "err", res.err)
				}
				return
			}
			buf, err = appendSSE(buf[:0], res.ev)
			if err != nil {
				h.logger.Error("registry: watch: encode event", "err", err)
				return
			}
		case <-keepalive.C:
			buf = append(buf[:0], ": keepalive\n\n"...)
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		keepalive.Reset(h.keepalive)
	}
}

// appendSSE appends ev as one Server-Sent Event. The JSON encoding has no
// newlines, so the data fits one line.
func appendSSE(b []byte, ev Event) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return b, err
	}
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, ev.Revision, 10)
	b = append(b, "\nevent: "...)
	b = append(b, ev.Type...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}
