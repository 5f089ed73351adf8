package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/jwt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/http/httpguts"
)

// Authentication defaults documented on the configuration types.
const (
	DefaultJWKSCacheTTL        = 5 * time.Minute
	DefaultJWKSRefreshCooldown = 30 * time.Second
	DefaultJWKSTimeout         = 5 * time.Second
	DefaultJWTLeeway           = 30 * time.Second
	DefaultMaxTokenBytes       = 8 << 10
	DefaultTokenCacheSize      = 10000
	DefaultIntrospectTimeout   = 5 * time.Second
	DefaultIntrospectCacheTTL  = 60 * time.Second
	DefaultIntrospectMaxCalls  = 64
	DefaultAPIKeyHeader        = "X-Api-Key"
	DefaultRealm               = "portico"
	// MinHMACSecretBytes is the shortest HS256 secret accepted (RFC 7518
	// section 3.2: a key of the same size as the hash output).
	MinHMACSecretBytes = 32
	// MinAPIKeyBytes is the shortest plaintext API key accepted.
	MinAPIKeyBytes = 16
)

// JWTAlgorithms are the signature algorithms a JWT issuer may accept.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256"}

// applyAuthDefaults fills the authentication fields left unset.
func (c *Config) applyAuthDefaults() {
	for i := range c.Auth.JWTIssuers {
		j := &c.Auth.JWTIssuers[i]
		setDefault(&j.JWKSCacheTTL, Duration(DefaultJWKSCacheTTL))
		setDefault(&j.JWKSRefreshCooldown, Duration(DefaultJWKSRefreshCooldown))
		setDefault(&j.JWKSTimeout, Duration(DefaultJWKSTimeout))
		setDefault(&j.Leeway, Duration(DefaultJWTLeeway))
		setDefault(&j.MaxTokenBytes, DefaultMaxTokenBytes)
		setDefault(&j.SubjectClaim, "sub")
		setDefault(&j.ScopesClaim, "scope")
		setDefault(&j.RolesClaim, "roles")
		setDefault(&j.TokenCacheSize, DefaultTokenCacheSize)
	}
	for i := range c.Auth.Introspection {
		p := &c.Auth.Introspection[i]
		setDefault(&p.Timeout, Duration(DefaultIntrospectTimeout))
		setDefault(&p.CacheTTL, Duration(DefaultIntrospectCacheTTL))
		setDefault(&p.CacheSize, DefaultTokenCacheSize)
		setDefault(&p.MaxConcurrentCalls, DefaultIntrospectMaxCalls)
		setDefault(&p.MaxTokenBytes, DefaultMaxTokenBytes)
	}
	for i := range c.Routes {
		a := c.Routes[i].Auth
		if a == nil {
			continue
		}
		setDefault(&a.Realm, DefaultRealm)
		if k := a.APIKey; k != nil && k.Header == "" && k.Query == "" {
			k.Header = DefaultAPIKeyHeader
		}
		if a.Introspection != nil && a.Introspection.Provider == "" && len(c.Auth.Introspection) == 1 {
			a.Introspection.Provider = c.Auth.Introspection[0].Name
		}
	}
}

// CredentialQueryParams returns the query parameters any route reads a
// credential from (API keys, bearer tokens), so the access log can redact
// them.
func (c *Config) CredentialQueryParams() []string {
	var out []string
	for _, r := range c.Routes {
		if a := r.Auth; a != nil {
			if a.APIKey != nil && a.APIKey.Query != "" && !slices.Contains(out, a.APIKey.Query) {
				out = append(out, a.APIKey.Query)
			}
			if a.BearerQuery != "" && !slices.Contains(out, a.BearerQuery) {
				out = append(out, a.BearerQuery)
			}
		}
	}
	return out
}

// authNames are the names defined under auth, for the routes' references.
type authNames struct {
	issuers, providers []string
}

