package router

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target, want string
	}{
		{"root", "/", "/"},
		{"plain", "/users/42", "/users/42"},
		{"query kept apart", "/a/b?x=%2F&y=../..", "/a/b"},
		{"empty query", "/a?", "/a"},
		{"trailing slash kept", "/a/b/", "/a/b/"},
		{"dot file is not a dot segment", "/.well-known/acme", "/.well-known/acme"},
		{"dots inside a segment", "/a/..b/c..", "/a/..b/c.."},
		{"dot segments", "/a/./b/../c", "/a/c"},
		{"final dot leaves slash", "/a/b/.", "/a/b/"},
		{"final dotdot leaves slash", "/a/b/..", "/a/"},
		{"dotdot above root", "/..", "/"},
		{"dotdot far above root", "/../../etc/passwd", "/etc/passwd"},
		{"dotdot to root", "/a/..", "/"},
		{"duplicate slashes", "//a///b", "/a/b"},
		{"double slash admin", "//admin", "/admin"},
		{"only slashes", "////", "/"},
		{"slashes then dots", "/a//../b", "/b"},
		{"percent decoded", "/%41", "/A"},
		{"mixed-case hex", "/%c3%A9t%C3%a9", "/été"},
		{"encoded hash is data", "/a%23b", "/a#b"},
		{"encoded question mark is data", "/a%3Fb", "/a?b"},
		{"encoded percent", "/100%25", "/100%"},
		{"encoded space", "/a%20b", "/a b"},
		{"raw UTF-8", "/café", "/café"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := canonicalTarget(tc.target)
			if err != nil || got != tc.want {
				t.Fatalf("canonicalTarget(%q) = %q, %v; want %q", tc.target, got, err, tc.want)
			}
		})
	}
}

func TestCanonicalPathRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target string
		want         error
	}{
		{"empty", "", errEmptyTarget},
		{"asterisk", "*", errAsterisk},
		{"absolute-form", "http://evil.example/admin", errAbsoluteForm},
		{"absolute-form https", "https://api.example.com/", errAbsoluteForm},
		{"authority-form", "api.example.com:443", errNotOrigin},
		{"relative", "a/b", errNotOrigin},
		{"fragment", "/a#frag", errFragment},
		{"fragment in query", "/a?x=1#frag", errFragment},
		{"encoded dotdot lower", "/%2e%2e/admin", errEncodedDot},
		{"encoded dotdot upper", "/%2E./admin", errEncodedDot},
		{"half encoded dotdot", "/.%2e/admin", errEncodedDot},
		{"encoded slash upper", "/a%2Fb", errEncodedSlash},
		{"encoded slash lower", "/a%2fb", errEncodedSlash},
		{"encoded backslash", "/a%5Cb", errEncodedBackslash},
		{"backslash", "/a\\..\\admin", errBackslash},
		{"semicolon", "/a;b", errSemicolon},
		{"jsessionid", "/admin;jsessionid=x", errSemicolon},
		{"encoded semicolon", "/admin%3Bx", errEncodedSemicolon},
		{"overlong dot 2 bytes", "/%C0%AE%C0%AE/admin", errInvalidUTF8},
		{"overlong dot 3 bytes", "/%E0%80%AE", errInvalidUTF8},
		{"encoded surrogate", "/%ED%A0%80", errInvalidUTF8},
		{"raw invalid UTF-8", "/a\xff", errInvalidUTF8},
		{"raw truncated UTF-8 fast path", "/caf\xc3", errInvalidUTF8},
		{"encoded NUL", "/a%00", errNUL},
		{"raw NUL", "/a\x00b", errNUL},
		{"raw CR", "/a\rb", errControl},
		{"raw LF", "/a\nb", errControl},
		{"encoded CR LF", "/a%0D%0ASet-Cookie:x", errControl},
		{"encoded DEL", "/a%7F", errControl},
		{"raw tab", "/a\tb", errControl},
		{"percent at end", "/a%", errBadEscape},
		{"percent one digit", "/a%4", errBadEscape},
		{"non-hex escape", "/%G1", errBadEscape},
		{"non-hex second digit", "/%1G", errBadEscape},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := canonicalTarget(tc.target)
			if err != tc.want {
				t.Fatalf("canonicalTarget(%q) = %q, %v; want error %v", tc.target, got, err, tc.want)
			}
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("error %v does not wrap ErrBadPath", err)
			}
			if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) {
				t.Fatalf("error text %q holds raw bytes", err)
			}
		})
	}
}

