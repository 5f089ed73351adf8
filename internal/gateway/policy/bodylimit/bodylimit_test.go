package bodylimit

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/problem"
)

// readAll is the next handler: it reads the body and reports what happened.
func readAll(called *bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*called = true
		b, err := io.ReadAll(r.Body)
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "limit "+strconv.FormatInt(mbe.Limit, 10), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	})
}

// unknownLength hides the body's length from httptest.NewRequest, as a
// chunked request would.
type unknownLength struct{ io.Reader }

func TestBodyLimit(t *testing.T) {
	tests := []struct {
		name       string
		limit      int64
		body       io.Reader
		wantStatus int
		wantCalled bool
		wantBody   string
	}{
		{"under limit", 10, strings.NewReader("12345"), 200, true, "12345"},
		{"at limit", 5, strings.NewReader("12345"), 200, true, "12345"},
		{"declared over limit", 4, strings.NewReader("12345"), 413, false, ""},
		{"chunked under limit", 10, unknownLength{strings.NewReader("12345")}, 200, true, "12345"},
		{"chunked over limit", 4, unknownLength{strings.NewReader("12345")}, 413, true, "limit 4\n"},
		{"no body", 4, nil, 200, true, ""},
		{"zero is no limit", 0, strings.NewReader("12345"), 200, true, "12345"},
		{"negative is no limit", -1, strings.NewReader("12345"), 200, true, "12345"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var called bool
			h := New(readAll(&called), tc.limit)
			r := httptest.NewRequest(http.MethodPost, "/upload", tc.body)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus || called != tc.wantCalled {
				t.Fatalf("status %d, next called %v; want %d, %v", w.Code, called, tc.wantStatus, tc.wantCalled)
			}
			if tc.wantCalled && w.Body.String() != tc.wantBody {
				t.Errorf("body %q, want %q", w.Body.String(), tc.wantBody)
			}
		})
	}
}

func TestDeclaredTooLargeIsProblem(t *testing.T) {
	x := &exchange.Exchange{ID: "req-7"}
	var called bool
	h := New(readAll(&called), 4)
	r := httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader("12345"))
	r = r.WithContext(exchange.NewContext(r.Context(), x))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)

	if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type %q, want %q", ct, problem.ContentType)
	}
	body := w.Body.String()
	for _, want := range []string{`"status":413`, `limit of 4 bytes`, `"request_id":"req-7"`} {
		if !strings.Contains(body, want) {
			t.Errorf("problem %s does not contain %s", body, want)
		}
	}
	if mbe, ok := errors.AsType[*http.MaxBytesError](x.Err); !ok || mbe.Limit != 4 {
		t.Errorf("exchange error = %v, want *http.MaxBytesError with limit 4", x.Err)
	}
	if n, _ := r.Body.Read(make([]byte, 8)); n != 5 {
		t.Errorf("the body was consumed before rejecting (%d bytes left)", n)
	}
}

type nextHandler struct{}

func (*nextHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestNoLimitReturnsNext(t *testing.T) {
	next := &nextHandler{}
	for _, limit := range []int64{0, -1} {
		if h := New(next, limit); h != http.Handler(next) {
			t.Errorf("New(next, %d) wrapped next", limit)
		}
	}
}
