package policy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/internal/gateway/policy/headers"
)

// tracer is a policy that records its name when a request passes through.
func tracer(name string, trace *[]string) Factory {
	return Factory{Name: name, Build: func(Env, *config.Route) (Middleware, error) {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				*trace = append(*trace, name)
				next.ServeHTTP(w, r)
			})
		}, nil
	}}
}

func unused(name string) Factory {
	return Factory{Name: name, Build: func(Env, *config.Route) (Middleware, error) { return nil, nil }}
}

func TestChainOrder(t *testing.T) {
	var trace []string
	table := []Factory{tracer("outer", &trace), unused("skipped"), tracer("middle", &trace), tracer("inner", &trace)}
	h, err := Chain(table, Env{}, &config.Route{Name: "r"}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		trace = append(trace, "next")
	}))
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if want := []string{"outer", "middle", "inner", "next"}; !slices.Equal(trace, want) {
		t.Errorf("order %v, want %v", trace, want)
	}
}

type nopHandler struct{}

func (*nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestChainWithoutPoliciesIsNext(t *testing.T) {
	next := &nopHandler{}
	route := &config.Route{Name: "plain", MaxBodyBytes: -1, Headers: &config.HeaderRules{}}
	h, err := Chain(Builtin(), Env{}, route, next)
	if err != nil {
		t.Fatal(err)
	}
	if h != http.Handler(next) {
		t.Error("a route without policies got a wrapped handler")
	}
}

func TestChainErrors(t *testing.T) {
	boom := errors.New("boom")
	failing := Factory{Name: "failing", Build: func(Env, *config.Route) (Middleware, error) { return nil, boom }}
	nilHandler := Factory{Name: "nil_handler", Build: func(Env, *config.Route) (Middleware, error) {
		return func(http.Handler) http.Handler { return nil }, nil
	}}
	route := &config.Route{Name: "api"}
	tests := []struct {
		name  string
		table []Factory
		route *config.Route
		next  http.Handler
		want  string
		is    error
	}{
		{"nil route", Builtin(), nil, &nopHandler{}, "route is nil", nil},
		{"nil next", Builtin(), route, nil, `route "api": next handler is nil`, nil},
		{"build error", []Factory{unused("a"), failing}, route, &nopHandler{}, `route "api": policy failing: boom`, boom},
		{"no build", []Factory{{Name: "x"}}, route, &nopHandler{}, `entry 0 ("x")`, nil},
		{"duplicate", []Factory{unused("a"), unused("a")}, route, &nopHandler{}, `names "a" twice`, nil},
		{"nil handler", []Factory{nilHandler}, route, &nopHandler{}, `nil handler`, nil},
		{
			"built-in header rule",
			Builtin(),
			&config.Route{Name: "users", Headers: &config.HeaderRules{Request: config.HeaderOps{Set: map[string]string{"x-forwarded-for": "1.1.1.1"}}}},
			&nopHandler{},
			`route "users": policy request_headers: headers.request.set "x-forwarded-for": header is written by the gateway`,
			headers.ErrGatewayOwned,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := Chain(tc.table, Env{}, tc.route, tc.next)
			if err == nil || h != nil {
				t.Fatalf("Chain() = %v, %v; want an error", h, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestBuiltinIsFresh(t *testing.T) {
	a := Builtin()
	names := func(fs []Factory) []string {
		var n []string
		for _, f := range fs {
			n = append(n, f.Name)
		}
		return n
	}
	want := []string{"response_headers", "cors", "ip_filter", "rate_limit_pre_auth", "auth", "authorize", "rate_limit", "body_limit", "request_headers"}
	if !slices.Equal(names(a), want) {
		t.Fatalf("Builtin() = %v, want %v", names(a), want)
	}
	a[0] = unused("replaced")
	if got := names(Builtin()); !slices.Equal(got, want) {
		t.Errorf("changing one table changed the next: %v", got)
	}
}

func routeWithPolicies() *config.Route {
	return &config.Route{
		Name:         "upload",
		MaxBodyBytes: 8,
		Headers: &config.HeaderRules{
			Request:  config.HeaderOps{Remove: []string{"Cookie"}, Set: map[string]string{"X-Api-Version": "2"}},
			Response: config.HeaderOps{Remove: []string{"Server"}, Set: map[string]string{"Cache-Control": "no-store"}},
		},
	}
}

func TestBuiltinChain(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Server", "upstream")
		fmt.Fprintf(w, "cookie=%q version=%q body=%q", r.Header.Get("Cookie"), r.Header.Get("X-Api-Version"), b)
	})
	h, err := Chain(Builtin(), Env{}, routeWithPolicies(), upstream)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"forwarded", "small", 200, `cookie="" version="2" body="small"`},
		{"rejected by body_limit", "far too large", 413, `"status":413`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader(tc.body))
			r.Header.Set("Cookie", "session=secret")
			r.Header.Set("X-Api-Version", "1")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantStatus || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Errorf("got %d %s, want %d containing %s", w.Code, w.Body, tc.wantStatus, tc.wantBody)
			}
			// Response rules are outermost: they apply to policy answers too.
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := w.Header().Get("Server"); got != "" {
				t.Errorf("Server = %q, want removed", got)
			}
		})
	}
}

func ExampleChain() {
	route := &config.Route{
		Name:         "users",
		MaxBodyBytes: 1 << 20,
		Headers: &config.HeaderRules{
			Response: config.HeaderOps{Set: map[string]string{"x-frame-options": "DENY"}},
		},
	}
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	h, err := Chain(Builtin(), Env{}, route, upstream)
	if err != nil {
		fmt.Println(err)
		return
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/users", nil))
	fmt.Println(w.Code, w.Header().Get("X-Frame-Options"), w.Body)

	route.Headers.Request.Set = map[string]string{"Connection": "close"}
	_, err = Chain(Builtin(), Env{}, route, upstream)
	fmt.Println(err)
	// Output:
	// 200 DENY hello
	// route "users": policy request_headers: headers.request.set "Connection": header is managed by the HTTP layer and cannot be set or added
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the chain rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkChain(b *testing.B) {
	ok := []byte("ok")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(ok)
	})
	h, err := Chain(Builtin(), Env{}, routeWithPolicies(), next)
	if err != nil {
		b.Fatal(err)
	}
	body := &resettableBody{}
	r := httptest.NewRequest(http.MethodPost, "/upload", body)
	r.ContentLength = 5
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		r.Body = body
		r.Header["Cookie"] = cookie
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

var cookie = []string{"session=1"}

type resettableBody struct{}

func (*resettableBody) Read([]byte) (int, error) { return 0, io.EOF }
func (*resettableBody) Close() error             { return nil }