func TestCanonicalPathReasonText(t *testing.T) {
	t.Parallel()
	_, err := canonicalTarget("/a%2Fb")
	if got, want := err.Error(), "invalid request path: encoded slash"; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
}

// The gateway sets URL.Path to the canonical path and RawPath to "", so Go
// re-encodes whatever needs it. A decoded '#' or '?' must not end the path
// upstream.
func TestCanonicalPathUpstreamEncoding(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"/a%23b":     "/a%23b",
		"/a%3Fb":     "/a%3Fb",
		"/a%20b":     "/a%20b",
		"/100%25":    "/100%25",
		"/caf%C3%A9": "/caf%C3%A9",
	}
	for target, want := range cases {
		p, err := canonicalTarget(target)
		if err != nil {
			t.Fatalf("canonicalTarget(%q): %v", target, err)
		}
		if got := (&url.URL{Path: p}).EscapedPath(); got != want {
			t.Errorf("upstream path for %q = %q, want %q", target, got, want)
		}
	}
}

func TestCanonicalPathFromRequest(t *testing.T) {
	t.Parallel()
	// net/http decodes r.URL.Path on its own terms; the raw target decides.
	r := httptest.NewRequest(http.MethodGet, "/a/%2e%2e/admin", nil)
	if _, err := CanonicalPath(r); !errors.Is(err, ErrBadPath) {
		t.Fatalf("CanonicalPath(%q) error = %v, want ErrBadPath", r.RequestURI, err)
	}
	r = httptest.NewRequest(http.MethodGet, "/a//b/./c?q=1", nil)
	if got, err := CanonicalPath(r); err != nil || got != "/a/b/c" {
		t.Fatalf("CanonicalPath = %q, %v; want /a/b/c", got, err)
	}
	// A request built by a client has no RequestURI.
	r, _ = http.NewRequest(http.MethodGet, "http://example.com/x/../y?z", nil)
	if got, err := CanonicalPath(r); err != nil || got != "/y" {
		t.Fatalf("CanonicalPath(client request) = %q, %v; want /y", got, err)
	}
	r = &http.Request{Method: http.MethodOptions, RequestURI: "*"}
	if _, err := CanonicalPath(r); err != errAsterisk {
		t.Fatalf("CanonicalPath(OPTIONS *) error = %v, want %v", err, errAsterisk)
	}
	if _, err := CanonicalPath(&http.Request{}); err != errMissingRequestURI {
		t.Fatalf("CanonicalPath(empty request) error = %v", err)
	}
}

// Regression: an absolute-form target makes net/http ignore the Host header,
// so "GET http://internal/admin" with "Host: public" must not be routed.
func TestCanonicalPathAbsoluteFormOverServer(t *testing.T) {
	t.Parallel()
	errc := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := CanonicalPath(r)
		errc <- err
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET http://internal.example/admin HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if gotErr := <-errc; gotErr != errAbsoluteForm {
		t.Fatalf("CanonicalPath error = %v, want %v", gotErr, errAbsoluteForm)
	}
}

func TestCanonicalPathFastPathDoesNotAllocate(t *testing.T) {
	target := "/api/v1/users/42/orders?limit=10"
	allocs := testing.AllocsPerRun(100, func() {
		p, err := canonicalTarget(target)
		if err != nil || p != "/api/v1/users/42/orders" {
			t.Fatalf("canonicalTarget = %q, %v", p, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("fast path allocates %v times", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() { _, _ = canonicalTarget("/a/%2F") })
	if allocs != 0 {
		t.Fatalf("rejecting allocates %v times", allocs)
	}
}

func TestCleanInPlace(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":          "/",
		"/":         "/",
		"//":        "/",
		"/a/b/c":    "/a/b/c",
		"/a/b/c/":   "/a/b/c/",
		"/a//b//":   "/a/b/",
		"/./":       "/",
		"/a/./":     "/a/",
		"/a/b/../":  "/a/",
		"/a/b/../c": "/a/c",
		"/../a/..":  "/",
		"/.../a":    "/.../a",
		"/a/...":    "/a/...",
	}
	for in, want := range cases {
		if got := string(cleanInPlace([]byte(in))); got != want {
			t.Errorf("cleanInPlace(%q) = %q, want %q", in, got, want)
		}
		if got := cleanString(in); got != want {
			t.Errorf("cleanString(%q) = %q, want %q", in, got, want)
		}
	}
	if got := cleanString("a/b"); got != "/a/b" {
		t.Errorf("cleanString(a/b) = %q", got)
	}
}