// auth resolves and loads what the auth section refers to (the consumers
// file, key files, API keys given in plaintext) and checks it together with
// every route's auth, authorize and method_override settings.
func (v *validator) auth() {
	a := &v.cfg.Auth
	dir := ""
	if v.cfg.File != "" {
		dir = filepath.Dir(v.cfg.File)
	}
	resolve := func(p *string) {
		if *p != "" && dir != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	resolve(&a.ConsumersFile)
	for i := range a.JWTIssuers {
		for j := range a.JWTIssuers[i].PublicKeys {
			resolve(&a.JWTIssuers[i].PublicKeys[j].File)
		}
	}
	seen := &consumerSeen{ids: map[string]string{}, users: map[string]string{}, keys: map[string]string{}}
	v.consumers("auth.consumers", a.Consumers, seen)
	if a.ConsumersFile != "" {
		a.FileConsumers = v.consumersFile(a.ConsumersFile, seen)
	}
	names := authNames{issuers: v.jwtIssuers(), providers: v.introspection()}
	v.distinctIssuerNames(names)
	for i := range v.cfg.Routes {
		r := &v.cfg.Routes[i]
		p := joinIndex("routes", i)
		if r.Auth != nil {
			v.routeAuth(p+".auth", r.Auth, names)
		}
		if r.Authorize != nil {
			if r.Auth == nil {
				v.errorf(p+".authorize", "authorize needs auth on the same route: without authentication every request is anonymous")
			}
			v.authorize(p+".authorize", r.Authorize, names, seen)
		}
	}
}

// consumerSeen records consumer ids, basic-auth user names and API key
// digests already defined, each with where it was defined.
type consumerSeen struct{ ids, users, keys map[string]string }

// where describes path for "first defined at" messages.
func (v *validator) where(path string) string {
	return fmt.Sprintf("%s:%d", v.cfg.File, v.line(path))
}

func (v *validator) consumers(p string, cs []Consumer, seen *consumerSeen) {
	for i := range cs {
		c := &cs[i]
		cp := joinIndex(p, i)
		switch first, dup := seen.ids[c.ID]; {
		case c.ID == "":
			v.errorf(cp+".id", "missing required field: every consumer needs an id")
		case !isConsumerID(c.ID):
			v.errorf(cp+".id", "invalid consumer id %q: use printable characters without spaces, commas or quotes", c.ID)
		case strings.Contains(c.ID, ":"):
			// authorize.consumers writes token subjects as ISSUER:ID.
			v.errorf(cp+".id", "invalid consumer id %q: ':' is reserved for token subjects in authorize.consumers (ISSUER:ID)", c.ID)
		case dup:
			v.errorf(cp+".id", "duplicate consumer id %q; first defined at %s", c.ID, first)
		default:
			seen.ids[c.ID] = v.where(cp + ".id")
		}
		v.words(cp+".scopes", c.Scopes)
		v.words(cp+".roles", c.Roles)
		for k, val := range c.Claims {
			if !httpguts.ValidHeaderFieldName(k) {
				v.errorf(joinKey(cp+".claims", k), "claim name %q must be a header token (it is sent as X-Consumer-Claim-%s)", k, k)
			} else if !httpguts.ValidHeaderFieldValue(val) {
				v.errorf(joinKey(cp+".claims", k), "the value of claim %q contains a line break or control character", k)
			}
		}
		for j := range c.APIKeys {
			v.apiKey(joinIndex(cp+".api_keys", j), &c.APIKeys[j], seen)
		}
		if b := c.Basic; b != nil {
			bp := cp + ".basic"
			switch first, dup := seen.users[b.Username]; {
			case b.Username == "":
				v.errorf(bp+".username", "missing required field: the basic-auth user name")
			case strings.ContainsAny(b.Username, ":") || !httpguts.ValidHeaderFieldValue(b.Username):
				v.errorf(bp+".username", "user name %q must not contain ':' or control characters", b.Username)
			case dup:
				v.errorf(bp+".username", "duplicate basic-auth user name %q; first defined at %s", b.Username, first)
			default:
				seen.users[b.Username] = v.where(bp + ".username")
			}
			if b.Bcrypt == "" {
				v.errorf(bp+".bcrypt", "missing required field: the bcrypt hash of the password")
			} else if _, err := bcrypt.Cost([]byte(b.Bcrypt)); err != nil {
				v.errorf(bp+".bcrypt", "not a bcrypt hash: %v", err)
			}
		}
	}
}

// apiKey checks one key and replaces a plaintext key by its digest.
func (v *validator) apiKey(p string, k *APIKey, seen *consumerSeen) {
	switch {
	case k.SHA256 != "" && k.Key != "":
		v.errorf(p, "set either sha256 or key, not both")
		return
	case k.SHA256 == "" && k.Key == "":
		v.errorf(p, "missing required field: sha256 (the hex SHA-256 digest of the key) or key (\"${VAR}\")")
		return
	case k.Key != "":
		if v.cfg.src == nil || !v.cfg.src.env[p+".key"] {
			v.errorf(p+".key", "a plaintext API key must come from the environment (\"${VAR}\"); or give its digest in sha256")
			return
		}
		if len(k.Key) < MinAPIKeyBytes {
			v.errorf(p+".key", "API key is shorter than %d bytes", MinAPIKeyBytes)
			return
		}
		sum := sha256.Sum256([]byte(k.Key))
		k.SHA256, k.Key = hex.EncodeToString(sum[:]), ""
	default:
		b, err := hex.DecodeString(k.SHA256)
		if err != nil || len(b) != sha256.Size {
			v.errorf(p+".sha256", "not a SHA-256 digest: write 64 hex digits, such as the output of \"printf %%s KEY | sha256sum\"")
			return
		}
		k.SHA256 = strings.ToLower(k.SHA256)
	}
	if first, dup := seen.keys[k.SHA256]; dup {
		v.errorf(p, "duplicate API key; first defined at %s", first)
		return
	}
	seen.keys[k.SHA256] = v.where(p)
}

// consumersFile reads and checks the consumers file. Its problems name the
// consumers file, with its own lines and field paths.
func (v *validator) consumersFile(file string, seen *consumerSeen) []Consumer {
	p := "auth.consumers_file"
	data, err := os.ReadFile(file)
	if err != nil {
		v.errorf(p, "cannot read %q: %v", file, unwrapPathError(err))
		return nil
	}
	root, yerr := parseYAML(file, data)
	if yerr != nil {
		v.errs = append(v.errs, yerr)
		return nil
	}
	var doc struct {
		Consumers []Consumer `yaml:"consumers"`
	}
	d := newDecoder(file, os.LookupEnv, len(data))
	if root != nil {
		d.decode(root, reflect.ValueOf(&doc).Elem(), "")
	}
	v.errs = append(v.errs, d.errs...)
	if d.budget <= 0 {
		return nil
	}
	fv := &validator{cfg: &Config{File: file, src: d.src}, failed: d.failed}
	fv.consumers("consumers", doc.Consumers, seen)
	v.errs = append(v.errs, fv.errs...)
	return doc.Consumers
}

// words checks scope and role names.
func (v *validator) words(p string, ws []string) {
	for i, w := range ws {
		if w == "" || strings.ContainsAny(w, " \t\r\n,\"") || !httpguts.ValidHeaderFieldValue(w) {
			v.errorf(joinIndex(p, i), "invalid value %q: use printable characters without spaces, commas or quotes", w)
		}
	}
}

func (v *validator) jwtIssuers() []string {
	seen := map[string]string{}
	var names []string
	for i := range v.cfg.Auth.JWTIssuers {
		j := &v.cfg.Auth.JWTIssuers[i]
		p := joinIndex("auth.jwt_issuers", i)
		v.name("JWT issuer", p, j.Name, seen)
		names = append(names, j.Name)
		if j.Issuer == "" {
			v.errorf(p+".issuer", "missing required field: the exact \"iss\" value of the issuer's tokens")
		}
		if len(j.Audiences) == 0 && !v.failed[p+".audiences"] {
			v.errorf(p+".audiences", "missing required field: at least one accepted \"aud\" value, so tokens minted for other services are refused")
		}
		v.jwtKeys(p, j)
		for k, d := range map[string]Duration{"jwks_cache_ttl": j.JWKSCacheTTL, "jwks_refresh_cooldown": j.JWKSRefreshCooldown, "jwks_timeout": j.JWKSTimeout, "leeway": j.Leeway} {
			if d < 0 {
				v.errorf(p+"."+k, "must not be negative")
			}
		}
		if j.MaxTokenBytes < 0 {
			v.errorf(p+".max_token_bytes", "must not be negative: tokens always have a size limit")
		}
		if j.TokenCacheSize < 0 {
			v.errorf(p+".token_cache_size", "must not be negative")
		}
		v.claimNames(p+".forward_claims", j.ForwardClaims)
	}
	return names
}

// jwtKeys checks an issuer's algorithms against its key sources.
func (v *validator) jwtKeys(p string, j *JWTIssuer) {
	if len(j.Algorithms) == 0 && !v.failed[p+".algorithms"] {
		v.errorf(p+".algorithms", "missing required field: the signature algorithms this issuer uses, such as [RS256]")
	}
	hmac, asym := false, false
	for i, alg := range j.Algorithms {
		if !slices.Contains(jwtAlgorithms, alg) {
			v.errorf(joinIndex(p+".algorithms", i), "unsupported algorithm %q: use one of %s%s", alg, strings.Join(jwtAlgorithms, ", "), suggest(alg, jwtAlgorithms))
			continue
		}
		if alg == "HS256" {
			hmac = true
		} else {
			asym = true
		}
	}
	if hmac && asym {
		v.errorf(p+".algorithms", "HS256 cannot be combined with public-key algorithms: a public key must never be usable as an HMAC secret")
	}
	if hmac {
		switch {
		case j.HMACSecret == "":
			v.errorf(p+".hmac_secret", "missing required field: HS256 needs the shared secret (\"${VAR}\")")
		case len(j.HMACSecret) < MinHMACSecretBytes:
			v.errorf(p+".hmac_secret", "secret is shorter than %d bytes", MinHMACSecretBytes)
		}
		if j.JWKSURL != "" || len(j.PublicKeys) > 0 {
			v.errorf(p+".algorithms", "HS256 issuers use hmac_secret only; remove jwks_url and public_keys")
		}
		return
	}
	if j.HMACSecret != "" {
		v.errorf(p+".hmac_secret", "hmac_secret is used only with algorithm HS256")
	}
	if asym && j.JWKSURL == "" && len(j.PublicKeys) == 0 {
		v.errorf(p+".jwks_url", "missing required field: set jwks_url or public_keys for the issuer's keys")
	}
	if j.JWKSURL != "" {
		v.fetchURL(p+".jwks_url", j.JWKSURL)
	}
	for i, k := range j.PublicKeys {
		kp := joinIndex(p+".public_keys", i)
		if k.File == "" {
			v.errorf(kp+".file", "missing required field: a PEM file with the public key")
			continue
		}
		if !v.fileExists(kp+".file", k.File) {
			continue
		}
		key, err := readPublicKey(k.File)
		if err != nil {
			v.errorf(kp+".file", "%v", err)
			continue
		}
		if !slices.ContainsFunc(j.Algorithms, func(alg string) bool { return keyFits(key, alg) }) {
			v.errorf(kp+".file", "the %s key in %q fits none of the algorithms %v", keyKind(key), k.File, j.Algorithms)
		}
	}
}

// fetchURL checks a URL the gateway fetches keys or introspection answers
// from: https, or http to a loopback address.
func (v *validator) fetchURL(p, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		v.errorf(p, "invalid URL %q: write https://host/path", raw)
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			v.errorf(p, "URL %q must use https: keys and token answers fetched in clear text could be forged", raw)
		}
	default:
		v.errorf(p, "invalid URL %q: scheme must be https", raw)
	}
}

