// Package problem writes error responses as RFC 9457 problem details
// (application/problem+json), the one error format the gateway answers with.
package problem

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the media type of a problem details document.
const ContentType = "application/problem+json"

// Details is one problem details document. Type defaults to "about:blank" and
// Title to the status text when empty.
type Details struct {
	Type     string
	Title    string
	Status   int
	Detail   string
	Instance string
	// RequestID, when set, is added as the "request_id" extension member.
	RequestID string
}

// Write sends d with its status. Detail strings are JSON-escaped, so a value
// taken from the request cannot break the document.
func Write(w http.ResponseWriter, d Details) {
	if d.Status == 0 {
		d.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h["Content-Type"] = []string{ContentType}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	body := d.Marshal()
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(d.Status)
	_, _ = w.Write(body)
}

// Error writes a problem with status, its standard title and detail.
func Error(w http.ResponseWriter, status int, detail string) {
	Write(w, Details{Status: status, Detail: detail})
}

// Marshal encodes d as JSON without reflection.
func (d Details) Marshal() []byte {
	typ := d.Type
	if typ == "" {
		typ = "about:blank"
	}
	title := d.Title
	if title == "" {
		title = http.StatusText(d.Status)
	}
	var b strings.Builder
	b.Grow(96 + len(d.Detail) + len(d.Instance))
	b.WriteString(`{"type":`)
	writeString(&b, typ)
	b.WriteString(`,"title":`)
	writeString(&b, title)
	b.WriteString(`,"status":`)
	b.WriteString(strconv.Itoa(d.Status))
	if d.Detail != "" {
		b.WriteString(`,"detail":`)
		writeString(&b, d.Detail)
	}
	if d.Instance != "" {
		b.WriteString(`,"instance":`)
		writeString(&b, d.Instance)
	}
	if d.RequestID != "" {
		b.WriteString(`,"request_id":`)
		writeString(&b, d.RequestID)
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

const hex = "0123456789abcdef"

// writeString writes s as a JSON string, escaping quotes, backslashes, control
// characters, and replacing invalid UTF-8, so any input yields valid JSON.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			default:
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(`\ufffd`)
		} else if r == '\u2028' || r == '\u2029' {
			b.WriteString(`\u202`)
			b.WriteByte(hex[r&0xf])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}
