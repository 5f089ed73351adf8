package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// position is a 1-based line and column in the configuration file.
type position struct{ line, col int }

// source is what Parse remembers about where each value came from: its
// position, for errors and warnings, and whether it was read from the
// environment, so Redacted can hide it.
type source struct {
	pos map[string]position
	env map[string]bool
}

// lookup returns the position of path or of its nearest ancestor that has
// one, so a missing field is reported where its parent is.
func (s *source) lookup(path string) position {
	if s == nil {
		return position{}
	}
	for {
		if p, ok := s.pos[path]; ok {
			return p
		}
		if path == "" {
			return position{}
		}
		path = parentPath(path)
	}
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func joinIndex(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func joinKey(parent, key string) string {
	simple := key != ""
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			simple = false
			break
		}
	}
	if simple {
		return joinField(parent, key)
	}
	return parent + "[" + strconv.Quote(key) + "]"
}

// parentPath strips the last element from a field path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			// A quoted key may itself contain '[': find the '[' that opens it.
			if j := strings.LastIndex(path, "[\""); j >= 0 && strings.HasSuffix(path, "\"]") {
				i = j
			}
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// maxMergeDepth bounds chains of YAML merge keys ("<<"), which may refer to
// each other in a cycle.
const maxMergeDepth = 16

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decoder copies a yaml.Node tree into the configuration types. Unlike
// yaml.Node.Decode it expands environment variables in scalars, rejects
// unknown fields, records every value's position and keeps going after a
// problem so all of them are reported at once.
type decoder struct {
	file   string
	lookup LookupFunc
	src    *source
	errs   ErrorList
	// failed holds the paths whose value could not be decoded, so
	// validation does not report them a second time (as missing, say).
	failed map[string]bool
	// budget bounds the nodes visited, which aliases could otherwise
	// multiply without limit.
	budget int
	fields map[reflect.Type]map[string]int
}

func newDecoder(file string, lookup LookupFunc, dataLen int) *decoder {
	return &decoder{
		file:   file,
		lookup: lookup,
		src:    &source{pos: map[string]position{}, env: map[string]bool{}},
		failed: map[string]bool{},
		budget: max(1<<20, 8*dataLen),
		fields: map[reflect.Type]map[string]int{},
	}
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// fail reports a value that could not be decoded.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.errorf(n, path, format, args...)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.budget--; d.budget == 0 {
		d.fail(n, path, "document is too large or expands too many aliases")
	}
	if d.budget <= 0 {
		return
	}
	d.src.pos[path] = position{n.Line, n.Column}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n, path, "unknown alias")
			return
		}
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	if v.Kind() != reflect.Pointer && reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		d.decodeUnmarshaler(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	default:
		d.decodeScalar(n, v, path)
	}
}

// scalar returns the expanded text of a scalar node.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	s, fromEnv, err := expand(n.Value, d.lookup)
	if err != nil {
		d.fail(n, path, "%v", err)
		return "", false
	}
	if fromEnv {
		d.src.env[path] = true
	}
	return s, true
}

func (d *decoder) decodeUnmarshaler(n *yaml.Node, v reflect.Value, path string) {
	want := "a scalar"
	switch v.Addr().Interface().(type) {
	case *Duration:
		want = "a duration such as \"10s\""
	case *ByteSize:
		want = "a size such as \"64KiB\""
	}
	s, ok := d.scalar(n, path, want)
	if !ok {
		return
	}
	expanded := *n
	expanded.Value = s
	if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(&expanded); err != nil {
		d.fail(n, path, "%v", err)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch strings.ToLower(s) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.fail(n, path, "expected true or false, got %q", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(n, path, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	default:
		d.fail(n, path, "unsupported field type %s", v.Type())
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.decode(c, s.Index(i), joinIndex(path, i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for _, kv := range d.pairs(n, path, 0) {
		key := kv[0].Value
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(kv[1], elem, joinKey(path, key))
		m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := d.structFields(v.Type())
	names := slices.Sorted(maps.Keys(fields))
	set := map[string]bool{}
	var typos []string
	for _, kv := range d.pairs(n, path, 0) {
		key := kv[0].Value
		i, ok := fields[key]
		if !ok {
			best := closest(key, names)
			if best != "" {
				typos = append(typos, best)
			}
			d.errorf(kv[0], path, "unknown field %q%s", key, suggest(key, names))
			continue
		}
		set[key] = true
		d.decode(kv[1], v.Field(i), joinField(path, key))
	}
	// A misspelt field is already reported; do not also report the field
	// it was meant to be as missing.
	for _, t := range typos {
		if !set[t] {
			d.failed[joinField(path, t)] = true
		}
	}
}

// pairs returns the key/value pairs of a mapping with YAML merge keys
// ("<<: *base") resolved; keys written in the mapping win over merged ones.
// It reports non-string and duplicate keys.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) [][2]*yaml.Node {
	var out, merges [][2]*yaml.Node
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, [2]*yaml.Node{k, val})
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "mapping keys must be strings, got %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, joinKey(path, k.Value), "duplicate key %q; first set at line %d", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, [2]*yaml.Node{k, val})
	}
	for _, m := range merges {
		for _, src := range mergeSources(m[1]) {
			if src.Kind != yaml.MappingNode || depth >= maxMergeDepth {
				d.errorf(m[0], path, "merge key \"<<\" must refer to a mapping or a list of mappings")
				continue
			}
			for _, kv := range d.pairs(src, path, depth+1) {
				if _, dup := seen[kv[0].Value]; !dup {
					seen[kv[0].Value] = kv[0]
					out = append(out, kv)
				}
			}
		}
	}
	return out
}

func mergeSources(n *yaml.Node) []*yaml.Node {
	deref := func(n *yaml.Node) *yaml.Node {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			return n.Alias
		}
		return n
	}
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		return []*yaml.Node{n}
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out
}

// structFields maps the yaml names of t's fields to their indexes.
func (d *decoder) structFields(t reflect.Type) map[string]int {
	if f, ok := d.fields[t]; ok {
		return f
	}
	f := map[string]int{}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		f[name] = i
	}
	d.fields[t] = f
	return f
}
