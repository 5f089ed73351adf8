// Package jwt verifies JSON Web Tokens for the auth policy.
//
// Signatures are checked with github.com/golang-jwt/jwt/v5. Every decision
// an attacker could steer is taken here, from configuration, never from the
// token: the accepted algorithms are pinned per issuer (so "none" and an
// RS256 token re-signed with HS256 using the public key are refused), keys
// come only from the issuer's JWKS URL, PEM files or HMAC secret (the jku,
// x5u, jwk and x5c headers are never read), and a token longer than the
// issuer's limit is refused before it is decoded.
package jwt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/policy/auth/tokencache"
)

// Errors returned by Verify. Each wraps ErrInvalid except
// ErrKeysUnavailable, which is the issuer's problem rather than the token's.
var (
	// ErrInvalid is any token the issuer did not vouch for.
	ErrInvalid = errors.New("jwt: invalid token")
	// ErrTooLong is a token longer than the issuer's limit.
	ErrTooLong = fmt.Errorf("%w: token is too long", ErrInvalid)
	// ErrMalformed is a token that is not three base64url segments of
	// JSON objects without duplicate members.
	ErrMalformed = fmt.Errorf("%w: malformed token", ErrInvalid)
	// ErrExpired is a token past its exp (plus leeway).
	ErrExpired = fmt.Errorf("%w: token has expired", ErrInvalid)
	// ErrUnknownKey is a token naming a key the issuer does not have.
	ErrUnknownKey = fmt.Errorf("%w: unknown signing key", ErrInvalid)
)

