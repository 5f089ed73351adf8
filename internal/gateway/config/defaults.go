package config

import "time"

// Defaults documented on the configuration types.
const (
	DefaultListenerName        = "http"
	DefaultListenerAddress     = ":8080"
	DefaultAdminAddress        = "127.0.0.1:9901"
	DefaultRequestIDHeader     = "X-Request-Id"
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultMaxBodyBytes        = 10 << 20
	DefaultRouteTimeout        = 60 * time.Second
	DefaultDrainTimeout        = 30 * time.Second
	DefaultContentType         = "text/plain; charset=utf-8"
	DefaultMaxIdleConnsPerHost = 256
)

// Defaults of the registry, discovery and mirror settings.
const (
	DefaultRegistryBackend     = "memory"
	DefaultRegistryTTL         = 10 * time.Second
	DefaultRegistryMinTTL      = time.Second
	DefaultRegistryMaxTTL      = 5 * time.Minute
	DefaultRegistryGracePeriod = 30 * time.Second
	DefaultEtcdPrefix          = "/portico/registry/"
	DefaultEtcdDialTimeout     = 5 * time.Second
	DefaultDNSScheme           = "http"
	DefaultDNSInterval         = 30 * time.Second
	DefaultDNSMinInterval      = time.Second
	DefaultDNSTimeout          = 5 * time.Second
	DefaultMirrorPercent       = 100
	DefaultMirrorMaxBodyBytes  = 64 << 10
	DefaultMirrorMaxInFlight   = 100
)

// DefaultRedactQuery returns the query parameters the access log redacts
// when access_log.redact_query is absent.
func DefaultRedactQuery() []string {
	return []string{"access_token", "api_key", "apikey", "key", "password", "secret", "signature", "token"}
}

// ApplyDefaults fills every unset field with its documented default. Parse
// calls it after validation; it is idempotent.
func (c *Config) ApplyDefaults() {
	if len(c.Listeners) == 0 {
		c.Listeners = []Listener{{Name: DefaultListenerName, Address: DefaultListenerAddress}}
	}
	for i := range c.Listeners {
		c.Listeners[i].applyDefaults()
	}
	setDefault(&c.Admin.Address, DefaultAdminAddress)
	setDefault(&c.Shutdown.DrainTimeout, Duration(DefaultDrainTimeout))
	setDefault(&c.Logging.Level, "info")
	setDefault(&c.Logging.Format, "json")
	if c.AccessLog.Enabled == nil {
		c.AccessLog.Enabled = ptr(true)
	}
	setDefault(&c.AccessLog.Output, "stdout")
	if c.AccessLog.RedactQuery == nil {
		c.AccessLog.RedactQuery = DefaultRedactQuery()
	}
	setDefault(&c.RequestID.Header, DefaultRequestIDHeader)
	for i := range c.Services {
		c.Services[i].applyDefaults()
	}
	for i := range c.Routes {
		c.Routes[i].applyDefaults()
	}
	c.applyAuthDefaults()
	c.applyLimitDefaults()
	c.applyUpstreamDefaults()
	c.applyDiscoveryDefaults()
}

