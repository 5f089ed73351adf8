package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml is not valid YAML: %v", err)
	}
	return doc
}

// lookup follows a path of keys through nested maps.
func lookup(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("openapi.yaml: %s is not a map", strings.Join(keys[:i], "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("openapi.yaml: %s is missing", strings.Join(keys[:i+1], "."))
		}
	}
	return v
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// TestOpenAPIMatchesRoutes checks that the document lists exactly the
// routes the handler serves, and that each of them is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if v := lookup(t, doc, "openapi"); v != "3.0.3" {
		t.Fatalf("openapi version %v, want 3.0.3", v)
	}
	var documented []string
	for path, item := range lookup(t, doc, "paths").(map[string]any) {
		for key := range item.(map[string]any) {
			if slices.Contains(httpMethods, key) {
				documented = append(documented, strings.ToUpper(key)+" "+path)
			}
		}
	}
	var served []string
	for _, rt := range routeTable() {
		served = append(served, rt.method+" "+BasePath+rt.path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.yaml documents\n  %s\nthe handler serves\n  %s",
			strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}

	// Each route in the table is really served: not 404 or 405.
	m := newMemory(t, MemoryOptions{})
	mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
	h := newHandler(t, m, HandlerOptions{})
	for _, route := range served {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{service}", "orders", "{id}", "o-1").Replace(path)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		r := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(`{"address":"127.0.0.1:80"}`))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r) // the watch returns when ctx ends
		cancel()
		if w.Code == http.StatusNotFound || w.Code == http.StatusMethodNotAllowed || w.Code >= 500 {
			t.Errorf("%s: %d %s", route, w.Code, w.Body)
		}
		if route == "DELETE "+BasePath+"/services/{service}/instances/{id}" {
			mustRegister(t, m, testInstance("orders", "o-1"), time.Minute)
		}
	}
}

// TestOpenAPISchemasMatchTypes checks the schemas' properties against the
// JSON fields of the Go types, and that every $ref resolves.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, typ := range map[string]reflect.Type{
		"Instance":       reflect.TypeFor[Instance](),
		"ServiceSummary": reflect.TypeFor[ServiceSummary](),
		"Event":          reflect.TypeFor[Event](),
	} {
		var props []string
		for p := range lookup(t, doc, "components", "schemas", name, "properties").(map[string]any) {
			props = append(props, p)
		}
		var fields []string
		for f := range typ.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields = append(fields, tag)
		}
		slices.Sort(props)
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has properties %v; the Go type has JSON fields %v", name, props, fields)
		}
	}
	lookup(t, doc, "components", "schemas", "Problem", "properties", "detail")
	if s := lookup(t, doc, "components", "securitySchemes", "bearer", "scheme"); s != "bearer" {
		t.Errorf("security scheme: %v", s)
	}
	lookup(t, doc, "paths", "/registry/v1/watch", "get", "responses", "200", "content", "text/event-stream")

	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if ref, ok := x.(string); ok && k == "$ref" {
					keys, ok := strings.CutPrefix(ref, "#/")
					if !ok {
						t.Errorf("$ref %q is not local", ref)
						continue
					}
					lookup(t, doc, strings.Split(keys, "/")...)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}
