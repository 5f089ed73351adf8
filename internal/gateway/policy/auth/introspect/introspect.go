// Package introspect asks an OAuth 2.0 authorization server whether an
// opaque bearer token is active (RFC 7662) and remembers the answers in
// caches bounded in size and time.
//
// Unknown tokens are what an attacker can produce without limit, so each
// costs at most one call however many requests carry it at once
// (concurrent requests for the same new token share one call), the calls
// running at once are bounded, and inactive answers are kept in a small
// cache of their own, so a flood of bad tokens cannot evict the active
// ones.
package introspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/jwt"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/tokencache"
)

// Errors returned by Introspect.
var (
	// ErrInactive is a token the server does not vouch for (inactive,
	// expired, for another audience, too long or without a subject).
	ErrInactive = errors.New("introspect: token is not active")
	// ErrUnavailable means the server could not be asked or gave an
	// unusable answer; the token's validity is unknown.
	ErrUnavailable = errors.New("introspect: token introspection is unavailable")
	// ErrBusy means MaxConcurrent calls are already running; the token was
	// not checked.
	ErrBusy = errors.New("introspect: too many introspection calls in progress")
)

// Defaults of Options.
const (
	DefaultMaxConcurrent     = 64
	DefaultInactiveCacheSize = 1024
)

// maxInactiveTTL bounds how long an inactive answer is remembered, so a
// token that becomes valid (clock skew at the server) is not refused long.
const maxInactiveTTL = 10 * time.Second

// maxResponseBytes bounds an introspection response.
const maxResponseBytes = 64 << 10