// applyDiscoveryDefaults fills the registry, the services' discovery and
// the routes' mirrors. It runs after the routes' own defaults, since a
// mirror's timeout defaults to its route's.
func (c *Config) applyDiscoveryDefaults() {
	r := &c.Registry
	if r.Enabled == nil {
		r.Enabled = ptr(true)
	}
	setDefault(&r.Backend, DefaultRegistryBackend)
	if r.Etcd != nil {
		setDefault(&r.Etcd.Prefix, DefaultEtcdPrefix)
		setDefault(&r.Etcd.DialTimeout, Duration(DefaultEtcdDialTimeout))
	}
	setDefault(&r.DefaultTTL, Duration(DefaultRegistryTTL))
	setDefault(&r.MinTTL, Duration(DefaultRegistryMinTTL))
	setDefault(&r.MaxTTL, Duration(DefaultRegistryMaxTTL))
	setDefault(&r.GracePeriod, Duration(DefaultRegistryGracePeriod))
	for i := range c.Services {
		s := &c.Services[i]
		if s.Discovery == nil {
			continue
		}
		if rd := s.Discovery.Registry; rd != nil {
			setDefault(&rd.Service, s.Name)
		}
		if ed := s.Discovery.Etcd; ed != nil {
			setDefault(&ed.Service, s.Name)
			setDefault(&ed.Prefix, DefaultEtcdPrefix)
			setDefault(&ed.DialTimeout, Duration(DefaultEtcdDialTimeout))
		}
		if dd := s.Discovery.DNS; dd != nil {
			dd.Type = dnsType(dd)
			setDefault(&dd.Scheme, DefaultDNSScheme)
			setDefault(&dd.Interval, Duration(DefaultDNSInterval))
			setDefault(&dd.MinInterval, Duration(DefaultDNSMinInterval))
			setDefault(&dd.Timeout, Duration(DefaultDNSTimeout))
		}
	}
	for i := range c.Routes {
		rt := &c.Routes[i]
		if m := rt.Mirror; m != nil {
			setDefault(&m.Service, rt.Service)
			setDefault(&m.Percent, DefaultMirrorPercent)
			setDefault(&m.MaxBodyBytes, DefaultMirrorMaxBodyBytes)
			setDefault(&m.MaxInFlight, DefaultMirrorMaxInFlight)
			setDefault(&m.Timeout, rt.Timeout)
		}
	}
}

func (l *Listener) applyDefaults() {
	if l.Protocol == "" {
		l.Protocol = "http"
		if l.TLS != nil {
			l.Protocol = "https"
		}
	}
	if l.TLS != nil {
		setDefault(&l.TLS.MinVersion, "1.2")
	}
	setDefault(&l.ReadHeaderTimeout, Duration(10*time.Second))
	setDefault(&l.ReadTimeout, Duration(60*time.Second))
	setDefault(&l.WriteTimeout, Duration(60*time.Second))
	setDefault(&l.IdleTimeout, Duration(120*time.Second))
	setDefault(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
}

func (s *Service) applyDefaults() {
	for i := range s.Endpoints {
		setDefault(&s.Endpoints[i].Weight, 1)
	}
	t := &s.Transport
	setDefault(&t.DialTimeout, Duration(5*time.Second))
	setDefault(&t.KeepAlive, Duration(30*time.Second))
	setDefault(&t.TLSHandshakeTimeout, Duration(10*time.Second))
	setDefault(&t.IdleConnTimeout, Duration(90*time.Second))
	setDefault(&t.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
}

func (r *Route) applyDefaults() {
	setDefault(&r.Timeout, Duration(DefaultRouteTimeout))
	setDefault(&r.MaxBodyBytes, DefaultMaxBodyBytes)
	if r.WebSocket == nil {
		r.WebSocket = ptr(true)
	}
	if d := r.DirectResponse; d != nil {
		setDefault(&d.Status, 200)
		setDefault(&d.ContentType, DefaultContentType)
	}
}

// IsEnabled reports whether the access log is on; unset means on.
func (a AccessLog) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// WebSocketEnabled reports whether WebSocket upgrades are allowed on the
// route; unset means allowed.
func (r Route) WebSocketEnabled() bool { return r.WebSocket == nil || *r.WebSocket }

// BodyLimit returns the request body cap in bytes and whether there is one:
// unset means DefaultMaxBodyBytes, -1 means no cap.
func (r Route) BodyLimit() (int64, bool) {
	switch {
	case r.MaxBodyBytes == Unlimited:
		return 0, false
	case r.MaxBodyBytes <= 0:
		return DefaultMaxBodyBytes, true
	}
	return int64(r.MaxBodyBytes), true
}

// IsEnabled reports whether the registry is served; unset means served.
func (r Registry) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// Enabled reports whether the admin listener runs (address is not "off").
func (a Admin) Enabled() bool { return a.Address != "off" }

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

func ptr[T any](v T) *T { return &v }
