package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     Details
		title  string
		detail string
	}{
		{name: "defaults", in: Details{Status: 404}, title: "Not Found"},
		{name: "hostile detail", in: Details{Status: 400, Detail: "a\"b\\c\n\x00\xff\u2028"}, title: "Bad Request", detail: "a\"b\\c\n\x00\ufffd\u2028"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Write(rec, tc.in)
			if got := rec.Header().Get("Content-Type"); got != ContentType {
				t.Fatalf("content type %q", got)
			}
			if rec.Code != tc.in.Status {
				t.Fatalf("status %d", rec.Code)
			}
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("invalid json %q: %v", rec.Body.String(), err)
			}
			if doc["title"] != tc.title || doc["type"] != "about:blank" || int(doc["status"].(float64)) != tc.in.Status {
				t.Fatalf("doc %v", doc)
			}
			if tc.detail != "" && doc["detail"] != tc.detail {
				t.Fatalf("detail %q, want %q", doc["detail"], tc.detail)
			}
		})
	}
}

func FuzzMarshal(f *testing.F) {
	f.Add("plain", 400)
	f.Add("\x00\x1f\"\\\xc0\xae", 502)
	f.Fuzz(func(t *testing.T, detail string, status int) {
		b := Details{Status: status, Detail: detail, RequestID: detail}.Marshal()
		if !json.Valid(b) {
			t.Fatalf("invalid json for %q: %s", detail, b)
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	b.ReportAllocs()
	rec := httptest.NewRecorder()
	d := Details{Status: http.StatusBadGateway, Detail: "upstream connection refused", RequestID: "01HZX3"}
	for b.Loop() {
		rec.Body.Reset()
		Write(rec, d)
	}
}
