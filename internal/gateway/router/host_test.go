package router

import (
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":                     "",
		"api.example.com":      "api.example.com",
		"API.Example.COM":      "api.example.com",
		"api.example.com:8080": "api.example.com",
		"api.example.com.":     "api.example.com",
		"api.example.com.:443": "api.example.com",
		"[::1]:80":             "[::1]",
		"[::1]":                "[::1]",
		"[FE80::1]:8443":       "[fe80::1]",
		"127.0.0.1:9000":       "127.0.0.1",
		".":                    ".",
	}
	for in, want := range cases {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalHostLowercaseDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if canonicalHost("api.example.com:8443") != "api.example.com" {
			t.Fatal("wrong host")
		}
	})
	if allocs != 0 {
		t.Fatalf("canonicalHost allocates %v times", allocs)
	}
}

func TestParseHost(t *testing.T) {
	t.Parallel()
	good := []struct {
		in, key  string
		wildcard bool
	}{
		{"api.example.com", "api.example.com", false},
		{"API.example.com.", "api.example.com", false},
		{"*.example.com", "example.com", true},
		{"*.Example.com", "example.com", true},
		{"localhost", "localhost", false},
		{"[::1]", "[::1]", false},
		{"under_score.internal", "under_score.internal", false},
	}
	for _, tc := range good {
		key, wc, err := parseHost(tc.in)
		if err != nil || key != tc.key || wc != tc.wildcard {
			t.Errorf("parseHost(%q) = %q, %v, %v; want %q, %v", tc.in, key, wc, err, tc.key, tc.wildcard)
		}
	}
	bad := map[string]string{
		"":                   "empty",
		"*":                  "leave hosts empty",
		"*.":                 "empty",
		"api.*.com":          "wildcard",
		"**.example.com":     "wildcard",
		"api.example.com:80": "port",
		"[::1]:80":           "port",
		"[zz]":               "IPv6",
		"a..b":               "empty label",
		"a b":                "invalid character",
		"*.*.example.com":    "wildcard",
	}
	for in, want := range bad {
		if _, _, err := parseHost(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseHost(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}
