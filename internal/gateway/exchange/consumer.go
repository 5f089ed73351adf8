package exchange

import (
	"net/http"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// Identity headers the gateway writes upstream for an authenticated
// consumer. Every client-supplied header whose name starts with
// IdentityHeaderPrefix is removed from the upstream request first, whether
// or not the request is authenticated.
const (
	IdentityHeaderPrefix = "X-Consumer-"
	HeaderConsumerID     = "X-Consumer-Id"
	HeaderConsumerMethod = "X-Consumer-Auth-Method"
	HeaderConsumerIssuer = "X-Consumer-Issuer"
	HeaderConsumerScopes = "X-Consumer-Scopes"
	HeaderConsumerRoles  = "X-Consumer-Roles"
	// HeaderClaimPrefix precedes the claim name of a forwarded claim, as in
	// X-Consumer-Claim-Email.
	HeaderClaimPrefix = "X-Consumer-Claim-"
)

// Authentication methods named in Consumer.Method.
const (
	MethodAPIKey        = "api_key"
	MethodJWT           = "jwt"
	MethodIntrospection = "introspection"
	MethodBasic         = "basic"
)

// Consumer is an authenticated caller. Authentication policies build one per
// credential and may share it between requests (a cached token yields the
// same *Consumer), so a Consumer must not be modified once it is attached to
// an Exchange.
type Consumer struct {
	// ID identifies the consumer: its configured id, or the token's subject.
	ID string
	// Method is how the consumer authenticated: MethodAPIKey, MethodJWT,
	// MethodIntrospection or MethodBasic.
	Method string
	// Issuer names the JWT issuer or introspection provider that vouched for
	// the consumer; empty for consumers of the configuration.
	Issuer string
	// Scopes and Roles are what the consumer was granted.
	Scopes []string
	Roles  []string
	// Claims are the consumer's claims with their values (a list claim has
	// several), for authorization rules. Nil when there are none.
	Claims map[string][]string
	// Forward are the claims sent upstream as X-Consumer-Claim-<Name>.
	Forward []Claim
	// KeyID identifies the API key a MethodAPIKey consumer authenticated
	// with: a digest of the key's SHA-256 digest, stable across reloads and
	// useless for recovering the key. Rate limits keyed by api_key count by
	// it. Empty for every other method.
	KeyID string

	once    sync.Once
	headers []HeaderField
}

// Claim is one claim forwarded upstream.
type Claim struct {
	Name  string
	Value string
}

// HeaderField is one identity header with its value, ready to be put in an
// http.Header. Value has capacity 1, so appending to it copies.
type HeaderField struct {
	Name  string
	Value []string
}

// Headers returns the identity headers describing c. They are computed on
// the first call and shared afterwards. Values that are not valid header
// values are left out.
func (c *Consumer) Headers() []HeaderField {
	c.once.Do(c.buildHeaders)
	return c.headers
}

func (c *Consumer) buildHeaders() {
	add := func(name, value string) {
		if value != "" && httpguts.ValidHeaderFieldValue(value) {
			c.headers = append(c.headers, HeaderField{Name: name, Value: []string{value}[:1:1]})
		}
	}
	add(HeaderConsumerID, c.ID)
	add(HeaderConsumerMethod, c.Method)
	add(HeaderConsumerIssuer, c.Issuer)
	add(HeaderConsumerScopes, strings.Join(c.Scopes, " "))
	add(HeaderConsumerRoles, strings.Join(c.Roles, " "))
	for _, cl := range c.Forward {
		if httpguts.ValidHeaderFieldName(cl.Name) {
			add(http.CanonicalHeaderKey(HeaderClaimPrefix+cl.Name), cl.Value)
		}
	}
}

// IsIdentityHeader reports whether a request header named name is one the
// gateway owns: its name starts with "X-Consumer-" compared without case,
// with "_" taken as "-" because some upstream frameworks fold the two.
func IsIdentityHeader(name string) bool {
	return hasFoldedPrefix(name, IdentityHeaderPrefix)
}

// hasFoldedPrefix reports whether s starts with prefix, ignoring ASCII case
// and treating "_" in s as "-".
func hasFoldedPrefix(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if fold(s[i]) != fold(prefix[i]) {
			return false
		}
	}
	return true
}

// FoldedEqual reports whether a and b name the same header for an upstream
// that ignores case and takes "_" as "-".
func FoldedEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if fold(a[i]) != fold(b[i]) {
			return false
		}
	}
	return true
}

// fold maps a header name byte to its folded form: ASCII letters to lower
// case and "_" to "-".
func fold(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}
