package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits of the Client.
const (
	// unaryTimeout bounds every call but Watch, and a Watch's wait for its
	// response headers.
	unaryTimeout = 10 * time.Second
	// Response bodies are read up to these sizes: a listing of every
	// instance of a large system fits in 16 MiB (an instance is a few
	// hundred bytes, and at most about 20 KiB with full metadata).
	maxListBody     = 16 << 20
	maxInstanceBody = 1 << 20
	maxProblemBody  = 64 << 10
	// minHeartbeat is the shortest gap between two heartbeats of Maintain.
	minHeartbeat = 100 * time.Millisecond
	// watchIdleTimeout: a watch stream silent for this long (the registry
	// sends a keepalive every 15s by default) is taken for a dead
	// connection, such as one cut without a FIN, and reconnected.
	watchIdleTimeout = time.Minute
)

// ClientOptions configures NewClient.
type ClientOptions struct {
	// Token is sent as "Authorization: Bearer <token>". Empty sends none.
	Token string
	// HTTPClient makes the requests. Nil uses a client of its own over a
	// clone of http.DefaultTransport. Every call but Watch is bounded by
	// 10s whatever the client; a Watch stream lasts as long as its context,
	// so HTTPClient.Timeout should be zero (else each stream is cut at that
	// timeout and reconnected).
	HTTPClient *http.Client
	// Logger receives Maintain's heartbeat failures and recoveries and a
	// Watcher's reconnections (at debug level). Nil discards them.
	Logger *slog.Logger
}

// Client speaks the registry's HTTP API. It implements Reader, so discovery
// can follow a remote registry as it follows a local store. It is safe for
// concurrent use.
type Client struct {
	base  string // the API's base URL, ending in BasePath
	token string
	hc    *http.Client
	log   *slog.Logger
	idle  time.Duration // watchIdleTimeout; shorter in tests
}

var _ Reader = (*Client)(nil)

