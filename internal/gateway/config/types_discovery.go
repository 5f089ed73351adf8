package config

// Registry is the gateway's service registry: where instances register and
// heartbeat (served on the admin listener under /registry/v1/) and the
// default source of services with registry discovery. Static: a change
// needs a restart.
type Registry struct {
	// Enabled serves the registry. Default true (in memory, no set-up).
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// Backend is "memory" (this gateway only) or "etcd" (shared by every
	// gateway replica that points at the same etcd). Default memory.
	Backend string `yaml:"backend" json:"backend,omitempty"`
	// Etcd is the etcd cluster of the etcd backend.
	Etcd *Etcd `yaml:"etcd" json:"etcd,omitempty"`
	// DefaultTTL is the TTL of an instance that registers without one.
	// Default 10s.
	DefaultTTL Duration `yaml:"default_ttl" json:"default_ttl,omitempty"`
	// MinTTL and MaxTTL bound the TTL an instance may ask for. Defaults 1s
	// and 5m.
	MinTTL Duration `yaml:"min_ttl" json:"min_ttl,omitempty"`
	MaxTTL Duration `yaml:"max_ttl" json:"max_ttl,omitempty"`
	// GracePeriod is how long a critical instance (its TTL passed without a
	// heartbeat) is listed before it is removed. Default 30s.
	GracePeriod Duration `yaml:"grace_period" json:"grace_period,omitempty"`
	// Tokens are the registration tokens. A writer (register, heartbeat,
	// deregister) must present one whose services cover the instance's
	// service. With no tokens, writers must present the admin token when
	// admin.token is set; with neither, anyone who reaches the admin
	// listener may write (a warning says so when it listens beyond
	// loopback).
	Tokens []RegistryToken `yaml:"tokens" json:"tokens,omitempty"`
	// ReadToken, when set, is the bearer token reads (list, show, watch)
	// must carry; a registration token is accepted too. Default: reads are
	// open.
	ReadToken string `yaml:"read_token" json:"read_token,omitempty"`
}

// RegistryToken is one registration token and the services it may write.
type RegistryToken struct {
	// Name identifies the token in logs (never the token itself). Required,
	// unique.
	Name string `yaml:"name" json:"name"`
	// Token is the secret (at least 16 characters); use ${VAR}. Required.
	Token string `yaml:"token" json:"token"`
	// Services are the service names the token may register, each a name
	// or a pattern ending in "*" ("billing-*"; "*" is every service).
	// Required.
	Services []string `yaml:"services" json:"services"`
}

// Etcd is an etcd cluster to connect to.
type Etcd struct {
	// Endpoints are the cluster's client URLs, e.g.
	// "http://127.0.0.1:2379". Required.
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// Prefix is the key prefix the registry keeps instances under. Default
	// "/portico/registry/".
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// DialTimeout bounds connecting to the cluster. Default 5s.
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout,omitempty"`
	// Username and Password authenticate to etcd when set.
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
}

// Discovery says where a service's endpoints come from when they are not
// listed statically. Exactly one of Registry, DNS and Etcd is set.
type Discovery struct {
	// Registry takes the passing instances of a service from this
	// gateway's registry or from a remote one.
	Registry *RegistryDiscovery `yaml:"registry" json:"registry,omitempty"`
	// DNS resolves a name's A/AAAA or SRV records.
	DNS *DNSDiscovery `yaml:"dns" json:"dns,omitempty"`
	// Etcd reads the registry's instances straight from an etcd cluster.
	Etcd *EtcdDiscovery `yaml:"etcd" json:"etcd,omitempty"`
}

// RegistryDiscovery takes endpoints from a registry.
type RegistryDiscovery struct {
	// Service is the registered service name. Default: the name of the
	// service being configured.
	Service string `yaml:"service" json:"service,omitempty"`
	// Version, when set, keeps only instances of that version.
	Version string `yaml:"version" json:"version,omitempty"`
	// Metadata, when set, keeps only instances whose metadata has every
	// pair given (zone is matched as metadata key "zone").
	Metadata map[string]string `yaml:"metadata" json:"metadata,omitempty"`
	// URL is the base URL of a remote registry's API (a gateway's admin
	// address, e.g. "http://10.0.0.5:9901"). Default: this gateway's own
	// registry.
	URL string `yaml:"url" json:"url,omitempty"`
	// Token is the read token of the remote registry, if it has one.
	Token string `yaml:"token" json:"token,omitempty"`
}

