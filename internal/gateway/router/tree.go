package router

import (
	"net/http"
	"sort"
	"strings"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// linearMax is the number of static children up to which a node scans a slice
// rather than a map; for a handful of short keys the scan is faster.
const linearMax = 8

// node is one position in a segment tree. The edge into a node consumes one
// path segment (static or parameter); a catch-all consumes the rest.
type node struct {
	edges []edge           // static children
	index map[string]*node // static children by segment, when there are many
	param *node            // the child reached by a "{name}" segment
	leaf  *leaf            // routes whose pattern ends here
	catch *leaf            // routes whose pattern ends with "{name...}" here
}

type edge struct {
	seg   string
	child *node
}

// leaf holds the routes that share one pattern shape, in the order they are
// tried.
type leaf struct {
	cands []*cand
}

// cand is one route at a leaf.
type cand struct {
	value   int
	name    string
	pattern string
	params  []string // parameter names, in path order
	methods uint64   // method bits; 0 matches any method
	headers []HeaderMatch
	order   int    // position in the configuration
	key     string // methods and headers, to find duplicates
}

func (n *node) child(seg string) *node {
	if n.index != nil {
		return n.index[seg]
	}
	for i := range n.edges {
		if n.edges[i].seg == seg {
			return n.edges[i].child
		}
	}
	return nil
}

// insert adds c under the path described by segs and returns the leaf it went
// into.
func (n *node) insert(segs []patSeg, c *cand) *leaf {
	for _, s := range segs {
		switch s.kind {
		case segCatchAll:
			if n.catch == nil {
				n.catch = &leaf{}
			}
			n.catch.cands = append(n.catch.cands, c)
			return n.catch
		case segParam:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		default:
			next := n.child(s.text)
			if next == nil {
				next = &node{}
				n.edges = append(n.edges, edge{seg: s.text, child: next})
			}
			n = next
		}
	}
	if n.leaf == nil {
		n.leaf = &leaf{}
	}
	n.leaf.cands = append(n.leaf.cands, c)
	return n.leaf
}

// finish orders every leaf's candidates and indexes wide nodes.
func (n *node) finish() {
	if len(n.edges) > linearMax {
		n.index = make(map[string]*node, len(n.edges))
		for _, e := range n.edges {
			n.index[e.seg] = e.child
		}
	}
	for _, e := range n.edges {
		e.child.finish()
	}
	if n.param != nil {
		n.param.finish()
	}
	n.leaf.sort()
	n.catch.sort()
}

// sort orders candidates: more header predicates first, then routes with a
// method list before method-less ones, then configuration order.
func (l *leaf) sort() {
	if l == nil {
		return
	}
	sort.SliceStable(l.cands, func(i, j int) bool {
		a, b := l.cands[i], l.cands[j]
		if len(a.headers) != len(b.headers) {
			return len(a.headers) > len(b.headers)
		}
		if (a.methods != 0) != (b.methods != 0) {
			return a.methods != 0
		}
		return a.order < b.order
	})
}

// search is the state of one Lookup, shared by the recursive walk.
type search struct {
	h      http.Header
	method uint64 // the request method's bit, 0 if no route names it
	params *exchange.Params
	allow  uint64 // methods of candidates that failed on method alone
	hit    *cand
}

// match walks the tree below n for rem, which is empty or starts with "/".
// Static children are tried first, then a parameter, then a catch-all; a
// branch that fails deeper down gives way to the next.
func (n *node) match(rem string, s *search) bool {
	if rem == "" {
		return n.leaf != nil && s.try(n.leaf)
	}
	seg, rest := rem[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, rest = seg[:i], seg[i:]
	}
	if c := n.child(seg); c != nil && c.match(rest, s) {
		return true
	}
	k := s.params.Len()
	if n.param != nil && seg != "" {
		s.params.Add("", seg)
		if n.param.match(rest, s) {
			return true
		}
		s.params.Truncate(k)
	}
	if n.catch != nil {
		s.params.Add("", rem[1:])
		if s.try(n.catch) {
			return true
		}
		s.params.Truncate(k)
	}
	return false
}

// try checks the candidates of a leaf whose pattern matched the path. On a hit
// it names the captured parameters after the winning route's pattern.
func (s *search) try(l *leaf) bool {
	for _, c := range l.cands {
		if !headersMatch(c.headers, s.h) {
			continue
		}
		if c.methods != 0 && c.methods&s.method == 0 {
			s.allow |= c.methods
			continue
		}
		s.hit = c
		var vals [exchange.MaxParams]string
		for i := range c.params {
			vals[i] = s.params.At(i).Value
		}
		s.params.Reset()
		for i, name := range c.params {
			s.params.Add(name, vals[i])
		}
		return true
	}
	return false
}

func headersMatch(hms []HeaderMatch, h http.Header) bool {
	for i := range hms {
		if !hms[i].match(h[hms[i].Name]) {
			return false
		}
	}
	return true
}
