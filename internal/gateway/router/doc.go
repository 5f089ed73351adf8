// Package router turns a request into a route: it computes the one canonical
// path of a request (CanonicalPath), matches host, path, method and header
// predicates against the routes of a snapshot (Router), and rewrites the path
// sent upstream (Rewriter).
//
// A Router is immutable once built by New; Lookup takes no locks and does not
// allocate, so one Router serves every request of a snapshot concurrently.
// The rules and their precedence are described in docs/routing.md.
package router