// NewClient returns a client of the registry API served at baseURL, the
// root of the gateway's admin listener such as "http://127.0.0.1:9901" (a
// path prefix is kept; a trailing "/registry/v1" is accepted too).
func NewClient(baseURL string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		if !strings.Contains(baseURL, "://") {
			return nil, fmt.Errorf("registry url %q: must be an http or https URL such as http://127.0.0.1:9901", baseURL)
		}
		return nil, fmt.Errorf("registry url: %w", err)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("registry url %q: must be an http or https URL such as http://127.0.0.1:9901", shown)
	case u.Host == "":
		return nil, fmt.Errorf("registry url %q: no host", shown)
	case u.User != nil:
		return nil, fmt.Errorf("registry url %q: credentials in the URL are not supported; use a token", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("registry url %q: must not have a query", shown)
	case u.Fragment != "":
		return nil, fmt.Errorf("registry url %q: must not have a fragment", shown)
	}
	if strings.ContainsAny(opts.Token, "\r\n") {
		return nil, errors.New("registry token: must not contain line breaks")
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	path = strings.TrimSuffix(path, BasePath)
	c := &Client{
		base:  u.Scheme + "://" + u.Host + path + BasePath,
		token: opts.Token,
		hc:    opts.HTTPClient,
		log:   opts.Logger,
		idle:  watchIdleTimeout,
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// APIError is an error answer of the registry API: its status and the
// problem details document's type, title and detail. errors.Is matches it
// to ErrNotFound (404), ErrCompacted (410), ErrInvalid (400) and
// ErrUnavailable (503).
type APIError struct {
	Status int
	Type   string
	Title  string
	Detail string
}

func (e *APIError) Error() string {
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	msg := "registry: " + strconv.Itoa(e.Status) + " " + title
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is reports whether e is what target names.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrCompacted:
		return e.Status == http.StatusGone
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// Register registers in (or replaces the instance with its service and
// ID) with the given TTL; 0 asks for the registry's default. It returns the
// instance as stored.
func (c *Client) Register(ctx context.Context, in Instance, ttl time.Duration) (Instance, error) {
	path, err := instancePath(in.Service, in.ID)
	if err != nil {
		return Instance{}, fmt.Errorf("register: %w", err)
	}
	// Send only what the instance supplies.
	in.Status, in.RegisteredAt, in.LastHeartbeat, in.Revision = "", time.Time{}, time.Time{}, 0
	in.TTL = Duration(max(ttl, 0))
	body, err := json.Marshal(in)
	if err != nil {
		return Instance{}, fmt.Errorf("register %s/%s: %w", in.Service, in.ID, err)
	}
	var out Instance
	if err := c.call(ctx, http.MethodPut, path, body, maxInstanceBody, &out); err != nil {
		return Instance{}, fmt.Errorf("register %s/%s: %w", in.Service, in.ID, err)
	}
	return out, nil
}

// Heartbeat renews the instance's TTL. ErrNotFound means the registry does
// not know it (any more): register again.
func (c *Client) Heartbeat(ctx context.Context, service, id string) (Instance, error) {
	path, err := instancePath(service, id)
	if err != nil {
		return Instance{}, fmt.Errorf("heartbeat: %w", err)
	}
	var out Instance
	if err := c.call(ctx, http.MethodPut, path+"/heartbeat", nil, maxInstanceBody, &out); err != nil {
		return Instance{}, fmt.Errorf("heartbeat %s/%s: %w", service, id, err)
	}
	return out, nil
}

// Deregister removes the instance at once. ErrNotFound if absent.
func (c *Client) Deregister(ctx context.Context, service, id string) error {
	path, err := instancePath(service, id)
	if err != nil {
		return fmt.Errorf("deregister: %w", err)
	}
	if err := c.call(ctx, http.MethodDelete, path, nil, 0, nil); err != nil {
		return fmt.Errorf("deregister %s/%s: %w", service, id, err)
	}
	return nil
}

// Services summarizes every service with at least one instance, sorted by
// name, and the revision the listing reflects.
func (c *Client) Services(ctx context.Context) ([]ServiceSummary, int64, error) {
	var out struct {
		Revision int64            `json:"revision"`
		Services []ServiceSummary `json:"services"`
	}
	if err := c.call(ctx, http.MethodGet, "/services", nil, maxListBody, &out); err != nil {
		return nil, 0, fmt.Errorf("list services: %w", err)
	}
	return out.Services, out.Revision, nil
}

// Instances lists the instances of service, sorted by ID, and the revision
// the listing reflects; an unknown service has none. With service empty it
// lists every service's instances, one request per service, and returns
// the oldest of their revisions, so that a watch from it misses nothing
// (it may replay changes the listing already holds).
func (c *Client) Instances(ctx context.Context, service string) ([]Instance, int64, error) {
	if service != "" {
		return c.instances(ctx, service)
	}
	services, rev, err := c.Services(ctx)
	if err != nil {
		return nil, 0, err
	}
	all := []Instance{}
	for _, s := range services {
		list, r, err := c.instances(ctx, s.Name)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, list...)
		rev = min(rev, r)
	}
	return all, rev, nil
}

func (c *Client) instances(ctx context.Context, service string) ([]Instance, int64, error) {
	var out struct {
		Revision  int64      `json:"revision"`
		Instances []Instance `json:"instances"`
	}
	if err := c.call(ctx, http.MethodGet, "/services/"+pathSegment(service)+"/instances", nil, maxListBody, &out); err != nil {
		return nil, 0, fmt.Errorf("list instances of %s: %w", service, err)
	}
	if out.Instances == nil {
		out.Instances = []Instance{}
	}
	return out.Instances, out.Revision, nil
}

// Instance returns one instance, or an error matching ErrNotFound.
func (c *Client) Instance(ctx context.Context, service, id string) (Instance, error) {
	path, err := instancePath(service, id)
	if err != nil {
		return Instance{}, fmt.Errorf("get instance: %w", err)
	}
	var out Instance
	if err := c.call(ctx, http.MethodGet, path, nil, maxInstanceBody, &out); err != nil {
		return Instance{}, fmt.Errorf("get instance %s/%s: %w", service, id, err)
	}
	return out, nil
}

// call makes one request to the API path under the base URL and decodes a
// 2xx JSON answer into out (unless out is nil), reading at most limit bytes.
// Other answers become an *APIError.
func (c *Client) call(ctx context.Context, method, path string, body []byte, limit int64, out any) error {
	ctx, cancel := context.WithTimeout(ctx, unaryTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readProblem(resp)
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(&limitReader{r: resp.Body, n: limit})
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return fmt.Errorf("%s %s: response body over %d bytes", method, c.base+path, limit)
		}
		return fmt.Errorf("%s %s: decode response: %w", method, c.base+path, err)
	}
	return nil
}

func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// readProblem turns a non-2xx answer into an *APIError, from its problem
// details document when it has one, else from its status and the start of
// its body.
func readProblem(resp *http.Response) error {
	defer drainClose(resp.Body)
	e := &APIError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBody))
	ct := resp.Header.Get("Content-Type")
	if hasMediaType(ct, "application/problem+json") || hasMediaType(ct, "application/json") {
		var doc struct {
			Type   string `json:"type"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &doc) == nil {
			e.Type, e.Title, e.Detail = doc.Type, doc.Title, doc.Detail
			return e
		}
	}
	// Not the registry's answer (a proxy's error page, perhaps): show its
	// start, on one line.
	if utf8.Valid(b) {
		s := strings.Join(strings.Fields(string(b)), " ")
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		e.Detail = s
	}
	return e
}

// errBodyTooLarge: a response body is over the limit its reader was given.
var errBodyTooLarge = errors.New("response body too large")

// limitReader reads at most n bytes of r, then fails with errBodyTooLarge
// (unlike io.LimitReader, whose silent EOF would read as a truncated
// document).
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// drainClose reads a little of what is left of body, so the connection can
// be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

func hasMediaType(contentType, want string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == want
}

// instancePath is the API path of one instance.
func instancePath(service, id string) (string, error) {
	if service == "" {
		return "", errors.New("service: must not be empty")
	}
	if id == "" {
		return "", errors.New("id: must not be empty")
	}
	return "/services/" + pathSegment(service) + "/instances/" + pathSegment(id), nil
}

// pathSegment escapes s as one path segment. "." and ".." are escaped too,
// so that no client or proxy on the way resolves them as relative paths.
func pathSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// Registration is an instance kept registered by Maintain.
type Registration struct {
	c       *Client
	in      Instance      // as asked for
	ttl     time.Duration // as asked for
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex // guards stored
	stored  Instance   // as the registry last answered
	closeMu sync.Mutex // serializes Close and guards gone
	gone    bool       // deregistered by Close
}

// Maintain registers in with the given TTL (0: the registry's default)
// and keeps it registered until ctx ends or Close is called: it heartbeats
// every third of the TTL (at least 100ms apart), registers again when the
// registry no longer knows the instance (it expired, or was deregistered
// behind its back), and after any other failure retries with a growing wait
// that never exceeds the regular interval. Failures and recoveries are
// logged to ClientOptions.Logger. Maintain fails if the first registration
// does.
func (c *Client) Maintain(ctx context.Context, in Instance, ttl time.Duration) (*Registration, error) {
	stored, err := c.Register(ctx, in, ttl)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(ctx)
	r := &Registration{c: c, in: in, ttl: ttl, cancel: cancel, done: make(chan struct{}), stored: stored}
	go r.run(hctx)
	return r, nil
}

// Instance returns the instance as the registry last answered it.
func (r *Registration) Instance() Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stored
}

// interval is the gap between two heartbeats: a third of the TTL the
// registry granted (or the one asked for, if the answer had none).
func (r *Registration) interval() time.Duration {
	ttl := r.Instance().TTL.D()
	if ttl <= 0 {
		ttl = r.ttl
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return max(ttl/3, minHeartbeat)
}

func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	failures := 0
	t := time.NewTimer(r.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.beat(ctx)
		if ctx.Err() != nil {
			return
		}
		next := r.interval()
		switch {
		case err != nil:
			failures++
			next = min(max(jitter(backoffDelay(failures-1)), minHeartbeat), next)
			r.c.log.Warn("registry heartbeat failed; retrying", "service", r.in.Service, "id", r.in.ID, "failures", failures, "retry_in", next, "err", err)
		case failures > 0:
			r.c.log.Info("registry heartbeat recovered", "service", r.in.Service, "id", r.in.ID, "after_failures", failures)
			failures = 0
		}
		t.Reset(next)
	}
}

// beat heartbeats once, registering again if the registry lost the
// instance. One attempt may take at most the TTL: later it is useless.
func (r *Registration) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(3*r.interval(), time.Second))
	defer cancel()
	in, err := r.c.Heartbeat(ctx, r.in.Service, r.in.ID)
	if errors.Is(err, ErrNotFound) {
		r.c.log.Info("registry lost the instance; registering again", "service", r.in.Service, "id", r.in.ID)
		in, err = r.c.Register(ctx, r.in, r.ttl)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.stored = in
	r.mu.Unlock()
	return nil
}

// Close stops heartbeating and deregisters the instance, within ctx. It is
// idempotent: once it has deregistered, later calls return nil at once; if
// deregistering failed, a later call tries again. An instance the registry
// no longer knows counts as deregistered.
func (r *Registration) Close(ctx context.Context) error {
	r.cancel()
	<-r.done
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.gone {
		return nil
	}
	err := r.c.Deregister(ctx, r.in.Service, r.in.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	r.gone = true
	return nil
}
