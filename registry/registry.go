// Package registry is Portico's service registry: the instances of each
// service, kept alive by heartbeats, behind one narrow storage interface
// (in memory, or etcd for several gateway replicas), an HTTP API that
// instances register through, and a client for that API.
//
// An instance registers with a TTL and heartbeats within it. An instance
// whose heartbeats stop is marked critical when its TTL passes and removed
// when its grace period passes too; deregistration removes it at once.
// Every change has a revision, a number that grows by at least one per
// change, so a watcher that reconnects resumes after the last revision it saw
// and misses nothing.
package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Protocols an instance speaks.
const (
	ProtocolHTTP  = "http"  // HTTP/1.1 (and HTTP/2 through TLS ALPN)
	ProtocolHTTPS = "https" // HTTP over TLS
	ProtocolH2C   = "h2c"   // cleartext HTTP/2
	ProtocolGRPC  = "grpc"  // gRPC over cleartext HTTP/2
)

// Health statuses of an instance.
const (
	// StatusPassing: the instance heartbeats within its TTL.
	StatusPassing = "passing"
	// StatusCritical: the TTL passed without a heartbeat; the instance is
	// removed when its grace period passes too, unless it heartbeats again.
	StatusCritical = "critical"
)

// Instance is one running copy of a service.
type Instance struct {
	// ID identifies the instance within its service; an instance that
	// restarts and registers with the same ID replaces its old entry.
	// 1–128 characters of [A-Za-z0-9._:-].
	ID string `json:"id"`
	// Service is the service's name: 1–128 characters of [a-z0-9._-],
	// starting with a letter or digit.
	Service string `json:"service"`
	// Version is the service version the instance runs, such as "v2" or
	// "1.4.0"; routes may select or split traffic by it. Optional.
	Version string `json:"version,omitempty"`
	// Address is host:port the instance is reached at.
	Address string `json:"address"`
	// Protocol is http (the default), https, h2c or grpc.
	Protocol string `json:"protocol,omitempty"`
	// Zone is the failure domain the instance runs in. Optional.
	Zone string `json:"zone,omitempty"`
	// Weight is the instance's relative share of traffic; 0 means 1.
	Weight int `json:"weight,omitempty"`
	// Metadata is free-form labels (at most 64 pairs, keys 1–63 and values
	// up to 256 bytes).
	Metadata map[string]string `json:"metadata,omitempty"`
	// Contract is a URL or path of the instance's API contract (OpenAPI or
	// proto file). Optional.
	Contract string `json:"contract,omitempty"`

	// The fields below are kept by the registry; values sent by a client
	// are ignored.

	// Status is passing or critical.
	Status string `json:"status"`
	// TTL is how long the instance stays passing without a heartbeat.
	TTL Duration `json:"ttl"`
	// RegisteredAt is when the instance (last) registered.
	RegisteredAt time.Time `json:"registered_at"`
	// LastHeartbeat is when the registry last heard from the instance.
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// Revision is the revision of the instance's last change.
	Revision int64 `json:"revision"`
}

// Scheme is the URL scheme the gateway reaches the instance with: "h2c" for
// h2c and grpc, "https" for https, "http" otherwise.
func (in *Instance) Scheme() string {
	switch in.Protocol {
	case ProtocolH2C, ProtocolGRPC:
		return "h2c"
	case ProtocolHTTPS:
		return "https"
	}
	return "http"
}

// ServiceSummary is one service as listed by Services.
type ServiceSummary struct {
	Name string `json:"name"`
	// Instances counts the registered instances; Passing those passing.
	Instances int `json:"instances"`
	Passing   int `json:"passing"`
	// Versions are the distinct versions registered, sorted.
	Versions []string `json:"versions,omitempty"`
}

// Event types.
const (
	// EventPut: an instance registered, changed, or changed status.
	EventPut = "put"
	// EventDelete: an instance deregistered or its grace period passed.
	// Only ID, Service and Revision of the event's instance are
	// guaranteed.
	EventDelete = "delete"
)

// Event is one change to the registry.
type Event struct {
	Type     string   `json:"type"`
	Instance Instance `json:"instance"`
	// Revision is the registry revision of the change.
	Revision int64 `json:"revision"`
}

// Errors the stores, the HTTP API and the client share.
var (
	// ErrNotFound: no such instance (a heartbeat for it must register
	// again).
	ErrNotFound = errors.New("registry: instance not found")
	// ErrCompacted: the revision a watch should resume after is older than
	// the history the store keeps; list the instances again and watch from
	// the listing's revision.
	ErrCompacted = errors.New("registry: revision compacted")
	// ErrInvalid wraps every validation error of a registration.
	ErrInvalid = errors.New("registry: invalid instance")
	// ErrUnavailable wraps a storage backend that cannot be reached.
	ErrUnavailable = errors.New("registry: storage unavailable")
	// ErrClosed: the store or watch was closed.
	ErrClosed = errors.New("registry: closed")
)

// Reader is the read side of a registry, which discovery needs: a store, or
// a client of a remote registry's HTTP API.
type Reader interface {
	// Instances lists the instances of service (all services when service
	// is empty), sorted by service then ID, and the revision the listing
	// reflects.
	Instances(ctx context.Context, service string) ([]Instance, int64, error)
	// Watch returns the changes to service (all services when empty) with
	// a revision greater than after. It fails with ErrCompacted when after
	// is older than the kept history.
	Watch(ctx context.Context, service string, after int64) (Watcher, error)
}

// Watcher yields changes in revision order.
type Watcher interface {
	// Next blocks until the next change, ctx is done, or the watch fails.
	// After an error the watcher is finished; ErrCompacted means the
	// watcher fell behind the kept history.
	Next(ctx context.Context) (Event, error)
	// Close releases the watch. Next then returns ErrClosed.
	Close() error
}

// Store keeps the registry's state. Implementations are safe for
// concurrent use.
type Store interface {
	Reader
	// Register adds the instance, or replaces the one with the same
	// service and ID, as passing with the given TTL, and returns it as
	// stored. Fields the registry keeps are set by the store.
	Register(ctx context.Context, in Instance, ttl time.Duration) (Instance, error)
	// Heartbeat renews the instance's TTL (a critical instance becomes
	// passing again). ErrNotFound means it must register again.
	Heartbeat(ctx context.Context, service, id string) (Instance, error)
	// Deregister removes the instance at once. ErrNotFound if absent.
	Deregister(ctx context.Context, service, id string) error
	// Services summarizes every service with at least one instance, sorted
	// by name.
	Services(ctx context.Context) ([]ServiceSummary, error)
	// Close stops the store's timers and watches.
	Close() error
}

// Duration is a time.Duration that encodes in JSON as a Go duration string
// ("10s") and decodes from one or from a number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON encodes d as a duration string such as "10s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON decodes a duration string ("10s", "1m30s") or a number of
// seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		v, err := time.ParseDuration(s[1 : len(s)-1])
		if err != nil {
			return fmt.Errorf("invalid duration %s", s)
		}
		*d = Duration(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("invalid duration %s: want a string such as \"10s\" or a number of seconds", s)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}
