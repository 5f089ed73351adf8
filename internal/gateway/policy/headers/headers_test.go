package headers

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/config"
)

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name     string
		request  bool
		idHeader string
		ops      config.HeaderOps
		want     error
		wantMsg  string
	}{
		{"hop-by-hop set", true, "", config.HeaderOps{Set: map[string]string{"connection": "close"}}, ErrReserved, `headers.request.set "connection"`},
		{"hop-by-hop add", false, "", config.HeaderOps{Add: map[string]string{"Transfer-Encoding": "chunked"}}, ErrReserved, `headers.response.add "Transfer-Encoding"`},
		{"te", true, "", config.HeaderOps{Set: map[string]string{"TE": "trailers"}}, ErrReserved, `"TE"`},
		{"upgrade", false, "", config.HeaderOps{Set: map[string]string{"Upgrade": "h2c"}}, ErrReserved, `"Upgrade"`},
		{"host", true, "", config.HeaderOps{Set: map[string]string{"host": "evil"}}, ErrReserved, `"host"`},
		{"content-length", false, "", config.HeaderOps{Add: map[string]string{"Content-Length": "1"}}, ErrReserved, `"Content-Length"`},
		{"keep-alive", true, "", config.HeaderOps{Set: map[string]string{"Keep-Alive": "1"}}, ErrReserved, `"Keep-Alive"`},
		{"proxy-connection", true, "", config.HeaderOps{Set: map[string]string{"Proxy-Connection": "1"}}, ErrReserved, ``},
		{"trailer", false, "", config.HeaderOps{Set: map[string]string{"Trailer": "X"}}, ErrReserved, ``},
		{"CR in value", true, "", config.HeaderOps{Set: map[string]string{"X-A": "a\r\nX-Evil: 1"}}, ErrInvalidValue, `"X-A"`},
		{"LF in value", false, "", config.HeaderOps{Add: map[string]string{"X-A": "a\nb"}}, ErrInvalidValue, ``},
		{"NUL in value", true, "", config.HeaderOps{Set: map[string]string{"X-A": "a\x00b"}}, ErrInvalidValue, ``},
		{"DEL in value", true, "", config.HeaderOps{Set: map[string]string{"X-A": "a\x7fb"}}, ErrInvalidValue, ``},
		{"space in name", true, "", config.HeaderOps{Set: map[string]string{"X A": "1"}}, ErrInvalidName, ``},
		{"colon in name", true, "", config.HeaderOps{Remove: []string{"X-A:"}}, ErrInvalidName, `headers.request.remove "X-A:"`},
		{"empty name", false, "", config.HeaderOps{Remove: []string{""}}, ErrInvalidName, ``},
		{"non-ASCII name", false, "", config.HeaderOps{Set: map[string]string{"X-Ü": "1"}}, ErrInvalidName, ``},
		{"duplicate set", true, "", config.HeaderOps{Set: map[string]string{"x-a": "1", "X-A": "2"}}, ErrDuplicate, ``},
		{"duplicate remove", false, "", config.HeaderOps{Remove: []string{"X-A", "x-a"}}, ErrDuplicate, ``},
		{"x-forwarded-for", true, "", config.HeaderOps{Set: map[string]string{"x-forwarded-for": "1.2.3.4"}}, ErrGatewayOwned, `"x-forwarded-for"`},
		{"x-forwarded-proto", true, "", config.HeaderOps{Add: map[string]string{"X-Forwarded-Proto": "https"}}, ErrGatewayOwned, ``},
		{"x-forwarded-host", true, "", config.HeaderOps{Remove: []string{"X-Forwarded-Host"}}, ErrGatewayOwned, ``},
		{"forwarded", true, "", config.HeaderOps{Set: map[string]string{"Forwarded": "for=1.2.3.4"}}, ErrGatewayOwned, ``},
		{"x-request-id", true, "", config.HeaderOps{Set: map[string]string{"X-Request-ID": "mine"}}, ErrGatewayOwned, ``},
		{"x-request-id with custom id header", true, "X-Trace", config.HeaderOps{Remove: []string{"x-request-id"}}, ErrGatewayOwned, ``},
		{"configured id header", true, "x-correlation-id", config.HeaderOps{Set: map[string]string{"X-Correlation-Id": "mine"}}, ErrGatewayOwned, ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.request {
				_, err = CompileRequest(tc.ops, tc.idHeader)
			} else {
				_, err = CompileResponse(tc.ops)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not name %s", err, tc.wantMsg)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	// Removing a reserved header is allowed, and forwarding headers are
	// ordinary headers on the response side.
	if _, err := CompileRequest(config.HeaderOps{
		Remove: []string{"Connection", "X-Debug"},
		Set:    map[string]string{"X-Forwarded-Prefix": "/api", "X-Empty": ""},
		Add:    map[string]string{"Via": "portico", "X-Tab": "a\tb"},
	}, ""); err != nil {
		t.Errorf("request: %v", err)
	}
	if _, err := CompileResponse(config.HeaderOps{
		Remove: []string{"Server", "Content-Length", "X-Request-Id"},
		Set:    map[string]string{"X-Forwarded-For": "x", "Strict-Transport-Security": "max-age=63072000"},
	}); err != nil {
		t.Errorf("response: %v", err)
	}
}

func TestApply(t *testing.T) {
	ops, err := CompileResponse(config.HeaderOps{
		Remove: []string{"server", "x-powered-by"},
		Set:    map[string]string{"cache-control": "no-store", "x-frame-options": "DENY"},
		Add:    map[string]string{"vary": "Origin", "x-new": "1", "cache-control": "private"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{
		"Server":        {"upstream/1.0"},
		"X-Powered-By":  {"php"},
		"Cache-Control": {"max-age=60"},
		"Vary":          {"Accept-Encoding"},
		"Content-Type":  {"text/plain"},
	}
	ops.Apply(h)
	want := http.Header{
		"Cache-Control":   {"no-store", "private"},
		"X-Frame-Options": {"DENY"},
		"Vary":            {"Accept-Encoding", "Origin"},
		"X-New":           {"1"},
		"Content-Type":    {"text/plain"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("headers:\n got %v\nwant %v", h, want)
	}

	// Shared value slices must not be changed by a later request's Add.
	h2 := http.Header{}
	ops.Apply(h2)
	h2.Add("X-Frame-Options", "SAMEORIGIN")
	h3 := http.Header{}
	ops.Apply(h3)
	if got := h3["X-Frame-Options"]; len(got) != 1 || got[0] != "DENY" {
		t.Errorf("a shared value was modified through another request: %v", got)
	}
}

func TestEmptyReturnsNext(t *testing.T) {
	next := &nopHandler{}
	empty, err := CompileRequest(config.HeaderOps{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !empty.Empty() {
		t.Fatal("no rules but not Empty")
	}
	if NewRequest(next, empty) != http.Handler(next) || NewResponse(next, empty) != http.Handler(next) {
		t.Error("empty ops wrapped next")
	}
	if NewRequest(next, nil) != http.Handler(next) {
		t.Error("nil ops wrapped next")
	}
}

type nopHandler struct{}

func (*nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestRequestHandler(t *testing.T) {
	ops, err := CompileRequest(config.HeaderOps{
		Remove: []string{"Cookie", "x-internal"},
		Set:    map[string]string{"x-api-version": "2"},
		Add:    map[string]string{"x-tag": "gateway"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen http.Header
	h := NewRequest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	}), ops)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "session=1")
	r.Header.Set("X-Internal", "yes")
	r.Header.Set("X-Api-Version", "1")
	r.Header.Set("X-Tag", "client")
	h.ServeHTTP(httptest.NewRecorder(), r)
	want := http.Header{"X-Api-Version": {"2"}, "X-Tag": {"client", "gateway"}}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("upstream headers:\n got %v\nwant %v", seen, want)
	}
}

func TestResponseHandler(t *testing.T) {
	ops, err := CompileResponse(config.HeaderOps{
		Remove: []string{"Server"},
		Set:    map[string]string{"X-Frame-Options": "DENY"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		next http.HandlerFunc
	}{
		{"WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "up")
			w.WriteHeader(http.StatusCreated)
		}},
		{"Write without WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "up")
			_, _ = w.Write([]byte("hi"))
		}},
		{"Flush without WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "up")
			w.(http.Flusher).Flush()
		}},
		{"header changed by next after 1xx", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Server", "up")
			w.Header().Set("X-Frame-Options", "SAMEORIGIN")
			w.WriteHeader(http.StatusOK)
		}},
		{"no write at all", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "up")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(NewResponse(tc.next, ops))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options = %q, want DENY", got)
			}
			if got := resp.Header.Get("Server"); got != "" {
				t.Errorf("Server = %q, want it removed", got)
			}
		})
	}
}
