package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unsafe"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// ErrBadKey is returned (wrapped) for an unknown key part.
var ErrBadKey = errors.New("invalid rate-limit key")

// maxKeyValue is the longest request-supplied value used as is in a key;
// longer ones, and ones that could be mistaken for a separator or a digest,
// are replaced by a digest so keys stay short and unambiguous.
const maxKeyValue = 128

type partKind uint8

const (
	partClientIP partKind = iota + 1
	partConsumer
	partAPIKey
	partHeader
)

type keyPart struct {
	kind   partKind
	header string // canonical header name for partHeader
}

// KeySpec is a compiled rate-limit key: which facts of a request a counter
// is kept by.
type KeySpec struct {
	parts []keyPart
}

// ParseKey compiles key parts: "client_ip", "consumer", "api_key" and
// "header:NAME". The consumer and api_key parts read what the auth policy
// recorded in the exchange (the authenticated consumer, the identity of
// the API key it presented), never the request itself, so a client cannot
// choose its own bucket by sending a made-up key.
func ParseKey(parts []string) (KeySpec, error) {
	if len(parts) == 0 {
		parts = []string{"client_ip"}
	}
	var ks KeySpec
	for _, p := range parts {
		switch p {
		case "client_ip":
			ks.parts = append(ks.parts, keyPart{kind: partClientIP})
		case "consumer":
			ks.parts = append(ks.parts, keyPart{kind: partConsumer})
		case "api_key":
			ks.parts = append(ks.parts, keyPart{kind: partAPIKey})
		default:
			name, ok := strings.CutPrefix(p, "header:")
			if !ok || name == "" {
				return KeySpec{}, fmt.Errorf("%w: part %q: use client_ip, consumer, api_key or header:NAME", ErrBadKey, p)
			}
			ks.parts = append(ks.parts, keyPart{kind: partHeader, header: http.CanonicalHeaderKey(name)})
		}
	}
	return ks, nil
}

// NeedsIdentity reports whether the key has a part only authentication can
// fill (consumer or api_key); a limit with such a key must run after the
// auth policy, any other may run before it.
func (ks KeySpec) NeedsIdentity() bool {
	for _, p := range ks.parts {
		if p.kind == partConsumer || p.kind == partAPIKey {
			return true
		}
	}
	return false
}

// append writes the key of r to b: bucket, then one "|tag=value" per part.
// A part the request lacks (an anonymous caller, no API key, no header) is
// replaced by the client IP, so leaving a header out never escapes a limit.
func (ks *KeySpec) append(b []byte, bucket string, r *http.Request, x *exchange.Exchange) []byte {
	b = append(b, bucket...)
	for _, p := range ks.parts {
		b = append(b, '|')
		switch p.kind {
		case partConsumer:
			if x != nil && x.Consumer != nil && x.Consumer.ID != "" {
				b = append(b, "c="...)
				if x.Consumer.Issuer != "" {
					b = appendValue(b, x.Consumer.Issuer)
					b = append(b, '/')
				}
				b = appendValue(b, x.Consumer.ID)
				continue
			}
		case partAPIKey:
			// The identity auth recorded is a digest of the key's digest:
			// the key itself never reaches memory or Redis.
			if x != nil && x.Consumer != nil && x.Consumer.KeyID != "" {
				b = append(b, "k="...)
				b = appendValue(b, x.Consumer.KeyID)
				continue
			}
		case partHeader:
			if v := r.Header[p.header]; len(v) > 0 && v[0] != "" {
				b = append(b, "h="...)
				b = appendValue(b, v[0])
				continue
			}
		}
		b = appendClientIP(b, x)
	}
	return b
}

func appendClientIP(b []byte, x *exchange.Exchange) []byte {
	b = append(b, "ip="...)
	if x == nil || !x.ClientIP.IsValid() {
		return append(b, '-')
	}
	return x.ClientIP.Unmap().AppendTo(b)
}

// appendValue writes a request-supplied value, or its digest when it is
// long or contains a character keys use as a separator.
func appendValue(b []byte, v string) []byte {
	if len(v) <= maxKeyValue && !strings.ContainsAny(v, "|/#") {
		return append(b, v...)
	}
	sum := sha256.Sum256([]byte(v))
	b = append(b, '#')
	return hex.AppendEncode(b, sum[:16])
}

// unsafeString views b as a string without copying; the string is valid
// only while b is not modified.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