func (v *validator) introspection() []string {
	seen := map[string]string{}
	var names []string
	for i := range v.cfg.Auth.Introspection {
		ip := &v.cfg.Auth.Introspection[i]
		p := joinIndex("auth.introspection", i)
		v.name("introspection provider", p, ip.Name, seen)
		names = append(names, ip.Name)
		if ip.URL == "" {
			v.errorf(p+".url", "missing required field: the introspection endpoint URL")
		} else {
			v.fetchURL(p+".url", ip.URL)
		}
		if ip.ClientID == "" {
			v.errorf(p+".client_id", "missing required field: the gateway's client id at the provider")
		}
		switch {
		case ip.ClientSecret == "":
			v.errorf(p+".client_secret", "missing required field: the gateway's client secret (\"${VAR}\")")
		}
		for k, d := range map[string]Duration{"timeout": ip.Timeout, "cache_ttl": ip.CacheTTL} {
			if d < 0 {
				v.errorf(p+"."+k, "must not be negative")
			}
		}
		if ip.CacheSize < 0 {
			v.errorf(p+".cache_size", "must not be negative")
		}
		if ip.MaxConcurrentCalls < 0 {
			v.errorf(p+".max_concurrent_calls", "must not be negative")
		}
		if ip.MaxTokenBytes < 0 {
			v.errorf(p+".max_token_bytes", "must not be negative: tokens always have a size limit")
		}
		v.claimNames(p+".forward_claims", ip.ForwardClaims)
	}
	return names
}

