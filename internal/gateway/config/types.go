package config

// Config is one gateway configuration file. Listeners, Admin, Shutdown and
// Logging are static (a change needs a restart); everything else reloads live.
type Config struct {
	// Listeners are the addresses the gateway accepts client connections on.
	// Default: one plain HTTP listener named "http" on ":8080".
	Listeners []Listener `yaml:"listeners" json:"listeners,omitempty"`
	// Admin is the admin API listener.
	Admin Admin `yaml:"admin" json:"admin"`
	// Shutdown controls graceful shutdown.
	Shutdown Shutdown `yaml:"shutdown" json:"shutdown"`
	// Logging controls the gateway's own log.
	Logging Logging `yaml:"logging" json:"logging"`
	// AccessLog controls the per-request access log.
	AccessLog AccessLog `yaml:"access_log" json:"access_log"`
	// TrustedProxies are CIDRs (or single addresses) whose X-Forwarded-*,
	// Forwarded and X-Request-Id headers are believed. Default: none, so every
	// client-supplied forwarding header is replaced.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies,omitempty"`
	// RequestID controls request id handling.
	RequestID RequestID `yaml:"request_id" json:"request_id"`
	// Services are the backends routes forward to.
	Services []Service `yaml:"services" json:"services,omitempty"`
	// Routes map requests to services. Order matters only between routes of
	// equal specificity (see docs/routing.md).
	Routes []Route `yaml:"routes" json:"routes,omitempty"`
	// Auth holds consumers, JWT issuers and introspection providers that
	// routes authenticate against (see docs/security.md). Default: none.
	Auth Auth `yaml:"auth" json:"auth"`
	// RateLimits is where rate-limit counters are kept: in memory and,
	// optionally, in Redis shared by every replica. Static: a change needs
	// a restart. Default: in memory only.
	RateLimits RateLimits `yaml:"rate_limits" json:"rate_limits"`
	// Registry is the service registry instances register with (see
	// docs/registry.md). Static. Default: enabled, in memory.
	Registry Registry `yaml:"registry" json:"registry"`

	// File is the path the configuration was read from (not a YAML field).
	File string `yaml:"-" json:"-"`

	// src records where each value came from; nil for a Config built in code.
	src *source
}

// Listener is one address the gateway accepts connections on.
type Listener struct {
	// Name identifies the listener in logs and metrics. Required, unique.
	Name string `yaml:"name" json:"name"`
	// Address is host:port to listen on, e.g. ":8080" or "127.0.0.1:8443". Required.
	Address string `yaml:"address" json:"address"`
	// Protocol is "http" (HTTP/1.1 and cleartext HTTP/2 with prior knowledge),
	// "https" (TLS with HTTP/2 and HTTP/1.1 by ALPN) or "h2c" (same as http).
	// Default: "https" when TLS is set, "http" otherwise.
	Protocol string `yaml:"protocol" json:"protocol,omitempty"`
	// TLS holds the certificate for an https listener.
	TLS *ListenerTLS `yaml:"tls" json:"tls,omitempty"`
	// ReadHeaderTimeout bounds reading the request line and headers. Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" json:"read_header_timeout,omitempty"`
	// ReadTimeout bounds reading the whole request, body included. Default 60s.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout,omitempty"`
	// WriteTimeout is how long the client may take to accept each write of the
	// response; it is extended on every write so streams are not cut. Default 60s.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout,omitempty"`
	// IdleTimeout closes keep-alive connections idle this long. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// MaxHeaderBytes caps the request line plus headers. Default 64KiB.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes" json:"max_header_bytes,omitempty"`
	// Server chooses what serves the HTTP/1.1 requests of an http (or h2c)
	// listener: "portico", the gateway's own connection loop, which hands
	// every request it does not read itself to net/http, or "net/http" for
	// net/http alone. https listeners always use net/http. Default "portico".
	Server string `yaml:"server" json:"server,omitempty"`
}

// Values of Listener.Server.
const (
	ServerPortico = "portico"
	ServerNetHTTP = "net/http"
)

// ListenerTLS is a listener's certificate.
type ListenerTLS struct {
	// CertFile is a PEM certificate chain. Required.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is the PEM private key. Required.
	KeyFile string `yaml:"key_file" json:"key_file"`
	// MinVersion is "1.2" or "1.3". Default "1.2".
	MinVersion string `yaml:"min_version" json:"min_version,omitempty"`
}

