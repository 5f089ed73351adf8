package config

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const schemaPath = "../../../docs/schema/portico.schema.json"

type jsonObject = map[string]any

func loadSchema(t *testing.T) jsonObject {
	t.Helper()
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var schema jsonObject
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("schema is not valid JSON: %v", err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("$schema = %v, want draft 2020-12", schema["$schema"])
	}
	return schema
}

// deref follows a "$ref" to the schema's $defs.
func deref(t *testing.T, root, node jsonObject) jsonObject {
	t.Helper()
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	def, _ := root["$defs"].(jsonObject)[name].(jsonObject)
	if !ok || def == nil {
		t.Fatalf("unresolvable $ref %q", ref)
	}
	return def
}

// schemaField is one yaml field of the configuration types with the
// schema of the property describing it.
type schemaField struct {
	path  string
	field reflect.StructField
	prop  jsonObject
}

// walkSchema pairs every yaml-tagged field reachable from t with its schema
// property, failing the test for fields the schema lacks or properties the
// types lack.
func walkSchema(t *testing.T, root, node jsonObject, typ reflect.Type, path string, visit func(schemaField)) {
	t.Helper()
	node = deref(t, root, node)
	if node["additionalProperties"] != false {
		t.Errorf("%s: schema object lacks \"additionalProperties\": false", orRoot(path))
	}
	props, _ := node["properties"].(jsonObject)
	seen := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		seen[name] = true
		p := joinField(path, name)
		prop, ok := props[name].(jsonObject)
		if !ok {
			t.Errorf("%s: field is missing from %s", p, schemaPath)
			continue
		}
		if d, _ := prop["description"].(string); d == "" {
			t.Errorf("%s: schema property has no description", p)
		}
		visit(schemaField{p, f, prop})
		ft, sub := f.Type, deref(t, root, prop)
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			items, _ := sub["items"].(jsonObject)
			if items == nil {
				t.Errorf("%s: list property has no items", p)
				continue
			}
			sub = deref(t, root, items)
		}
		if ft.Kind() == reflect.Struct {
			walkSchema(t, root, sub, ft, p, visit)
		}
	}
	for name := range props {
		if !seen[name] {
			t.Errorf("%s: schema property %q is not a field of %s", orRoot(path), name, typ)
		}
	}
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func TestSchemaMatchesTypes(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	n := 0
	walkSchema(t, schema, schema, reflect.TypeFor[Config](), "", func(schemaField) { n++ })
	if n < 60 {
		t.Errorf("walked only %d fields", n)
	}
}

// TestSchemaDefaultsMatchCode checks that every default ApplyDefaults fills
// in is stated, with the same value, in the schema.
func TestSchemaDefaultsMatchCode(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	cfg := &Config{
		Listeners: []Listener{{}},
		Services: []Service{{Endpoints: []Endpoint{{}}, Transport: Transport{TLS: &UpstreamTLS{}},
			// Every discovery at once: ApplyDefaults fills each one set.
			Discovery: &Discovery{Registry: &RegistryDiscovery{}, DNS: &DNSDiscovery{}, Etcd: &EtcdDiscovery{}}}},
		Routes:   []Route{{DirectResponse: &DirectResponse{}, Mirror: &Mirror{}, Split: []Split{{}}}},
		Registry: Registry{Etcd: &Etcd{}},
	}
	cfg.ApplyDefaults()
	// Defaults that follow other fields cannot be a single value in the
	// schema; their descriptions state them.
	dependent := map[string]bool{
		"services.discovery.dns.type": true, // SRV or A, by the name
		"routes.mirror.timeout":       true, // the route's timeout
	}
	cfg.Listeners[0].TLS = &ListenerTLS{}
	cfg.Listeners[0].applyDefaults()
	values := map[string]reflect.Value{}
	collectValues(reflect.ValueOf(cfg).Elem(), "", values)

	walkSchema(t, schema, schema, reflect.TypeFor[Config](), "", func(f schemaField) {
		v, ok := values[f.path]
		if !ok || v.IsZero() || isComposite(f.field.Type) || dependent[f.path] {
			return // no default to check, a zero default, or not a leaf
		}
		def, ok := f.prop["default"]
		if !ok {
			t.Errorf("%s: default %v is not in the schema", f.path, v)
			return
		}
		if !defaultEqual(t, def, v) {
			t.Errorf("%s: schema default %v, code default %v", f.path, def, v)
		}
	})
}

// collectValues records the value of every field under the same paths the
// decoder uses, taking the first element of lists.
func collectValues(v reflect.Value, path string, out map[string]reflect.Value) {
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if path != "" {
		out[path] = v
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				collectValues(v.Field(i), joinField(path, name), out)
			}
		}
	case reflect.Slice:
		if v.Len() > 0 && v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Type().Elem().NumField() {
				name, _, _ := strings.Cut(v.Type().Elem().Field(i).Tag.Get("yaml"), ",")
				if name != "" && name != "-" {
					collectValues(v.Index(0).Field(i), joinField(path, name), out)
				}
			}
		}
	}
}

func defaultEqual(t *testing.T, def any, v reflect.Value) bool {
	switch x := v.Interface().(type) {
	case Duration:
		d, err := ParseDuration(def.(string))
		return err == nil && d == x
	case ByteSize:
		s, _ := def.(string)
		b, err := ParseByteSize(s)
		return err == nil && b == x
	}
	got, err := json.Marshal(v.Interface())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(def)
	return string(got) == string(want)
}

// isComposite reports whether t holds other fields (a struct, or a pointer
// to or list of structs), whose defaults are checked field by field.
func isComposite(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

// TestSchemaPatterns checks the schema's duration and size patterns agree
// with the parsers on typical values, so editors flag what Parse rejects.
func TestSchemaPatterns(t *testing.T) {
	t.Parallel()
	defs := loadSchema(t)["$defs"].(jsonObject)
	pattern := func(def string) *regexp.Regexp {
		d := defs[def].(jsonObject)
		if p, ok := d["pattern"].(string); ok {
			return regexp.MustCompile(p)
		}
		for _, alt := range d["anyOf"].([]any) {
			if p, ok := alt.(jsonObject)["pattern"].(string); ok {
				return regexp.MustCompile(p)
			}
		}
		t.Fatalf("$defs.%s has no pattern", def)
		return nil
	}
	dur := pattern("Duration")
	for _, s := range []string{"10s", "1m30s", "250ms", "1.5h", "0", "10", "-1s", "1 s", "s", "10sec", "${TIMEOUT}", "${T:-5s}"} {
		_, err := ParseDuration(s)
		if strings.Contains(s, "${") {
			err = nil
		}
		if dur.MatchString(s) != (err == nil) {
			t.Errorf("duration %q: schema pattern match = %v, ParseDuration error = %v", s, dur.MatchString(s), err)
		}
	}
	size := pattern("ByteSize")
	for _, s := range []string{"512", "64KiB", "10 MiB", "1GB", "5kB", "7B", "-1", "1.5MiB", "10XB", "MiB", "${SIZE}"} {
		_, err := ParseByteSize(s)
		if s == "-1" {
			err = os.ErrInvalid // only ByteSizeOrUnlimited accepts -1
		}
		if strings.Contains(s, "${") {
			err = nil
		}
		if size.MatchString(s) != (err == nil) {
			t.Errorf("size %q: schema pattern match = %v, ParseByteSize error = %v", s, size.MatchString(s), err)
		}
	}
	if !pattern("ByteSizeOrUnlimited").MatchString("-1") {
		t.Error("ByteSizeOrUnlimited does not accept -1")
	}
}
