package config

// Auth holds who may call the gateway: consumers with API keys or basic-auth
// passwords, JWT issuers and OAuth 2.0 token introspection providers. Routes
// choose among them in their own auth field. It reloads live: a key removed
// here stops working as soon as the reload is acknowledged.
type Auth struct {
	// Consumers are the callers known to the gateway itself, with their API
	// keys and basic-auth credentials. Default: none.
	Consumers []Consumer `yaml:"consumers" json:"consumers,omitempty"`
	// ConsumersFile is a YAML file with a top-level "consumers" list in the
	// same format, read at every load and reload (relative paths are
	// resolved against the configuration file's directory). ${VAR} in it is
	// read from the process environment. Default: none.
	ConsumersFile string `yaml:"consumers_file" json:"consumers_file,omitempty"`
	// JWTIssuers are the token issuers whose JWTs the gateway verifies.
	// Default: none.
	JWTIssuers []JWTIssuer `yaml:"jwt_issuers" json:"jwt_issuers,omitempty"`
	// Introspection are the OAuth 2.0 token introspection endpoints (RFC
	// 7662) that vouch for opaque bearer tokens. Default: none.
	Introspection []IntrospectionProvider `yaml:"introspection" json:"introspection,omitempty"`

	// FileConsumers are the consumers read from ConsumersFile (not a YAML
	// field).
	FileConsumers []Consumer `yaml:"-" json:"-"`
}

// AllConsumers returns the consumers of the configuration file followed by
// those of the consumers file.
func (a *Auth) AllConsumers() []Consumer {
	if len(a.FileConsumers) == 0 {
		return a.Consumers
	}
	out := make([]Consumer, 0, len(a.Consumers)+len(a.FileConsumers))
	return append(append(out, a.Consumers...), a.FileConsumers...)
}

// Consumer is one caller the gateway knows by its own credentials.
type Consumer struct {
	// ID identifies the consumer upstream (X-Consumer-Id) and in
	// authorize.consumers. Required, unique, without ':' (reserved for
	// ISSUER:ID in authorize.consumers).
	ID string `yaml:"id" json:"id"`
	// Scopes are granted to the consumer, as a token's scope claim would.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
	// Roles are granted to the consumer.
	Roles []string `yaml:"roles" json:"roles,omitempty"`
	// Claims are extra facts about the consumer; routes may require values
	// of them (authorize.claims) and they are sent upstream as
	// X-Consumer-Claim-<name> headers.
	Claims map[string]string `yaml:"claims" json:"claims,omitempty"`
	// APIKeys are the consumer's API keys.
	APIKeys []APIKey `yaml:"api_keys" json:"api_keys,omitempty"`
	// Basic is the consumer's basic-auth credential.
	Basic *BasicCredential `yaml:"basic" json:"basic,omitempty"`
}

// APIKey is one API key. Exactly one of SHA256 and Key is set.
type APIKey struct {
	// SHA256 is the hex SHA-256 digest of the key.
	SHA256 string `yaml:"sha256" json:"sha256,omitempty"`
	// Key is the key itself; it must come from an environment variable
	// ("${ALICE_KEY}") and is replaced by its SHA-256 digest when the
	// configuration is loaded, so the plaintext is never kept or shown.
	Key string `yaml:"key" json:"-"`
}

// BasicCredential is a username and bcrypt password hash for HTTP basic
// authentication.
type BasicCredential struct {
	// Username is the basic-auth user name. Required, unique.
	Username string `yaml:"username" json:"username"`
	// Bcrypt is the bcrypt hash of the password ("$2a$...", "$2b$..." or
	// "$2y$..."). Required.
	Bcrypt string `yaml:"bcrypt" json:"bcrypt"`
}

