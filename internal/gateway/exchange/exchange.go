// Package exchange carries the facts of one request through the gateway: the
// canonical path, the matched route and its parameters, the chosen endpoint and
// what happened upstream. The access log and metrics read it after the response.
//
// One Exchange is attached to the request context when the request enters the
// gateway; every later stage (router, policies, proxy) reads and writes that same
// value, so no stage has to re-derive what an earlier one decided.
package exchange

import (
	"context"
	"net/netip"
	"time"
)

// MaxParams is the number of path parameters a route pattern may capture.
const MaxParams = 8

// Param is one captured path parameter.
type Param struct {
	Name  string
	Value string
}

// Params holds the captured parameters of a matched route without allocating.
type Params struct {
	n   int
	arr [MaxParams]Param
}

// Len returns the number of captured parameters.
func (p *Params) Len() int { return p.n }

// At returns the i-th captured parameter.
func (p *Params) At(i int) Param { return p.arr[i] }

// Get returns the value of the named parameter and whether it was captured.
func (p *Params) Get(name string) (string, bool) {
	for i := 0; i < p.n; i++ {
		if p.arr[i].Name == name {
			return p.arr[i].Value, true
		}
	}
	return "", false
}

// Add appends a parameter. It reports false if MaxParams are already held.
func (p *Params) Add(name, value string) bool {
	if p.n == MaxParams {
		return false
	}
	p.arr[p.n] = Param{Name: name, Value: value}
	p.n++
	return true
}

// Truncate drops parameters beyond n; the router uses it when it backtracks.
func (p *Params) Truncate(n int) {
	if n < p.n {
		for i := n; i < p.n; i++ {
			p.arr[i] = Param{}
		}
		p.n = n
	}
}

// Reset empties p.
func (p *Params) Reset() { p.Truncate(0) }

// Exchange is the state of one request as it crosses the gateway.
// Fields are written by the stage that owns them and read afterwards; an
// Exchange is used by one request goroutine at a time.
type Exchange struct {
	// Start is when the gateway accepted the request.
	Start time.Time
	// ID is the request id sent upstream and returned to the client.
	ID string
	// ClientIP is the address of the client as derived from trusted proxies.
	ClientIP netip.Addr
	// Path is the canonical (normalized, decoded) request path. Routing,
	// policies and the upstream request all use it.
	Path string
	// UpstreamPath is the path sent upstream after route rewrites; empty means Path.
	UpstreamPath string
	// Route is the name of the matched route, empty if none matched.
	Route string
	// Service is the name of the service the route forwards to, if any.
	Service string
	// Params are the path parameters the route captured.
	Params Params
	// Endpoint is the address of the endpoint that served the request.
	Endpoint string
	// Status is the status code sent to the client (499 if it went away first).
	Status int
	// BytesIn and BytesOut count request and response body bytes.
	BytesIn, BytesOut int64
	// UpstreamStart and UpstreamDuration time the upstream round trip.
	UpstreamStart    time.Time
	UpstreamDuration time.Duration
	// GRPCStatus is the grpc-status of a gRPC response, or empty.
	GRPCStatus string
	// Err is the error that ended the request early, if any.
	Err error
	// Consumer is the authenticated caller, or nil for an anonymous request.
	// It is shared and must not be modified.
	Consumer *Consumer
	// MethodOverride is set when the route honours method override headers;
	// the proxy forwards them only then.
	MethodOverride bool
	// LogQuery, when not empty, is the query the access log records instead
	// of the request's: a policy that found a credential in the query sets
	// it with that value redacted.
	LogQuery string
}

// Reset clears x for reuse.
func (x *Exchange) Reset() { *x = Exchange{} }

type ctxKey struct{}

// NewContext returns a context carrying x. A request context that can hold
// one value in place (the gateway's HTTP/1.1 server's, see ValueHolder)
// takes x itself and is returned as it is, which spares the caller a copy
// of the request.
func NewContext(ctx context.Context, x *Exchange) context.Context {
	if h, ok := ctx.(ValueHolder); ok && h.HoldValue(ctxKey{}, x) {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, x)
}

// ValueHolder is a context that can be given one value after it was made,
// before it is shared: HoldValue stores val under key, to be returned by
// Value, and reports whether it did (it holds only one).
type ValueHolder interface {
	context.Context
	HoldValue(key, val any) bool
}

// From returns the Exchange carried by ctx, or nil.
func From(ctx context.Context) *Exchange {
	x, _ := ctx.Value(ctxKey{}).(*Exchange)
	return x
}
