package accesslog

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// ErrorClasser is implemented by errors that name their own class in the
// access log's "error" field, e.g. "upstream_refused". A class is a short,
// stable word for dashboards, not a message.
type ErrorClasser interface {
	ErrorClass() string
}

// Error classes for errors that do not implement ErrorClasser.
const (
	ClassClientGone   = "client_gone"
	ClassTimeout      = "timeout"
	ClassBodyTooLarge = "body_too_large"
	ClassOther        = "error"
)

const redacted = "REDACTED"

// format appends the JSON line of one request to ln.b[:0] and returns it.
// Field order is fixed; see the package documentation.
func (l *Logger) format(ln *line, x *exchange.Exchange, method, rawQuery, proto string, now time.Time) []byte {
	b := ln.b[:0]
	b = append(b, `{"time":"`...)
	b = l.appendTime(b, x.Start)
	b = append(b, `","request_id":`...)
	b = appendString(b, x.ID)
	b = append(b, `,"route":`...)
	b = appendString(b, x.Route)
	b = append(b, `,"service":`...)
	b = appendString(b, x.Service)
	b = append(b, `,"endpoint":`...)
	b = appendString(b, x.Endpoint)
	b = append(b, `,"method":`...)
	b = appendString(b, method)
	b = append(b, `,"path":"`...)
	b = appendEscaped(b, x.Path)
	if rawQuery != "" {
		b = append(b, '?')
		b = l.appendQuery(b, ln, rawQuery)
	}
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(x.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, x.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, x.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	var d time.Duration
	if !x.Start.IsZero() {
		d = now.Sub(x.Start)
	}
	b = appendMillis(b, d)
	if x.UpstreamDuration != 0 || !x.UpstreamStart.IsZero() {
		b = append(b, `,"upstream_ms":`...)
		b = appendMillis(b, x.UpstreamDuration)
	}
	b = append(b, `,"client_ip":`...)
	ln.scratch = x.ClientIP.AppendTo(ln.scratch[:0])
	b = appendString(b, unsafeString(ln.scratch))
	b = append(b, `,"proto":`...)
	b = appendString(b, proto)
	if x.GRPCStatus != "" {
		b = append(b, `,"grpc_status":`...)
		b = appendString(b, x.GRPCStatus)
	}
	if x.Err != nil {
		b = append(b, `,"error":`...)
		b = appendString(b, errorClass(x.Err, 0))
	}
	b = append(b, "}\n"...)
	return b
}

// secondText is the text of one second in RFC 3339, UTC, without the
// fraction or the zone: "2006-01-02T15:04:05".
type secondText struct {
	unix int64
	text [19]byte
}

// appendTime appends t in UTC as time.RFC3339Nano does (the fraction without
// trailing zeros, none for a whole second). The date and time of day are
// formatted once per second and cached; requests logged in the same second
// only format the fraction.
func (l *Logger) appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	st := l.second.Load()
	if st == nil || st.unix != sec {
		if t.Year() < 0 || t.Year() > 9999 {
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		st = &secondText{unix: sec}
		t.AppendFormat(st.text[:0], "2006-01-02T15:04:05")
		l.second.Store(st)
	}
	b = append(b, st.text[:]...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}

// appendQuery appends the escaped raw query with the values of redacted
// parameters replaced. Everything else is kept byte for byte. Both "&" and
// ";" separate parameters here: some upstream frameworks still split on ";",
// and redacting too much is the safe side for a log.
func (l *Logger) appendQuery(b []byte, ln *line, q string) []byte {
	if len(l.redact) == 0 {
		return appendEscaped(b, q)
	}
	for {
		end := indexSeparator(q)
		pair := q
		if end >= 0 {
			pair = q[:end]
		}
		key, _, hasValue := strings.Cut(pair, "=")
		if hasValue && l.redacts(ln, key) {
			b = appendEscaped(b, key)
			b = append(b, '=')
			b = append(b, redacted...)
		} else {
			b = appendEscaped(b, pair)
		}
		if end < 0 {
			return b
		}
		b = append(b, q[end])
		q = q[end+1:]
	}
}

// indexSeparator returns the index of the first "&" or ";" in q, or -1.
func indexSeparator(q string) int {
	for i := 0; i < len(q); i++ {
		if q[i] == '&' || q[i] == ';' {
			return i
		}
	}
	return -1
}

// redacts reports whether the percent-decoded form of the raw parameter name
// key is one of the redacted names.
func (l *Logger) redacts(ln *line, key string) bool {
	ln.scratch = unescapeQuery(ln.scratch[:0], key)
	for _, name := range l.redact {
		if bytes.EqualFold(ln.scratch, name) {
			return true
		}
	}
	return false
}

// unescapeQuery appends the form-decoded s to b: "+" is a space and "%XX" a
// byte. A malformed escape is kept literally, as lenient servers do.
func unescapeQuery(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		b = append(b, c)
	}
	return b
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// appendMillis appends d in milliseconds with three decimals, rounded to the
// microsecond, without going through floating point.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := int64(d / 1000)
	if d%1000 >= 500 {
		us++
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// errorClass names the class of err, looking through wrapped errors.
func errorClass(err error, depth int) string {
	for ; err != nil && depth < 32; depth++ {
		switch e := err.(type) {
		case ErrorClasser:
			return e.ErrorClass()
		case *http.MaxBytesError:
			return ClassBodyTooLarge
		case interface{ Timeout() bool }:
			if e.Timeout() {
				return ClassTimeout
			}
		}
		switch err {
		case context.Canceled:
			return ClassClientGone
		case context.DeadlineExceeded:
			return ClassTimeout
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if c := errorClass(e, depth+1); c != ClassOther {
					return c
				}
			}
			return ClassOther
		default:
			return ClassOther
		}
	}
	return ClassOther
}

const hexDigits = "0123456789abcdef"

// plain marks the bytes a JSON string may hold unescaped: printable ASCII
// except '"' and '\\'. Bytes from 0x80 go through UTF-8 validation.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a quoted JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends the JSON string content of s: quotes, backslashes,
// every control character, DEL and U+2028/U+2029 are escaped and invalid
// UTF-8 becomes U+FFFD, so any input stays inside one line of valid JSON.
// Runs of safe bytes are copied at once.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// unsafeString views b as a string without copying. The caller must not
// modify b while the string is in use.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
