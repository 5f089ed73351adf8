package discovery

import (
	"context"
	"maps"
	"net/url"
)

// static is a fixed endpoint list.
type static struct {
	eps []Endpoint
}

var _ Provider = (*static)(nil)

// Static returns a provider of a fixed endpoint set: Run delivers a copy of
// eps once and waits for its context to end. eps is copied, so the caller
// may reuse it.
func Static(eps []Endpoint) Provider {
	return &static{eps: cloneEndpoints(eps)}
}

// Kind returns "static".
func (s *static) Kind() string { return "static" }

// Run delivers the set once, then waits for ctx.
func (s *static) Run(ctx context.Context, sink Sink) error {
	if ctx.Err() != nil {
		return nil
	}
	sink.Update(cloneEndpoints(s.eps))
	<-ctx.Done()
	return nil
}

// cloneEndpoints deep-copies eps (URLs and Meta maps too), so the copy can
// be handed to a sink that keeps and may change it. A nil or empty eps
// gives an empty, non-nil slice.
func cloneEndpoints(eps []Endpoint) []Endpoint {
	out := make([]Endpoint, len(eps))
	for i, e := range eps {
		out[i] = Endpoint{URL: cloneURL(e.URL), Weight: e.Weight, Meta: maps.Clone(e.Meta)}
	}
	return out
}

func cloneURL(u *url.URL) *url.URL {
	if u == nil {
		return nil
	}
	c := *u
	if u.User != nil {
		user := *u.User
		c.User = &user
	}
	return &c
}
