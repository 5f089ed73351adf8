package forwarded

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
)

// RequestIDLen is the length of the ids NewRequestID returns.
const RequestIDLen = prefixLen + counterLen

const (
	// alphabet is Crockford's base32 in lower case: URL-safe, no padding, and
	// free of the look-alikes i, l, o and u.
	alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	// prefixLen characters carry 60 random bits chosen once per process, so
	// ids from different gateway processes do not collide.
	prefixLen = 12
	// counterLen characters carry a 64-bit per-process sequence number.
	counterLen = 13
)

// idSource mints request ids: a random per-process prefix followed by an
// atomic sequence number. The sequence number is passed through a bijective
// mixing function, so ids stay unique within the process but do not reveal
// how many requests the gateway has served.
type idSource struct {
	prefix [prefixLen]byte
	seq    atomic.Uint64
}

var ids = newIDSource()

func newIDSource() *idSource {
	var seed [16]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails; it crashes the program instead.
	s := &idSource{}
	bits := binary.LittleEndian.Uint64(seed[:8])
	for i := range s.prefix {
		s.prefix[i] = alphabet[bits&31]
		bits >>= 5
	}
	s.seq.Store(binary.LittleEndian.Uint64(seed[8:]))
	return s
}

func (s *idSource) next() string {
	var b [RequestIDLen]byte
	copy(b[:], s.prefix[:])
	v := mix(s.seq.Add(1))
	for i := RequestIDLen - 1; i >= prefixLen; i-- {
		b[i] = alphabet[v&31]
		v >>= 5
	}
	return string(b[:])
}

// mix is the SplitMix64 finalizer, a bijection on uint64.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// NewRequestID returns a new request id: 25 URL-safe characters, unique
// within the process and, with overwhelming probability, across processes.
// It costs one small allocation and no system call.
func NewRequestID() string { return ids.next() }

// MaxRequestIDLen is the longest request id ValidRequestID accepts.
const MaxRequestIDLen = 128

// ValidRequestID reports whether s may be used as a request id received from a
// trusted proxy: 1 to 128 visible ASCII characters, without quotes or commas,
// so it can be echoed in headers and logs without quoting.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\'' || c == ',' {
			return false
		}
	}
	return true
}