// Options configure a Verifier.
type Options struct {
	// Name identifies the issuer in the configuration and in
	// Consumer.Issuer.
	Name string
	// Issuer is the exact "iss" required. Required.
	Issuer string
	// Audiences are the accepted "aud" values (any of them). Required.
	Audiences []string
	// Algorithms are the accepted "alg" values. Required.
	Algorithms []string
	// JWKS supplies keys fetched from the issuer, or nil.
	JWKS *JWKS
	// Keys are static keys (from PEM files).
	Keys []*Key
	// HMACSecret is the HS256 secret; only used when Algorithms is
	// exactly HS256.
	HMACSecret []byte
	// Leeway is the clock skew allowed for exp and nbf.
	Leeway time.Duration
	// MaxTokenBytes is the longest token accepted. Default 8KiB.
	MaxTokenBytes int
	// SubjectClaim, ScopesClaim and RolesClaim name the claims read into
	// the Consumer. Defaults "sub", "scope", "roles".
	SubjectClaim, ScopesClaim, RolesClaim string
	// ForwardClaims are claims copied to Consumer.Forward.
	ForwardClaims []string
	// CacheSize bounds the verified-token cache. Default 10000.
	CacheSize int
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// Verifier verifies the tokens of one issuer and remembers verified tokens
// until they expire. It is safe for concurrent use.
type Verifier struct {
	opts   Options
	parser *gjwt.Parser
	hmac   bool
	cache  *tokencache.Cache[*verified]
}

// verified is a cached verification: the consumer, the key that verified
// it (so a key removed from the JWKS stops its tokens at once) and
// whether that key came from the JWKS.
type verified struct {
	consumer *exchange.Consumer
	key      *Key
	fromJWKS bool
}

// New returns a verifier for opts.
func New(opts Options) (*Verifier, error) {
	if opts.Issuer == "" || len(opts.Audiences) == 0 || len(opts.Algorithms) == 0 {
		return nil, errors.New("jwt: issuer, audiences and algorithms are required")
	}
	hmac := slices.Contains(opts.Algorithms, "HS256")
	if hmac && (len(opts.Algorithms) != 1 || len(opts.HMACSecret) < 32) {
		return nil, errors.New("jwt: HS256 must be the only algorithm and needs a secret of at least 32 bytes")
	}
	if !hmac && opts.JWKS == nil && len(opts.Keys) == 0 {
		return nil, errors.New("jwt: no keys: set a JWKS or static keys")
	}
	if opts.MaxTokenBytes <= 0 {
		opts.MaxTokenBytes = 8 << 10
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.SubjectClaim = cmpOr(opts.SubjectClaim, "sub")
	opts.ScopesClaim = cmpOr(opts.ScopesClaim, "scope")
	opts.RolesClaim = cmpOr(opts.RolesClaim, "roles")
	p := gjwt.NewParser(
		gjwt.WithValidMethods(opts.Algorithms),
		gjwt.WithExpirationRequired(),
		gjwt.WithIssuer(opts.Issuer),
		gjwt.WithAudience(opts.Audiences...),
		gjwt.WithLeeway(opts.Leeway),
		gjwt.WithTimeFunc(opts.Now),
		gjwt.WithJSONNumber(),
		gjwt.WithStrictDecoding(),
	)
	return &Verifier{opts: opts, parser: p, hmac: hmac, cache: tokencache.New[*verified](opts.CacheSize, opts.Now)}, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Issuer returns the "iss" the verifier requires.
func (v *Verifier) Issuer() string { return v.opts.Issuer }

// Cached returns the consumer of a token verified before, if it is still
// valid. It costs one hash and one map lookup.
func (v *Verifier) Cached(token string) (*exchange.Consumer, bool) {
	e, ok := v.cache.Get(token)
	if !ok {
		return nil, false
	}
	if e.fromJWKS && !v.opts.JWKS.has(e.key) {
		v.cache.Delete(token)
		return nil, false
	}
	return e.consumer, true
}

// Verify checks token and returns the consumer it names. Tokens verified
// before are answered from the cache until they expire.
func (v *Verifier) Verify(ctx context.Context, token string) (*exchange.Consumer, error) {
	if c, ok := v.Cached(token); ok {
		return c, nil
	}
	if len(token) > v.opts.MaxTokenBytes {
		return nil, ErrTooLong
	}
	if err := checkShape(token); err != nil {
		return nil, err
	}
	var used *Key
	var fromJWKS bool
	claims := gjwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *gjwt.Token) (any, error) {
		k, jw, err := v.key(ctx, t)
		used, fromJWKS = k, jw
		if err != nil {
			return nil, err
		}
		if v.hmac {
			return v.opts.HMACSecret, nil
		}
		return k.Public, nil
	})
	if err != nil {
		return nil, classify(err)
	}
	c, exp, err := v.consumer(claims)
	if err != nil {
		return nil, err
	}
	v.cache.Put(token, &verified{consumer: c, key: used, fromJWKS: fromJWKS}, exp.Add(v.opts.Leeway))
	return c, nil
}

// key finds the key for a token whose algorithm the parser has already
// checked against the pinned list.
func (v *Verifier) key(ctx context.Context, t *gjwt.Token) (*Key, bool, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, false, fmt.Errorf("%w: critical header extensions are not supported", ErrInvalid)
	}
	alg := t.Method.Alg()
	if v.hmac {
		return nil, false, nil
	}
	kid := ""
	if raw, ok := t.Header["kid"]; ok {
		s, isString := raw.(string)
		if !isString {
			return nil, false, ErrMalformed
		}
		kid = s
	}
	if k := find(v.opts.Keys, kid, alg); k != nil {
		return k, false, nil
	}
	if v.opts.JWKS == nil {
		return nil, false, ErrUnknownKey
	}
	keys, err := v.opts.JWKS.keys(ctx)
	if err != nil {
		return nil, false, err
	}
	if k := find(keys, kid, alg); k != nil {
		return k, true, nil
	}
	if kid != "" && !hasKID(keys, kid) && v.opts.JWKS.refreshUnknown(ctx, keys) {
		keys, _ = v.opts.JWKS.keys(ctx)
		if k := find(keys, kid, alg); k != nil {
			return k, true, nil
		}
	}
	return nil, false, ErrUnknownKey
}

