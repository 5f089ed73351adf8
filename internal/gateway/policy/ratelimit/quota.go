package ratelimit

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Period is the calendar period of a quota, in UTC.
type Period int

// Quota periods.
const (
	Day Period = iota + 1
	Month
)

// ParsePeriod parses "day" or "month".
func ParsePeriod(s string) (Period, error) {
	switch s {
	case "day":
		return Day, nil
	case "month":
		return Month, nil
	}
	return 0, fmt.Errorf("invalid quota period %q: use day or month", s)
}

// window is one calendar period: its id (part of the counter's key) and its
// end.
type window struct {
	id         string
	start, end time.Time
}

// windowAt returns the period of p that contains t.
func windowAt(p Period, t time.Time) window {
	t = t.UTC()
	y, m, d := t.Date()
	if p == Month {
		start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return window{id: fmt.Sprintf("%04d-%02d", y, int(m)), start: start, end: start.AddDate(0, 1, 0)}
	}
	start := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return window{id: fmt.Sprintf("%04d-%02d-%02d", y, int(m), d), start: start, end: start.AddDate(0, 0, 1)}
}

// windowClock caches the current window of a period so that requests do
// not format dates.
type windowClock struct {
	period Period
	cur    atomic.Pointer[window]
}

func (c *windowClock) at(now time.Time) window {
	if w := c.cur.Load(); w != nil && now.Before(w.end) && !now.Before(w.start) {
		return *w
	}
	w := windowAt(c.period, now)
	c.cur.Store(&w)
	return w
}
