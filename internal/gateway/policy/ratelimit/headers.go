package ratelimit

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"
)

// headerValues is one response's RateLimit-* header values and the numbers
// they show. The three strings point into text, so a set costs one
// allocation. Header maps of many responses share one set: net/http and
// the gateway replace a header's value slice or append past its capacity
// (each slice has capacity 1), never write into it, and nothing here
// writes to a set once it is built.
type headerValues struct {
	limit, remaining, reset int64
	vals                    [3]string
	text                    [3 * 20]byte // 19 digits of the largest int64, three times, and spare
}

func newHeaderValues(limit, remaining, reset int64) *headerValues {
	hv := &headerValues{limit: limit, remaining: remaining, reset: reset}
	var ends [3]int
	b := hv.text[:0]
	for i, n := range [3]int64{limit, remaining, reset} {
		b = strconv.AppendInt(b, n, 10)
		ends[i] = len(b)
	}
	start := 0
	for i, end := range ends {
		hv.vals[i] = unsafe.String(&hv.text[start], end-start)
		start = end
	}
	return hv
}

// headerCache remembers the last set of header values a route's policy
// wrote. A client well inside its limit sees the same values on request
// after request (a full bucket, reset within the second), so those
// requests share one set instead of formatting and allocating their own.
type headerCache struct {
	last atomic.Pointer[headerValues]
}

// set writes the RateLimit-* headers of res to h, replacing any values
// there.
func (c *headerCache) set(h http.Header, res Result) {
	remaining, reset := max(0, res.Remaining), ceilSeconds(res.ResetAfter)
	hv := c.last.Load()
	if hv == nil || hv.limit != res.Limit || hv.remaining != remaining || hv.reset != reset {
		hv = newHeaderValues(res.Limit, remaining, reset)
		c.last.Store(hv)
	}
	h[HeaderLimit] = hv.vals[0:1:1]
	h[HeaderRemaining] = hv.vals[1:2:2]
	h[HeaderReset] = hv.vals[2:3:3]
}

// ceilSeconds is d in whole seconds, rounded up (without overflowing near
// the largest Duration); 0 when d is not positive.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
