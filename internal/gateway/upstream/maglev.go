package upstream

import (
	"net/http"
	"strings"
	"sync/atomic"
)

// HashFunc returns the consistent-hash key of a request and whether the
// request has one. It must not allocate.
type HashFunc func(r *http.Request) (uint64, bool)

// Maglev is consistent hashing with Google's Maglev lookup table: requests
// with the same key go to the same endpoint, and when one of N endpoints
// leaves the set only about 1/N of the keys move. A key whose endpoint is
// unusable is rehashed to another, so it returns once the endpoint recovers;
// requests without a key are spread round robin. Weights are honoured.
type Maglev struct {
	key  HashFunc
	next atomic.Uint64
}

// NewMaglev returns a consistent-hash balancer keyed by key. If key is nil,
// HashRemoteAddr() is used.
func NewMaglev(key HashFunc) *Maglev {
	if key == nil {
		key = HashRemoteAddr()
	}
	return &Maglev{key: key}
}

// Name implements Balancer.
func (*Maglev) Name() string { return "consistent_hash" }

// maglevSizes are primes; a table is the smallest at least 100 times the
// number of endpoints, so each endpoint's share is within 1% of its weight.
var maglevSizes = [...]uint64{1021, 2053, 4099, 8209, 16411, 32771, 65537, 131101}

// maglevTable maps hash % len to an endpoint index.
type maglevTable []int32

// Prepare implements Balancer.
func (*Maglev) Prepare(eps []*Endpoint) any {
	n := len(eps)
	if n == 0 {
		return maglevTable(nil)
	}
	m := maglevSizes[len(maglevSizes)-1]
	for _, s := range maglevSizes {
		if s >= uint64(100*n) {
			m = s
			break
		}
	}
	skip := make([]uint64, n)
	credit := make([]float64, n)
	// pos is where each endpoint's permutation (offset + j·skip) mod m
	// stands; stepping it by one addition avoids a division per probe.
	pos := make([]uint64, n)
	maxW := 1
	for i, e := range eps {
		k := e.Key()
		skip[i] = hashSeed(k, 0x9e3779b97f4a7c15)%(m-1) + 1
		pos[i] = HashString(k) % m // the permutation's offset
		maxW = max(maxW, e.weight())
	}
	table := make(maglevTable, m)
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	for filled < m {
		for i, e := range eps {
			credit[i] += float64(e.weight()) / float64(maxW)
			for credit[i] >= 1 && filled < m {
				credit[i]--
				// Walk i's permutation to its next free slot.
				for {
					slot := pos[i]
					if pos[i] += skip[i]; pos[i] >= m {
						pos[i] -= m
					}
					if table[slot] < 0 {
						table[slot] = int32(i)
						filled++
						break
					}
				}
			}
		}
	}
	return table
}

// Pick implements Balancer.
func (mg *Maglev) Pick(c Candidates) *Endpoint {
	table, _ := c.state.(maglevTable)
	h, ok := uint64(0), false
	if c.req != nil {
		h, ok = mg.key(c.req)
	}
	if !ok || len(table) == 0 {
		return c.Scan(int(mg.next.Add(1) % uint64(len(c.eps))))
	}
	m := uint64(len(table))
	for k := range uint64(8) {
		if e := c.eps[table[h%m]]; c.Usable(e) {
			return e
		}
		h = mix(h + k + 1)
	}
	return c.Scan(int(table[h%m]))
}

// HashString hashes s with FNV-1a and a final mix. It is stable across
// processes, so gateways that share a configuration agree on key placement.
func HashString(s string) uint64 { return hashSeed(s, 0) }

// HashBytes is HashString for a byte slice.
func HashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashSeed(s string, seed uint64) uint64 {
	h := uint64(fnvOffset) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// mix is the splitmix64 finalizer; it spreads FNV's weak low bits.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// HashHeader keys requests by the first value of the named header.
func HashHeader(name string) HashFunc {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) (uint64, bool) {
		v := r.Header[name]
		if len(v) == 0 || v[0] == "" {
			return 0, false
		}
		return HashString(v[0]), true
	}
}

// HashCookie keys requests by the value of the named cookie.
func HashCookie(name string) HashFunc {
	return func(r *http.Request) (uint64, bool) {
		v, ok := CookieValue(r.Header, name)
		if !ok {
			return 0, false
		}
		return HashString(v), true
	}
}

// HashRemoteAddr keys requests by the host part of RemoteAddr, the address
// of the immediate peer.
func HashRemoteAddr() HashFunc {
	return func(r *http.Request) (uint64, bool) {
		a := r.RemoteAddr
		if i := strings.LastIndexByte(a, ':'); i > 0 && !strings.HasSuffix(a, "]") {
			a = a[:i]
		}
		if a == "" {
			return 0, false
		}
		return HashString(a), true
	}
}

// CookieValue returns the value of the named cookie in h without parsing
// the other cookies into values (so without allocating).
func CookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, v != ""
		}
	}
	return "", false
}
