package config

import (
	"fmt"
	"os"
	"testing"
)

func TestCanPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, prefix string
		want            bool
	}{
		{"/api/{rest...}", "/api", true},
		{"/api/{rest...}", "/api/", true},
		{"/api/{rest...}", "/api/v1/x", true},
		{"/api/{rest...}", "/ap", true},
		{"/api/{rest...}", "/v1", false},
		{"/users/{id}/orders", "/users/7/ord", true},
		{"/users/{id}/orders", "/users/7/items", false},
		{"/users/{id}", "/users/7/x", false},
		{"/api", "/api/", false},
		{"/", "/", true},
		{"/a", "a", false},
	}
	for _, tc := range tests {
		segs, err := parsePattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := canPrefix(segs, tc.prefix); got != tc.want {
			t.Errorf("canPrefix(%q, %q) = %v, want %v", tc.pattern, tc.prefix, got, tc.want)
		}
	}
}

func TestPatternShape(t *testing.T) {
	t.Parallel()
	a, _ := parsePattern("/u/{id}/{rest...}")
	b, _ := parsePattern("/u/{x}/{tail...}")
	if shape(a) != shape(b) || shape(a) != "/u/{}/{...}" {
		t.Errorf("shape = %q and %q", shape(a), shape(b))
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	env := envMap(map[string]string{"PORTICO_ADMIN_TOKEN": "t"})
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseEnv("testdata/full.yaml", data, env); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleParse() {
	_, err := Parse("gateway.yaml", []byte(`
services:
  - name: users
    endpoints:
      - url: http://10.0.0.5
routes:
  - name: users
    match:
      path: /users/{id}
    servce: users
`))
	fmt.Println(err)
	// Output:
	// gateway.yaml:5:14: services[0].endpoints[0].url: invalid URL "http://10.0.0.5": missing port; write http://10.0.0.5:PORT
	// gateway.yaml:10:5: routes[0]: unknown field "servce"; did you mean "service"?
}

func ExampleWarnings() {
	cfg, err := Parse("gateway.yaml", []byte(`
services:
  - name: users
    endpoints: [{url: "http://10.0.0.5:8080"}]
  - name: legacy
    endpoints: [{url: "http://10.0.0.6:8080"}]
routes:
  - {name: user, match: {path: "/users/{id}", methods: [GET, PUT]}, service: users}
  - {name: user-get, match: {path: "/users/{uid}", methods: [GET]}, service: users}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range Warnings(cfg) {
		fmt.Println(w)
	}
	// Output:
	// gateway.yaml:5: warning: services[1]: service "legacy" is not used by any route
	// gateway.yaml:9: warning: routes[1]: route "user-get" never matches: route "user" (line 8) matches every request it does and comes first
}
