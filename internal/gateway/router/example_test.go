package router_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/router"
)

func ExampleCanonicalPath() {
	for _, target := range []string{"/a//b/./c/../d?q=1", "/files/%2e%2e/secret", "/caf%C3%A9"} {
		r := httptest.NewRequest("GET", target, nil)
		p, err := router.CanonicalPath(r)
		fmt.Printf("%q %v\n", p, err)
	}
	// Output:
	// "/a/b/d" <nil>
	// "" invalid request path: encoded dot
	// "/café" <nil>
}

func ExampleRouter_Lookup() {
	rt, err := router.New([]router.Route{
		{Name: "me", Path: "/users/me", Methods: []string{"GET"}},
		{Name: "user", Path: "/users/{id}", Methods: []string{"GET", "PUT"}},
		{Name: "tenant-user", Hosts: []string{"*.example.com"}, Path: "/users/{id}", Methods: []string{"GET"}},
	})
	if err != nil {
		panic(err)
	}
	var ps exchange.Params
	m, res := rt.Lookup("gw.local", "GET", "/users/me", nil, &ps)
	fmt.Println(res, m.Name)
	m, res = rt.Lookup("acme.example.com:443", "GET", "/users/42", nil, &ps)
	id, _ := ps.Get("id")
	fmt.Println(res, m.Name, id)
	m, res = rt.Lookup("acme.example.com", "PUT", "/users/42", nil, &ps)
	fmt.Println(res, m.Name)
	m, res = rt.Lookup("gw.local", "DELETE", "/users/42", nil, &ps)
	fmt.Println(res, m.Allow)
	// Output:
	// found me
	// found tenant-user 42
	// found user
	// method not allowed GET, HEAD, PUT
}

func ExampleRewriter_Apply() {
	rw, err := router.NewRewriter(router.RewriteSpec{Template: "/v2/{rest}"}, "/api/{rest...}")
	if err != nil {
		panic(err)
	}
	var ps exchange.Params
	ps.Add("rest", "/evil.example/x") // decoded values cannot make a "//host" path
	fmt.Println(rw.Apply("/api//evil.example/x", &ps))
	// Output:
	// /v2/evil.example/x
}