// Options configure a Client.
type Options struct {
	// Name identifies the provider in Consumer.Issuer.
	Name string
	// URL is the introspection endpoint. Required.
	URL string
	// ClientID and ClientSecret authenticate the gateway (HTTP basic).
	ClientID, ClientSecret string
	// Audiences, when set, require "aud" to name one of them.
	Audiences []string
	// Timeout bounds one call. Default 5s.
	Timeout time.Duration
	// CacheTTL is how long an active answer is remembered, never past the
	// token's exp. Default 60s.
	CacheTTL time.Duration
	// CacheSize bounds the cache of active answers. Default 10000.
	CacheSize int
	// InactiveCacheSize bounds the separate cache of inactive answers.
	// Default 1024.
	InactiveCacheSize int
	// MaxConcurrent bounds the calls running at once; a token that would
	// need one more gets ErrBusy. Default 64.
	MaxConcurrent int
	// MaxTokenBytes is the longest token sent. Default 8KiB.
	MaxTokenBytes int
	// ForwardClaims are response members copied to Consumer.Forward.
	ForwardClaims []string
	// Client makes the calls. If nil, a client without redirects.
	Client *http.Client
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// Client introspects tokens at one endpoint. It is safe for concurrent use.
type Client struct {
	opts     Options
	cache    *tokencache.Cache[*exchange.Consumer]
	inactive *tokencache.Cache[struct{}]
	slots    chan struct{}

	mu       sync.Mutex
	inflight map[string]*call
}

// call is one introspection call that concurrent requests for the same
// token wait for.
type call struct {
	done     chan struct{}
	consumer *exchange.Consumer
	err      error
}

// New returns a client for opts.
func New(opts Options) (*Client, error) {
	if _, err := url.Parse(opts.URL); err != nil || opts.URL == "" {
		return nil, fmt.Errorf("introspect: invalid URL %q", opts.URL)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 60 * time.Second
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.InactiveCacheSize <= 0 {
		opts.InactiveCacheSize = DefaultInactiveCacheSize
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxTokenBytes <= 0 {
		opts.MaxTokenBytes = 8 << 10
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{
		opts:     opts,
		cache:    tokencache.New[*exchange.Consumer](opts.CacheSize, opts.Now),
		inactive: tokencache.New[struct{}](opts.InactiveCacheSize, opts.Now),
		slots:    make(chan struct{}, opts.MaxConcurrent),
		inflight: map[string]*call{},
	}, nil
}

// Introspect returns the consumer an active token stands for.
func (c *Client) Introspect(ctx context.Context, token string) (*exchange.Consumer, error) {
	if cons, ok := c.cache.Get(token); ok {
		return cons, nil
	}
	if _, ok := c.inactive.Get(token); ok {
		return nil, ErrInactive
	}
	if len(token) > c.opts.MaxTokenBytes {
		return nil, ErrInactive
	}
	c.mu.Lock()
	if cl, ok := c.inflight[token]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.consumer, cl.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
	}
	select {
	case c.slots <- struct{}{}:
	default:
		c.mu.Unlock()
		return nil, ErrBusy
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[token] = cl
	c.mu.Unlock()

	// The call outlives the request that started it when that request is
	// cancelled: others may be waiting for the same answer.
	cl.consumer, cl.err = c.introspect(context.WithoutCancel(ctx), token)
	<-c.slots
	c.mu.Lock()
	delete(c.inflight, token)
	c.mu.Unlock()
	close(cl.done)
	return cl.consumer, cl.err
}

// introspect asks the server about token and caches the answer.
func (c *Client) introspect(ctx context.Context, token string) (*exchange.Consumer, error) {
	resp, err := c.call(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	now := c.opts.Now()
	consumer, exp := c.consumer(resp, now)
	if consumer == nil {
		c.inactive.Put(token, struct{}{}, now.Add(min(c.opts.CacheTTL, maxInactiveTTL)))
		return nil, ErrInactive
	}
	until := now.Add(c.opts.CacheTTL)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	c.cache.Put(token, consumer, until)
	return consumer, nil
}

func (c *Client) call(ctx context.Context, token string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(c.opts.ClientID), url.QueryEscape(c.opts.ClientSecret))
	res, err := c.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", res.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponseBytes {
		return nil, errors.New("response too large")
	}
	return Parse(data)
}

// Parse decodes an introspection response: a JSON object with a boolean
// "active" member.
func Parse(data []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("response is not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	if _, ok := m["active"].(bool); !ok {
		return nil, errors.New("response has no boolean \"active\" member")
	}
	return m, nil
}

// consumer returns the consumer of an active answer and the token's expiry
// (zero when the answer has none), or nil when the token must be refused.
func (c *Client) consumer(m map[string]any, now time.Time) (*exchange.Consumer, time.Time) {
	if active, _ := m["active"].(bool); !active {
		return nil, time.Time{}
	}
	var exp time.Time
	if n, ok := m["exp"].(json.Number); ok {
		secs, err := n.Int64()
		if err != nil {
			return nil, time.Time{}
		}
		if exp = time.Unix(secs, 0); !exp.After(now) {
			return nil, time.Time{}
		}
	}
	if n, ok := m["nbf"].(json.Number); ok {
		if secs, err := n.Int64(); err != nil || time.Unix(secs, 0).After(now) {
			return nil, time.Time{}
		}
	}
	if len(c.opts.Audiences) > 0 {
		aud := jwt.Strings(m["aud"])
		if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(c.opts.Audiences, a) }) {
			return nil, time.Time{}
		}
	}
	id := ""
	for _, k := range []string{"sub", "username", "client_id"} {
		if s, ok := m[k].(string); ok && s != "" {
			id = s
			break
		}
	}
	if id == "" || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, time.Time{}
	}
	claims := jwt.ClaimValues(m)
	cons := &exchange.Consumer{
		ID:     id,
		Method: exchange.MethodIntrospection,
		Issuer: c.opts.Name,
		Scopes: jwt.Strings(m["scope"]),
		Roles:  jwt.Strings(m["roles"]),
		Claims: claims,
	}
	cons.Forward = jwt.Forward(claims, c.opts.ForwardClaims)
	return cons, exp
}
