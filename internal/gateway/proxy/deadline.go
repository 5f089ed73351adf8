package proxy

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// HeaderRequestTimeout carries, in whole milliseconds, how long the gateway
// waits for the endpoint's response headers, so the endpoint can stop work
// nobody waits for. gRPC requests also get grpc-timeout.
const HeaderRequestTimeout = "X-Request-Timeout"

// maxGRPCTimeoutDigits is the longest value the gRPC spec allows.
const maxGRPCTimeoutDigits = 8

// setDeadline writes the attempt's deadline into the outbound headers. A
// deadline the client sent is kept when it is sooner.
func (h *handler) setDeadline(a *attempt, in, out *http.Request) {
	if !h.t.PropagateDeadline || a.tryDeadline.IsZero() {
		return
	}
	left := max(time.Until(a.tryDeadline), time.Millisecond)
	ms := left
	if v := in.Header[HeaderRequestTimeout]; len(v) > 0 {
		if d, ok := ParseRequestTimeout(v[0]); ok && d < ms {
			ms = d
		}
	}
	out.Header[HeaderRequestTimeout] = h.millisValue(ceilMillis(ms))
	if !a.grpcRequest() {
		return
	}
	if v := in.Header["Grpc-Timeout"]; len(v) > 0 {
		if d, ok := ParseGRPCTimeout(v[0]); ok && d < left {
			left = d
		}
	}
	out.Header["Grpc-Timeout"] = []string{FormatGRPCTimeout(left)}
}

// millisValue returns the header value of ms. Requests of a route mostly
// carry the same value (its timeout, whole), so the last one is kept and
// shared: outbound header values are never modified in place.
func (h *handler) millisValue(ms int64) []string {
	if v := h.lastMillis.Load(); v != nil && v.ms == ms {
		return v.value
	}
	v := &millis{ms: ms, value: []string{strconv.FormatInt(ms, 10)}}
	h.lastMillis.Store(v)
	return v.value
}

type millis struct {
	ms    int64
	value []string
}

func (a *attempt) grpcRequest() bool { return isGRPC(a.in.Header) }

func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// ParseRequestTimeout parses an X-Request-Timeout value: a positive whole
// number of milliseconds of at most 12 digits.
func ParseRequestTimeout(s string) (time.Duration, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// ParseGRPCTimeout parses a grpc-timeout value: up to 8 digits and a unit,
// H, M, S, m, u or n.
func ParseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > maxGRPCTimeoutDigits+1 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for i := 0; i < len(s)-1; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n == 0 {
		return 0, false
	}
	if n > math.MaxInt64/int64(unit) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(n) * unit, true
}

// FormatGRPCTimeout formats d as a grpc-timeout value in the finest unit
// that fits in 8 digits, rounding up.
func FormatGRPCTimeout(d time.Duration) string {
	const limit = 1e8
	for _, u := range [...]struct {
		d time.Duration
		c string
	}{{time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}, {time.Hour, "H"}} {
		n := d / u.d
		if d%u.d != 0 {
			n++
		}
		if n < limit {
			return strconv.FormatInt(int64(max(n, 1)), 10) + u.c
		}
	}
	return "99999999H"
}