// find returns the key with id kid that fits alg. A token without kid
// matches only when exactly one key fits, so no token makes the gateway try
// several keys.
func find(keys []*Key, kid, alg string) *Key {
	var match *Key
	for _, k := range keys {
		if !k.fits(alg) {
			continue
		}
		if kid != "" && k.KID == kid {
			return k
		}
		if k.KID == "" || kid == "" {
			if match != nil && kid == "" {
				return nil
			}
			match = k
		}
	}
	return match
}

func hasKID(keys []*Key, kid string) bool {
	for _, k := range keys {
		if k.KID == kid {
			return true
		}
	}
	return false
}

// classify maps a golang-jwt error to the package's errors.
func classify(err error) error {
	switch {
	case errors.Is(err, ErrKeysUnavailable), errors.Is(err, ErrInvalid):
		return err
	case errors.Is(err, gjwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, gjwt.ErrTokenMalformed):
		return ErrMalformed
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// consumer builds the Consumer of verified claims and returns the token's
// expiry.
func (v *Verifier) consumer(claims gjwt.MapClaims) (*exchange.Consumer, time.Time, error) {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, time.Time{}, fmt.Errorf("%w: missing exp", ErrInvalid)
	}
	sub, _ := claims[v.opts.SubjectClaim].(string)
	if !validID(sub) {
		return nil, time.Time{}, fmt.Errorf("%w: missing or unusable %s claim", ErrInvalid, v.opts.SubjectClaim)
	}
	c := &exchange.Consumer{
		ID:     sub,
		Method: exchange.MethodJWT,
		Issuer: v.opts.Name,
		Scopes: Strings(claims[v.opts.ScopesClaim]),
		Roles:  Strings(claims[v.opts.RolesClaim]),
		Claims: ClaimValues(claims),
	}
	c.Forward = Forward(c.Claims, v.opts.ForwardClaims)
	return c, exp.Time, nil
}

// validID reports whether a subject can identify a consumer upstream.
func validID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Strings reads a claim that is a space-separated string or a list of
// strings.
func Strings(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ClaimValues keeps the claims that are strings, numbers, booleans or
// lists of them, as text, for authorization rules.
func ClaimValues(claims map[string]any) map[string][]string {
	out := make(map[string][]string, len(claims))
	for name, v := range claims {
		if vals := scalarTexts(v); vals != nil {
			out[name] = vals
		}
	}
	return out
}

func scalarTexts(v any) []string {
	if s, ok := scalarText(v); ok {
		return []string{s}
	}
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := scalarText(e); ok {
			out = append(out, s)
		}
	}
	return out
}

func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// Forward selects the claims sent upstream; a list claim is sent as its
// values separated by ", ".
func Forward(claims map[string][]string, names []string) []exchange.Claim {
	var out []exchange.Claim
	for _, n := range names {
		if vals, ok := claims[n]; ok && len(vals) > 0 {
			out = append(out, exchange.Claim{Name: n, Value: strings.Join(vals, ", ")})
		}
	}
	return out
}

// checkShape refuses what is not three base64url segments whose first two
// are JSON objects without duplicate member names. A JSON parser keeps the
// last of two duplicates and another may keep the first, so such a token
// could mean different things to the gateway and to the upstream.
func checkShape(token string) error {
	if strings.Count(token, ".") != 2 {
		return ErrMalformed
	}
	h, rest, _ := strings.Cut(token, ".")
	p, sig, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || sig == "" {
		return ErrMalformed
	}
	for _, seg := range []string{h, p} {
		b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil {
			return ErrMalformed
		}
		if err := noDuplicates(b); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	return nil
}

// maxDepth bounds the nesting of a token's JSON.
const maxDepth = 32

// noDuplicates checks that data is one JSON object in which no object has
// two members of the same name.
func noDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	if err := object(dec, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func object(dec *json.Decoder, depth int) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		if err := value(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func value(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return errors.New("JSON nested too deeply")
	}
	if d == '{' {
		return object(dec, depth+1)
	}
	for dec.More() {
		if err := value(dec, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	return err
}

// PeekIssuer returns the "iss" claim of a token without verifying it, or
// "" when it cannot be read. It only chooses which issuer verifies the
// token; nothing is trusted from it.
func PeekIssuer(token string) string {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}