// Admin is the admin API listener.
type Admin struct {
	// Address is host:port of the admin listener, or "off" to disable it.
	// Default "127.0.0.1:9901".
	Address string `yaml:"address" json:"address,omitempty"`
	// Token, when set, is the bearer token every admin request must carry
	// (except /healthz and /readyz). Use ${VAR} to read it from the environment.
	Token string `yaml:"token" json:"token,omitempty"`
}

// Shutdown controls graceful shutdown on SIGTERM or SIGINT.
type Shutdown struct {
	// Delay is how long /readyz reports 503 before listeners stop accepting,
	// so load balancers notice. Default 0s.
	Delay Duration `yaml:"delay" json:"delay,omitempty"`
	// DrainTimeout is how long in-flight requests may take to finish before
	// connections are closed. Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout,omitempty"`
}

// Logging controls the gateway's own log lines.
type Logging struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level" json:"level,omitempty"`
	// Format is json or text. Default json.
	Format string `yaml:"format" json:"format,omitempty"`
}

// AccessLog controls the one-line-per-request access log.
type AccessLog struct {
	// Enabled turns the access log on. Default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// Output is "stdout", "stderr" or a file path (relative paths are
	// resolved against the configuration file's directory). Default stdout.
	Output string `yaml:"output" json:"output,omitempty"`
	// RedactQuery lists query parameters whose values are replaced with
	// "REDACTED" in logged paths. Default (when the field is absent):
	// access_token, api_key, apikey, key, password, secret, signature, token.
	// An empty list ("[]") redacts nothing.
	RedactQuery []string `yaml:"redact_query" json:"redact_query,omitempty"`
}

// RequestID controls the request id header.
type RequestID struct {
	// Header is the header the id is read from (trusted proxies only), sent
	// upstream in and returned to the client in. Default X-Request-Id.
	Header string `yaml:"header" json:"header,omitempty"`
}

// Service is a named backend with a pool of endpoints.
type Service struct {
	// Name identifies the service. Required, unique.
	Name string `yaml:"name" json:"name"`
	// Endpoints are the service's static instances. Exactly one of
	// Endpoints (at least one) and Discovery is required.
	Endpoints []Endpoint `yaml:"endpoints" json:"endpoints,omitempty"`
	// Discovery finds the service's endpoints at run time: in a registry,
	// in DNS or in etcd (see docs/registry.md).
	Discovery *Discovery `yaml:"discovery" json:"discovery,omitempty"`
	// Transport tunes the connections to the endpoints.
	Transport Transport `yaml:"transport" json:"transport"`
	// LoadBalancer chooses the endpoint of each request. Default round_robin.
	LoadBalancer LoadBalancer `yaml:"load_balancer" json:"load_balancer"`
	// HealthCheck turns on active health checks. Default: none (endpoints
	// are healthy unless outlier detection or the breaker says otherwise).
	HealthCheck *HealthCheck `yaml:"health_check" json:"health_check,omitempty"`
	// OutlierDetection ejects endpoints whose requests keep failing.
	// Default on (5 consecutive failures, 30s, at most 50% ejected).
	OutlierDetection OutlierDetection `yaml:"outlier_detection" json:"outlier_detection"`
	// CircuitBreaker configures per-endpoint breakers and the service's
	// concurrency limits. Default on (5 failures, open 10s), no limits.
	CircuitBreaker CircuitBreaker `yaml:"circuit_breaker" json:"circuit_breaker"`
	// PanicThreshold is a percentage: when fewer of the endpoints are
	// available, requests go to all of them (except open breakers and
	// draining ones) rather than to too few. 0 disables. Default 50.
	PanicThreshold *int `yaml:"panic_threshold" json:"panic_threshold,omitempty"`
	// RetryBudget caps retries and hedges as a share of requests. Default
	// 20% with a minimum of 3 per second, over 10s.
	RetryBudget RetryBudget `yaml:"retry_budget" json:"retry_budget"`
}

// Endpoint is one static instance of a service.
type Endpoint struct {
	// URL is scheme://host:port with scheme http, https or h2c (cleartext
	// HTTP/2, for gRPC). A path, if present, is prefixed to upstream paths.
	URL string `yaml:"url" json:"url"`
	// Weight is the endpoint's relative share of traffic. Default 1.
	Weight int `yaml:"weight" json:"weight,omitempty"`
	// Metadata is free-form labels such as zone or version.
	Metadata map[string]string `yaml:"metadata" json:"metadata,omitempty"`
}

