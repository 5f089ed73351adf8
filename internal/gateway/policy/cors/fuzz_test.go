package cors

import (
	"strings"
	"testing"
)

// FuzzOrigin checks that compiling any pattern and matching any origin
// never panics, and that a wildcard never matches an origin outside its
// domain.
func FuzzOrigin(f *testing.F) {
	f.Add("https://*.example.com", "https://a.example.com")
	f.Add("https://*.example.com:8443", "https://a.example.com:8443")
	f.Add("https://app.example.com", "https://app.example.com")
	f.Add("http://[::1]:3000", "http://[::1]:3000")
	f.Add("https://*.example.com", "https://example.com")
	f.Add("https://*.example.com", "https://a.example.com.evil")
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		p, err := parsePattern(pattern)
		if err != nil {
			return
		}
		if !p.match(strings.ToLower(origin)) || p.exact != "" {
			return
		}
		o := strings.ToLower(origin)
		host := strings.TrimPrefix(o, p.scheme+"://")
		if p.port != "" {
			host = strings.TrimSuffix(host, ":"+p.port)
		}
		if !strings.HasSuffix(host, "."+p.suffix) || strings.ContainsAny(host, "/:@?#") {
			t.Fatalf("pattern %q matched origin %q outside its domain", pattern, origin)
		}
	})
}