// JWTIssuer is one issuer of JSON Web Tokens and how to verify them.
type JWTIssuer struct {
	// Name identifies the issuer in routes (auth.jwt.issuers). Required,
	// unique.
	Name string `yaml:"name" json:"name"`
	// Issuer is the exact "iss" value tokens must carry. Required.
	Issuer string `yaml:"issuer" json:"issuer"`
	// Audiences are the accepted "aud" values; a token must name at least
	// one of them. Required.
	Audiences []string `yaml:"audiences" json:"audiences"`
	// Algorithms are the signature algorithms accepted from this issuer:
	// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256.
	// The token's own "alg" header must be one of them. HS256 cannot be
	// combined with the others. Required.
	Algorithms []string `yaml:"algorithms" json:"algorithms"`
	// JWKSURL is the issuer's JSON Web Key Set. It must be https, except
	// for loopback addresses.
	JWKSURL string `yaml:"jwks_url" json:"jwks_url,omitempty"`
	// JWKSCacheTTL is how long a fetched key set is used before it is
	// fetched again. When the fetch fails the old keys stay in use.
	// Default 5m.
	JWKSCacheTTL Duration `yaml:"jwks_cache_ttl" json:"jwks_cache_ttl,omitempty"`
	// JWKSRefreshCooldown is the least time between two fetches of the key
	// set, however many tokens with unknown key ids arrive. Default 30s.
	JWKSRefreshCooldown Duration `yaml:"jwks_refresh_cooldown" json:"jwks_refresh_cooldown,omitempty"`
	// JWKSTimeout bounds one fetch of the key set. Default 5s.
	JWKSTimeout Duration `yaml:"jwks_timeout" json:"jwks_timeout,omitempty"`
	// PublicKeys are PEM public keys (or certificates) of the issuer.
	PublicKeys []PublicKeyFile `yaml:"public_keys" json:"public_keys,omitempty"`
	// HMACSecret is the shared HS256 secret, at least 32 bytes; write it as
	// ${VAR}. It is never shown by the admin API.
	HMACSecret string `yaml:"hmac_secret" json:"-"`
	// Leeway is the clock skew allowed when checking exp and nbf.
	// Default 30s.
	Leeway Duration `yaml:"leeway" json:"leeway,omitempty"`
	// MaxTokenBytes is the longest token accepted; longer ones are refused
	// before they are parsed. Default 8KiB.
	MaxTokenBytes ByteSize `yaml:"max_token_bytes" json:"max_token_bytes,omitempty"`
	// SubjectClaim is the claim that names the consumer. Default "sub".
	SubjectClaim string `yaml:"subject_claim" json:"subject_claim,omitempty"`
	// ScopesClaim holds the token's scopes, as a space-separated string or a
	// list. Default "scope".
	ScopesClaim string `yaml:"scopes_claim" json:"scopes_claim,omitempty"`
	// RolesClaim holds the token's roles, as a list or a space-separated
	// string. Default "roles".
	RolesClaim string `yaml:"roles_claim" json:"roles_claim,omitempty"`
	// ForwardClaims are claims sent upstream as X-Consumer-Claim-<name>
	// headers. Default: none.
	ForwardClaims []string `yaml:"forward_claims" json:"forward_claims,omitempty"`
	// TokenCacheSize bounds the number of verified tokens remembered until
	// they expire. Default 10000.
	TokenCacheSize int `yaml:"token_cache_size" json:"token_cache_size,omitempty"`
}

// PublicKeyFile is one PEM public key of a JWT issuer.
type PublicKeyFile struct {
	// File is a PEM file holding a public key or a certificate. Required.
	File string `yaml:"file" json:"file"`
	// KID is the key id tokens signed with this key carry in their "kid"
	// header. Empty matches tokens with any key id.
	KID string `yaml:"kid" json:"kid,omitempty"`
}

// IntrospectionProvider is an OAuth 2.0 token introspection endpoint.
type IntrospectionProvider struct {
	// Name identifies the provider in routes (auth.introspection.provider).
	// Required, unique.
	Name string `yaml:"name" json:"name"`
	// URL is the introspection endpoint. It must be https, except for
	// loopback addresses. Required.
	URL string `yaml:"url" json:"url"`
	// ClientID and ClientSecret authenticate the gateway to the endpoint
	// with HTTP basic authentication. Required; write the secret as ${VAR}.
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecret is the gateway's client secret. Required; it is never
	// shown by the admin API.
	ClientSecret string `yaml:"client_secret" json:"-"`
	// Audiences, when set, require the response's "aud" to name one of them.
	Audiences []string `yaml:"audiences" json:"audiences,omitempty"`
	// Timeout bounds one introspection call. Default 5s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// CacheTTL is how long an answer is remembered (never past the token's
	// exp; inactive answers at most 10s). Default 60s.
	CacheTTL Duration `yaml:"cache_ttl" json:"cache_ttl,omitempty"`
	// CacheSize bounds the number of active answers remembered. Inactive
	// answers are kept apart, in a cache of 1024 entries, so a flood of bad
	// tokens cannot evict good ones. Default 10000.
	CacheSize int `yaml:"cache_size" json:"cache_size,omitempty"`
	// MaxConcurrentCalls bounds the introspection calls running at once;
	// a request whose token would need one more gets 503 with Retry-After.
	// Concurrent requests with the same new token share one call.
	// Default 64.
	MaxConcurrentCalls int `yaml:"max_concurrent_calls" json:"max_concurrent_calls,omitempty"`
	// MaxTokenBytes is the longest token sent to the endpoint; longer ones
	// are refused. Default 8KiB.
	MaxTokenBytes ByteSize `yaml:"max_token_bytes" json:"max_token_bytes,omitempty"`
	// ForwardClaims are response members sent upstream as
	// X-Consumer-Claim-<name> headers. Default: none.
	ForwardClaims []string `yaml:"forward_claims" json:"forward_claims,omitempty"`
}

