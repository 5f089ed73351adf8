// Package discovery holds the sources of a service's endpoints: a static
// list, a registry (embedded in the gateway, remote, or etcd) and DNS (A,
// AAAA and SRV records). A provider pushes complete endpoint sets; the
// gateway hands each set to the service's pools, which reconcile it with
// the endpoints they already have.
//
// A provider that fails (the registry or etcd unreachable, a DNS timeout)
// reports the failure and pushes nothing, so the last set it pushed keeps
// serving until it recovers.
package discovery

import (
	"context"
	"net/url"
)

// Meta keys providers fill from what they discover.
const (
	MetaVersion  = "version"
	MetaZone     = "zone"
	MetaInstance = "instance" // the registry instance id
	MetaContract = "contract"
)

// Endpoint is one discovered endpoint of a service.
type Endpoint struct {
	// URL is scheme://host:port; the scheme is http, https or h2c.
	URL *url.URL
	// Weight is the relative share of traffic; 0 means 1.
	Weight int
	// Meta carries labels such as version and zone (see the Meta*
	// constants), used to select subsets of the service.
	Meta map[string]string
}

// Sink receives what a provider finds. Its methods are called from the
// provider's goroutine and must not block for long.
type Sink interface {
	// Update delivers the complete current endpoint set (possibly empty:
	// the service has no instances). The slice is the sink's to keep.
	Update(eps []Endpoint)
	// Fail reports that the provider could not refresh the set; the last
	// set delivered stays in use. A later Update clears the failure.
	Fail(err error)
}

// Provider is one source of a service's endpoints.
type Provider interface {
	// Kind names the provider in logs, metrics and the admin API:
	// "static", "registry", "dns" or "etcd".
	Kind() string
	// Run delivers endpoint sets to sink until ctx is done, then returns
	// nil. It delivers the first set (or a failure) as soon as it can and
	// retries failures with backoff on its own; it returns an error only
	// when it cannot run at all.
	Run(ctx context.Context, sink Sink) error
}