// EtcdDiscovery reads a registry's instances from etcd directly.
type EtcdDiscovery struct {
	// Endpoints are the cluster's client URLs. Required.
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// Prefix is the registry's key prefix. Default "/portico/registry/".
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// DialTimeout bounds connecting to the cluster. Default 5s.
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout,omitempty"`
	// Username and Password authenticate to etcd when set.
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
	// Service is the registered service name. Default: the name of the
	// service being configured.
	Service string `yaml:"service" json:"service,omitempty"`
	// Version, when set, keeps only instances of that version.
	Version string `yaml:"version" json:"version,omitempty"`
	// Metadata, when set, keeps only instances whose metadata has every
	// pair given (zone is matched as metadata key "zone").
	Metadata map[string]string `yaml:"metadata" json:"metadata,omitempty"`
}

// DNSDiscovery resolves a DNS name into endpoints.
type DNSDiscovery struct {
	// Name is the name to resolve, e.g. "orders.shop.svc.cluster.local" or
	// "_http._tcp.orders.shop.svc.cluster.local". Required.
	Name string `yaml:"name" json:"name"`
	// Type is "A" (A and AAAA records), "AAAA" (AAAA records only) or
	// "SRV" (SRV records: their targets' addresses, ports, priorities and
	// weights). Default: SRV when the name starts with "_", A otherwise.
	Type string `yaml:"type" json:"type,omitempty"`
	// Port is the endpoints' port for A/AAAA records. Required for them.
	Port int `yaml:"port" json:"port,omitempty"`
	// Scheme is http, https or h2c. Default http.
	Scheme string `yaml:"scheme" json:"scheme,omitempty"`
	// Resolvers are DNS servers as host:port. Default: the nameservers of
	// /etc/resolv.conf.
	Resolvers []string `yaml:"resolvers" json:"resolvers,omitempty"`
	// Interval is the longest time between resolutions; a record's TTL
	// shortens it (down to MinInterval). Default 30s.
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	// MinInterval is the shortest time between resolutions, whatever the
	// TTLs say. Default 1s.
	MinInterval Duration `yaml:"min_interval" json:"min_interval,omitempty"`
	// Timeout bounds one resolution. Default 5s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Metadata is added to every endpoint found (e.g. version: v1).
	Metadata map[string]string `yaml:"metadata" json:"metadata,omitempty"`
}

// Split is one share of a route's traffic sent to one version.
type Split struct {
	// Version is the instances' version (metadata "version"). Required.
	Version string `yaml:"version" json:"version"`
	// Weight is the share relative to the other splits (e.g. 90 and 10).
	// Required, > 0.
	Weight int `yaml:"weight" json:"weight"`
}

// Mirror sends a copy of a share of a route's requests to a shadow
// version or service. The copy's response is discarded; it never changes
// the client's response, and a slow or failing shadow never slows the
// client.
type Mirror struct {
	// Service is the service the copies go to. Default: the route's.
	Service string `yaml:"service" json:"service,omitempty"`
	// Version, when set, sends copies only to instances of that version.
	Version string `yaml:"version" json:"version,omitempty"`
	// Percent is the share of requests mirrored, 0 < percent <= 100, such
	// as 5 or 0.5. Default 100.
	Percent Decimal `yaml:"percent" json:"percent,omitempty"`
	// MaxBodyBytes: requests with a larger body are not mirrored (their
	// body would have to be held for the copy). Default 64KiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// MaxInFlight caps concurrent mirrored requests; beyond it copies are
	// dropped (and counted). Default 100.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight,omitempty"`
	// Timeout bounds a copy's round trip. Default: the route's timeout.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}