func (v *validator) claimNames(p string, names []string) {
	for i, n := range names {
		if !httpguts.ValidHeaderFieldName(n) {
			v.errorf(joinIndex(p, i), "claim name %q must be a header token (it is sent as X-Consumer-Claim-%s)", n, n)
		}
	}
}

func (v *validator) routeAuth(p string, a *RouteAuth, names authNames) {
	bearer := a.JWT != nil || a.Introspection != nil
	if !bearer && a.APIKey == nil && !a.Basic.IsEnabled() {
		v.errorf(p, "no authentication method: set at least one of api_key, jwt, introspection and basic")
	}
	if k := a.APIKey; k != nil {
		if k.Header != "" {
			switch {
			case !httpguts.ValidHeaderFieldName(k.Header):
				v.errorf(p+".api_key.header", "%q is not a valid header name", k.Header)
			case strings.EqualFold(k.Header, "Authorization"):
				v.errorf(p+".api_key.header", "API keys cannot use the Authorization header; use a header of their own such as X-Api-Key")
			}
		}
		v.queryName(p+".api_key.query", k.Query)
	}
	if j := a.JWT; j != nil {
		if len(names.issuers) == 0 {
			v.errorf(p+".jwt", "no JWT issuers are defined in auth.jwt_issuers")
		}
		for i, name := range j.Issuers {
			if !slices.Contains(names.issuers, name) {
				v.errorf(joinIndex(p+".jwt.issuers", i), "unknown JWT issuer %q%s", name, suggest(name, names.issuers))
			}
		}
	}
	if in := a.Introspection; in != nil {
		switch {
		case in.Provider == "" && len(names.providers) != 1:
			v.errorf(p+".introspection.provider", "missing required field: name one of auth.introspection (%d are defined)", len(names.providers))
		case in.Provider != "" && !slices.Contains(names.providers, in.Provider):
			v.errorf(p+".introspection.provider", "unknown introspection provider %q%s", in.Provider, suggest(in.Provider, names.providers))
		}
	}
	if a.BearerQuery != "" {
		if !bearer {
			v.errorf(p+".bearer_query", "bearer_query needs jwt or introspection on the route")
		}
		v.queryName(p+".bearer_query", a.BearerQuery)
		if a.APIKey != nil && a.APIKey.Query == a.BearerQuery {
			v.errorf(p+".bearer_query", "API keys and bearer tokens cannot share the query parameter %q", a.BearerQuery)
		}
	}
	if strings.ContainsAny(a.Realm, "\"\\") || !httpguts.ValidHeaderFieldValue(a.Realm) {
		v.errorf(p+".realm", "realm %q must not contain quotes, backslashes or control characters", a.Realm)
	}
}