// RouteAuth is a route's authentication: each method set is accepted.
// At least one method is required.
type RouteAuth struct {
	// APIKey accepts the API keys of the configured consumers.
	APIKey *RouteAPIKey `yaml:"api_key" json:"api_key,omitempty"`
	// JWT accepts bearer JWTs of the configured issuers.
	JWT *RouteJWT `yaml:"jwt" json:"jwt,omitempty"`
	// Introspection accepts opaque bearer tokens that a provider vouches
	// for. With JWT also set, tokens in JWS form go to JWT verification and
	// the others to introspection.
	Introspection *RouteIntrospection `yaml:"introspection" json:"introspection,omitempty"`
	// Basic accepts basic-auth credentials of the configured consumers.
	Basic *RouteBasic `yaml:"basic" json:"basic,omitempty"`
	// BearerQuery is a query parameter a bearer token may be sent in
	// instead of the Authorization header. Default: none (header only).
	BearerQuery string `yaml:"bearer_query" json:"bearer_query,omitempty"`
	// Optional lets requests without any credential through as anonymous;
	// an invalid credential is still refused with 401. Default false.
	Optional bool `yaml:"optional" json:"optional,omitempty"`
	// ForwardCredentials sends the credential upstream; by default it is
	// removed from the upstream request. Default false.
	ForwardCredentials bool `yaml:"forward_credentials" json:"forward_credentials,omitempty"`
	// Realm is the realm named in WWW-Authenticate challenges.
	// Default "portico".
	Realm string `yaml:"realm" json:"realm,omitempty"`
}

// RouteAPIKey says where a route reads API keys. At least one of Header and
// Query is used.
type RouteAPIKey struct {
	// Header carries the key. Default X-Api-Key when Query is not set.
	Header string `yaml:"header" json:"header,omitempty"`
	// Query is a query parameter carrying the key; it is always redacted
	// in the access log. Default: none.
	Query string `yaml:"query" json:"query,omitempty"`
}

// RouteJWT selects the issuers a route accepts.
type RouteJWT struct {
	// Issuers are issuer names from auth.jwt_issuers. Default: all of them.
	Issuers []string `yaml:"issuers" json:"issuers,omitempty"`
}

// RouteIntrospection selects a route's introspection provider.
type RouteIntrospection struct {
	// Provider names one of auth.introspection. Default: the only one, when
	// exactly one is configured.
	Provider string `yaml:"provider" json:"provider,omitempty"`
}

// RouteBasic enables basic authentication on a route.
type RouteBasic struct {
	// Enabled turns basic authentication on. Default true when the basic
	// field is present.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
}

// Authorize is what an authenticated consumer needs to use a route. Every
// part that is set must hold.
type Authorize struct {
	// Scopes the consumer must hold.
	Scopes *Requirement `yaml:"scopes" json:"scopes,omitempty"`
	// Roles the consumer must hold.
	Roles *Requirement `yaml:"roles" json:"roles,omitempty"`
	// Claims the consumer's token (or consumer entry) must carry; each
	// listed claim must have one of its allowed values.
	Claims []ClaimRequirement `yaml:"claims" json:"claims,omitempty"`
	// Consumers, when set, are the only consumers allowed: "ID" names a
	// consumer of auth.consumers, "ISSUER:ID" the subject ID of tokens from
	// the JWT issuer or introspection provider named ISSUER. A subject
	// matches only with its issuer, so another issuer's token with the same
	// subject is refused.
	Consumers []string `yaml:"consumers" json:"consumers,omitempty"`
}

// Requirement is a set of values a consumer must hold: all of AllOf and at
// least one of AnyOf (each when set).
type Requirement struct {
	// AllOf values are all required.
	AllOf []string `yaml:"all_of" json:"all_of,omitempty"`
	// AnyOf values are alternatives: one is enough.
	AnyOf []string `yaml:"any_of" json:"any_of,omitempty"`
}

// ClaimRequirement requires a claim to have one of a set of values. A claim
// that is a list satisfies it when any element does.
type ClaimRequirement struct {
	// Name is the claim. Required.
	Name string `yaml:"name" json:"name"`
	// AnyOf are the accepted values. Required.
	AnyOf []string `yaml:"any_of" json:"any_of"`
}

// IsEnabled reports whether basic authentication is on: the field is
// present and enabled is not false.
func (b *RouteBasic) IsEnabled() bool { return b != nil && (b.Enabled == nil || *b.Enabled) }