// Transport tunes the HTTP client connections to a service's endpoints.
type Transport struct {
	// DialTimeout bounds establishing a TCP connection. Default 5s.
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout,omitempty"`
	// KeepAlive is the TCP keep-alive probe interval. Default 30s.
	KeepAlive Duration `yaml:"keep_alive" json:"keep_alive,omitempty"`
	// TLSHandshakeTimeout bounds the TLS handshake. Default 10s.
	TLSHandshakeTimeout Duration `yaml:"tls_handshake_timeout" json:"tls_handshake_timeout,omitempty"`
	// IdleConnTimeout closes pooled idle connections after this long. Default 90s.
	IdleConnTimeout Duration `yaml:"idle_conn_timeout" json:"idle_conn_timeout,omitempty"`
	// MaxIdleConnsPerHost is the keep-alive pool size per endpoint. Default 256.
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host" json:"max_idle_conns_per_host,omitempty"`
	// MaxConnsPerHost caps connections per endpoint; 0 means no cap. Default 0.
	MaxConnsPerHost int `yaml:"max_conns_per_host" json:"max_conns_per_host,omitempty"`
	// TLS configures https endpoints.
	TLS *UpstreamTLS `yaml:"tls" json:"tls,omitempty"`
}

// UpstreamTLS configures TLS to https endpoints.
type UpstreamTLS struct {
	// CAFile is a PEM bundle of CAs to trust instead of the system roots.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// ServerName overrides the name verified in the endpoint's certificate.
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// CertFile is a PEM client certificate for mutual TLS; KeyFile is
	// required with it.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file" json:"key_file,omitempty"`
	// InsecureSkipVerify disables certificate verification. Default false;
	// never use it in production.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// Route maps matching requests to a service (or a direct response) through
// its policies.
type Route struct {
	// Name identifies the route in logs and metrics. Required, unique.
	Name string `yaml:"name" json:"name"`
	// Match selects the requests this route handles.
	Match Match `yaml:"match" json:"match"`
	// Service is the name of the service to forward to. Exactly one of
	// Service and DirectResponse is required.
	Service string `yaml:"service" json:"service,omitempty"`
	// Version sends the route's requests only to the service's instances
	// of this version (metadata "version"). At most one of Version and
	// Split.
	Version string `yaml:"version" json:"version,omitempty"`
	// Split divides the route's requests between versions of the service
	// by weight (a canary). A version with no endpoints at all gets no
	// requests; its share goes to the others.
	Split []Split `yaml:"split" json:"split,omitempty"`
	// Mirror sends copies of a share of the requests to a shadow version
	// or service.
	Mirror *Mirror `yaml:"mirror" json:"mirror,omitempty"`
	// DirectResponse answers from the gateway without any upstream.
	DirectResponse *DirectResponse `yaml:"direct_response" json:"direct_response,omitempty"`
	// Rewrite changes the path sent upstream.
	Rewrite *Rewrite `yaml:"rewrite" json:"rewrite,omitempty"`
	// Headers adds, sets and removes request and response headers.
	Headers *HeaderRules `yaml:"headers" json:"headers,omitempty"`
	// Timeout is how long the upstream may take to send response headers;
	// the 504 comes after it. Streaming bodies are not cut by it. Default 60s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// MaxBodyBytes caps the request body; larger requests get 413. -1
	// disables the cap. Default 10MiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// WebSocket allows WebSocket upgrades on this route. Default true.
	WebSocket *bool `yaml:"websocket" json:"websocket,omitempty"`
	// Retry says which failed attempts are sent again, to another endpoint.
	// Default: 2 attempts for requests safe to repeat, on every condition.
	Retry Retry `yaml:"retry" json:"retry"`
	// Hedge sends a second attempt of slow idempotent requests. Default:
	// none.
	Hedge *Hedge `yaml:"hedge" json:"hedge,omitempty"`
	// PropagateDeadline tells endpoints how long the gateway waits for each
	// attempt, in X-Request-Timeout (milliseconds) and grpc-timeout for gRPC
	// requests. Default true.
	PropagateDeadline *bool `yaml:"propagate_deadline" json:"propagate_deadline,omitempty"`
	// Auth authenticates the route's callers. Default: none (every request
	// is anonymous).
	Auth *RouteAuth `yaml:"auth" json:"auth,omitempty"`
	// Authorize is what an authenticated consumer needs to use the route;
	// it requires Auth. Default: none.
	Authorize *Authorize `yaml:"authorize" json:"authorize,omitempty"`
	// MethodOverride honours X-HTTP-Method-Override, X-HTTP-Method and
	// X-Method-Override: the request is routed, authorized and forwarded
	// with the method they name. Otherwise those headers are removed.
	// Default false.
	MethodOverride bool `yaml:"method_override" json:"method_override,omitempty"`
	// RateLimit limits how often the route may be called. Default: no limit.
	RateLimit *RateLimit `yaml:"rate_limit" json:"rate_limit,omitempty"`
	// IPFilter allows or denies client IPs (as derived through
	// trusted_proxies). Default: every address is allowed.
	IPFilter *IPFilter `yaml:"ip_filter" json:"ip_filter,omitempty"`
	// CORS answers preflight requests and adds CORS response headers.
	// Default: none (cross-origin reads are refused by browsers).
	CORS *CORS `yaml:"cors" json:"cors,omitempty"`
}

// Match selects requests. Every non-empty field must match.
type Match struct {
	// Hosts are exact host names or "*.suffix" wildcards, compared without
	// case, port or trailing dot. Empty matches any host.
	Hosts []string `yaml:"hosts" json:"hosts,omitempty"`
	// Path is a pattern of static segments, "{name}" parameters (one segment)
	// and an optional trailing "{name...}" that captures the rest. Required.
	Path string `yaml:"path" json:"path"`
	// Methods are HTTP methods. Empty matches any method.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Headers are predicates every one of which must hold.
	Headers []HeaderMatch `yaml:"headers" json:"headers,omitempty"`
}

// HeaderMatch is one header predicate. Exactly one of Equals, Present and
// Regex is set.
type HeaderMatch struct {
	// Name is the header name (case-insensitive). Required.
	Name string `yaml:"name" json:"name"`
	// Equals requires the header's value to be exactly this string.
	Equals *string `yaml:"equals" json:"equals,omitempty"`
	// Present requires the header to be present (true) or absent (false).
	Present *bool `yaml:"present" json:"present,omitempty"`
	// Regex requires the header's value to match this RE2 expression.
	Regex string `yaml:"regex" json:"regex,omitempty"`
}

// DirectResponse is an answer the gateway gives itself.
type DirectResponse struct {
	// Status is the status code, 200 to 599. Default 200.
	Status int `yaml:"status" json:"status,omitempty"`
	// Body is the response body.
	Body string `yaml:"body" json:"body,omitempty"`
	// ContentType is the body's media type. Default "text/plain; charset=utf-8".
	ContentType string `yaml:"content_type" json:"content_type,omitempty"`
}

// Rewrite changes the upstream path. At most one field is set.
type Rewrite struct {
	// StripPrefix removes this prefix of the canonical path.
	StripPrefix string `yaml:"strip_prefix" json:"strip_prefix,omitempty"`
	// ReplacePrefix replaces a prefix with another.
	ReplacePrefix *ReplacePrefix `yaml:"replace_prefix" json:"replace_prefix,omitempty"`
	// Path is a template with the route's "{name}" parameters, e.g.
	// "/v2/users/{id}".
	Path string `yaml:"path" json:"path,omitempty"`
}

// ReplacePrefix replaces the path prefix From with To.
type ReplacePrefix struct {
	// From is the prefix to replace; it starts with "/". Required.
	From string `yaml:"from" json:"from"`
	// To is what replaces it; it starts with "/". Required.
	To string `yaml:"to" json:"to"`
}

// HeaderRules are the header changes of a route.
type HeaderRules struct {
	// Request changes the headers sent upstream.
	Request HeaderOps `yaml:"request" json:"request"`
	// Response changes the headers sent to the client.
	Response HeaderOps `yaml:"response" json:"response"`
}

// HeaderOps are applied in the order remove, set, add.
type HeaderOps struct {
	// Add appends values, keeping existing ones.
	Add map[string]string `yaml:"add" json:"add,omitempty"`
	// Set replaces values.
	Set map[string]string `yaml:"set" json:"set,omitempty"`
	// Remove deletes headers.
	Remove []string `yaml:"remove" json:"remove,omitempty"`
}