func (v *validator) queryName(p, q string) {
	if strings.ContainsAny(q, "&;=#+% ") || !httpguts.ValidHeaderFieldValue(q) {
		v.errorf(p, "invalid query parameter name %q", q)
	}
}

// distinctIssuerNames refuses a JWT issuer and an introspection provider of
// the same name: authorize.consumers names token subjects by it.
func (v *validator) distinctIssuerNames(names authNames) {
	for i, n := range v.cfg.Auth.Introspection {
		if n.Name != "" && slices.Contains(names.issuers, n.Name) {
			v.errorf(joinIndex("auth.introspection", i)+".name", "name %q is also a JWT issuer's: authorize.consumers names token subjects by issuer, so the names must differ", n.Name)
		}
	}
}

func (v *validator) authorize(p string, a *Authorize, names authNames, seen *consumerSeen) {
	for name, r := range map[string]*Requirement{"scopes": a.Scopes, "roles": a.Roles} {
		if r == nil {
			continue
		}
		if len(r.AllOf) == 0 && len(r.AnyOf) == 0 {
			v.errorf(p+"."+name, "set all_of, any_of or both")
		}
		v.words(p+"."+name+".all_of", r.AllOf)
		v.words(p+"."+name+".any_of", r.AnyOf)
	}
	for i, c := range a.Claims {
		cp := joinIndex(p+".claims", i)
		if c.Name == "" {
			v.errorf(cp+".name", "missing required field: the claim name")
		}
		if len(c.AnyOf) == 0 && !v.failed[cp+".any_of"] {
			v.errorf(cp+".any_of", "missing required field: the accepted values of claim %q", c.Name)
		}
	}
	for i, entry := range a.Consumers {
		ep := joinIndex(p+".consumers", i)
		iss, id, qualified := strings.Cut(entry, ":")
		switch {
		case !isConsumerID(entry):
			v.errorf(ep, "invalid consumer %q: use printable characters without spaces, commas or quotes", entry)
		case !qualified:
			if _, ok := seen.ids[entry]; !ok {
				v.errorf(ep, "unknown consumer %q: a plain id names a consumer of auth.consumers; name a token subject with its issuer, as in \"ISSUER:%s\"", entry, entry)
			}
		case id == "":
			v.errorf(ep, "invalid consumer %q: write ISSUER:ID with the token subject after ':'", entry)
		case !slices.Contains(names.issuers, iss) && !slices.Contains(names.providers, iss):
			all := append(slices.Clone(names.issuers), names.providers...)
			v.errorf(ep, "unknown issuer %q in %q: name one of auth.jwt_issuers or auth.introspection%s", iss, entry, suggest(iss, all))
		}
	}
	if a.Scopes == nil && a.Roles == nil && len(a.Claims) == 0 && len(a.Consumers) == 0 {
		v.errorf(p, "empty authorize: set scopes, roles, claims or consumers, or remove it")
	}
}

// isConsumerID reports whether s can name a consumer in a header value and
// in comma-separated lists.
func isConsumerID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ',' || c == '"' {
			return false
		}
	}
	return true
}

// readPublicKey reads the first public key or certificate in a PEM file,
// with the same parser the JWT verifier uses.
func readPublicKey(file string) (any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %v", file, unwrapPathError(err))
	}
	key, err := jwt.ParsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", file, err)
	}
	return key, nil
}

func keyFits(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return (alg[0] == 'R' || alg[0] == 'P') && k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256() || alg == "ES384" && k.Curve == elliptic.P384()
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

func keyKind(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", key)
}
