package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/introspect"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/jwt"
)

// Registry keeps what authentication must not lose on a reload: JWKS key
// caches, verified-token caches and introspection caches. The gateway
// server owns one Registry; every snapshot build draws from it through
// Begin, and entries are keyed by a fingerprint of their configuration, so
// an unchanged issuer keeps its keys and cached tokens while a changed one
// starts afresh.
type Registry struct {
	logger *slog.Logger
	client *http.Client
	gate   *Gate

	mu         sync.Mutex
	jwks       map[string]*jwt.JWKS
	verifiers  map[string]*jwt.Verifier
	introspect map[string]*introspect.Client
}

// NewRegistry returns an empty registry. logger receives key fetch
// failures; if nil they are discarded.
func NewRegistry(logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		logger: logger,
		gate:   NewGate(0, 0),
		// Redirects are not followed: keys and token answers come from
		// exactly the configured URL.
		client:     &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		jwks:       map[string]*jwt.JWKS{},
		verifiers:  map[string]*jwt.Verifier{},
		introspect: map[string]*introspect.Client{},
	}
}

// BasicComparisons returns the number of bcrypt comparisons the gateway
// has run for basic authentication, in every snapshot.
func (r *Registry) BasicComparisons() int64 { return r.gate.Comparisons() }

// Begin starts drawing providers for one snapshot built from cfg.
func (r *Registry) Begin(cfg *config.Auth) *Providers {
	if cfg == nil {
		cfg = &config.Auth{}
	}
	return &Providers{
		reg:        r,
		cfg:        cfg,
		jwks:       map[string]*jwt.JWKS{},
		verifiers:  map[string]*jwt.Verifier{},
		introspect: map[string]*introspect.Client{},
		byName:     map[string]*jwt.Verifier{},
	}
}

// Providers are the authentication providers of one snapshot being built.
// Policies of every route of the snapshot share them. It is used by one
// goroutine (the snapshot build) and then only read.
type Providers struct {
	reg *Registry
	cfg *config.Auth

	store    *Store
	storeErr error
	built    bool

	// what this build uses, by fingerprint, for Commit.
	jwks       map[string]*jwt.JWKS
	verifiers  map[string]*jwt.Verifier
	introspect map[string]*introspect.Client
	byName     map[string]*jwt.Verifier
}

// Config returns the auth configuration the providers come from.
func (p *Providers) Config() *config.Auth { return p.cfg }

// Consumers returns the consumer store of the configuration, built once per
// snapshot.
func (p *Providers) Consumers() (*Store, error) {
	if !p.built {
		p.store, p.storeErr = NewStore(p.cfg.AllConsumers(), p.reg.gate)
		p.built = true
	}
	return p.store, p.storeErr
}

// Verifier returns the verifier of the named JWT issuer.
func (p *Providers) Verifier(name string) (*jwt.Verifier, error) {
	if v, ok := p.byName[name]; ok {
		return v, nil
	}
	var ic *config.JWTIssuer
	for i := range p.cfg.JWTIssuers {
		if p.cfg.JWTIssuers[i].Name == name {
			ic = &p.cfg.JWTIssuers[i]
		}
	}
	if ic == nil {
		return nil, fmt.Errorf("unknown JWT issuer %q", name)
	}
	opts, fp, err := p.verifierOptions(ic)
	if err != nil {
		return nil, fmt.Errorf("JWT issuer %q: %w", name, err)
	}
	p.reg.mu.Lock()
	v, ok := p.reg.verifiers[fp]
	p.reg.mu.Unlock()
	if !ok {
		if v, err = jwt.New(opts); err != nil {
			return nil, fmt.Errorf("JWT issuer %q: %w", name, err)
		}
	}
	p.verifiers[fp] = v
	p.byName[name] = v
	return v, nil
}

