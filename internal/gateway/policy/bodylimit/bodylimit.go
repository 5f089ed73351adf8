// Package bodylimit is the policy that caps the size of a route's request
// bodies (route field max_body_bytes).
package bodylimit

import (
	"net/http"
	"strconv"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/problem"
)

// New returns a handler that enforces a request body limit of limit bytes in
// front of next.
//
// A request whose Content-Length exceeds limit is answered with 413 and a
// problem+json body at once: next is not called and the body is not read, so
// a client waiting on "Expect: 100-continue" never sends it. Any other body is
// wrapped with http.MaxBytesReader, so reading past the limit fails with an
// *http.MaxBytesError, which the proxy answers with 413.
//
// A limit of 0 or less means no limit: New returns next unchanged.
func New(next http.Handler, limit int64) http.Handler {
	if limit <= 0 {
		return next
	}
	return &handler{
		next:   next,
		limit:  limit,
		detail: "the request body is larger than this route's limit of " + strconv.FormatInt(limit, 10) + " bytes",
	}
}

type handler struct {
	next   http.Handler
	limit  int64
	detail string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.limit {
		h.reject(w, r)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, h.limit)
	}
	h.next.ServeHTTP(w, r)
}

func (h *handler) reject(w http.ResponseWriter, r *http.Request) {
	d := problem.Details{Status: http.StatusRequestEntityTooLarge, Detail: h.detail}
	if x := exchange.From(r.Context()); x != nil {
		d.RequestID = x.ID
		x.Err = &http.MaxBytesError{Limit: h.limit}
	}
	problem.Write(w, d)
}