// verifierOptions translates an issuer's configuration and returns it with
// its fingerprint, which covers the content of its key files.
func (p *Providers) verifierOptions(ic *config.JWTIssuer) (jwt.Options, string, error) {
	opts := jwt.Options{
		Name: ic.Name, Issuer: ic.Issuer, Audiences: ic.Audiences, Algorithms: ic.Algorithms,
		Leeway: ic.Leeway.D(), MaxTokenBytes: int(ic.MaxTokenBytes),
		SubjectClaim: ic.SubjectClaim, ScopesClaim: ic.ScopesClaim, RolesClaim: ic.RolesClaim,
		ForwardClaims: ic.ForwardClaims, CacheSize: ic.TokenCacheSize,
	}
	if ic.HMACSecret != "" {
		opts.HMACSecret = []byte(ic.HMACSecret)
	}
	h := sha256.New()
	b, err := json.Marshal(ic)
	if err != nil {
		return opts, "", err
	}
	h.Write(b)
	h.Write([]byte(ic.HMACSecret)) // not in the JSON form
	for _, kf := range ic.PublicKeys {
		data, err := os.ReadFile(kf.File)
		if err != nil {
			return opts, "", fmt.Errorf("public key: %w", err)
		}
		pub, err := jwt.ParsePEM(data)
		if err != nil {
			return opts, "", fmt.Errorf("public key %q: %w", kf.File, err)
		}
		opts.Keys = append(opts.Keys, &jwt.Key{KID: kf.KID, Public: pub})
		h.Write(data)
	}
	if ic.JWKSURL != "" {
		opts.JWKS = p.jwksFor(ic)
	}
	return opts, hex.EncodeToString(h.Sum(nil)), nil
}

func (p *Providers) jwksFor(ic *config.JWTIssuer) *jwt.JWKS {
	key := fmt.Sprintf("%s|%s|%s|%s", ic.JWKSURL, ic.JWKSCacheTTL, ic.JWKSRefreshCooldown, ic.JWKSTimeout)
	if j, ok := p.jwks[key]; ok {
		return j
	}
	p.reg.mu.Lock()
	j, ok := p.reg.jwks[key]
	p.reg.mu.Unlock()
	if !ok {
		j = jwt.NewJWKS(jwt.JWKSOptions{
			URL: ic.JWKSURL, TTL: ic.JWKSCacheTTL.D(), Cooldown: ic.JWKSRefreshCooldown.D(), Timeout: ic.JWKSTimeout.D(),
			Client: p.reg.client, Logger: p.reg.logger.With("jwt_issuer", ic.Name),
		})
	}
	p.jwks[key] = j
	return j
}

// Introspector returns the client of the named introspection provider.
func (p *Providers) Introspector(name string) (*introspect.Client, error) {
	var pc *config.IntrospectionProvider
	for i := range p.cfg.Introspection {
		if p.cfg.Introspection[i].Name == name {
			pc = &p.cfg.Introspection[i]
		}
	}
	if pc == nil {
		return nil, fmt.Errorf("unknown introspection provider %q", name)
	}
	b, err := json.Marshal(pc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append(b, pc.ClientSecret...))
	fp := hex.EncodeToString(sum[:])
	if c, ok := p.introspect[fp]; ok {
		return c, nil
	}
	p.reg.mu.Lock()
	c, ok := p.reg.introspect[fp]
	p.reg.mu.Unlock()
	if !ok {
		c, err = introspect.New(introspect.Options{
			Name: pc.Name, URL: pc.URL, ClientID: pc.ClientID, ClientSecret: pc.ClientSecret,
			Audiences: pc.Audiences, Timeout: pc.Timeout.D(), CacheTTL: pc.CacheTTL.D(), CacheSize: pc.CacheSize, MaxConcurrent: pc.MaxConcurrentCalls,
			MaxTokenBytes: int(pc.MaxTokenBytes), ForwardClaims: pc.ForwardClaims, Client: p.reg.client,
		})
		if err != nil {
			return nil, fmt.Errorf("introspection provider %q: %w", name, err)
		}
	}
	p.introspect[fp] = c
	return c, nil
}

// Commit makes the providers this build used the registry's whole content:
// later builds reuse them, and those no longer used are dropped. Call it
// once the snapshot is built successfully.
func (p *Providers) Commit() {
	p.reg.mu.Lock()
	defer p.reg.mu.Unlock()
	p.reg.jwks, p.reg.verifiers, p.reg.introspect = p.jwks, p.verifiers, p.introspect
}
