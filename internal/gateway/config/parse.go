package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, validates and completes the configuration file at path.
//
// A file that cannot be read gives the error from os.ReadFile, wrapped.
// Otherwise the result is that of Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data as a configuration file named file, expands
// environment variables from the process environment, validates the
// result and applies the defaults.
//
// On failure the error is an ErrorList holding every problem found, each
// with file, line, column and field path. Relative file paths in the
// configuration (certificates, keys, CA bundles, the access log) are
// resolved against the directory of file.
func Parse(file string, data []byte) (*Config, error) {
	return ParseEnv(file, data, os.LookupEnv)
}

// ParseEnv is Parse with environment variables looked up by lookup instead
// of the process environment.
func ParseEnv(file string, data []byte, lookup LookupFunc) (*Config, error) {
	root, yerr := parseYAML(file, data)
	if yerr != nil {
		return nil, ErrorList{yerr}
	}
	cfg := &Config{File: file}
	d := newDecoder(file, lookup, len(data))
	if root != nil {
		d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	}
	cfg.src = d.src
	errs := d.errs
	if d.budget > 0 {
		// A document over budget is rejected as a whole; validating the
		// part decoded so far would only add noise.
		normalize(cfg, file)
		errs = append(errs, validate(cfg, d.failed)...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	cfg.ApplyDefaults()
	return cfg, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (?s:(.*))$`)

// parseYAML parses data into a node tree, returning the single document's
// root (nil for an empty file) or a syntax error with its line.
func parseYAML(file string, data []byte) (root *yaml.Node, err *Error) {
	defer func() {
		// The YAML parser is third-party code reading untrusted input; a
		// panic in it must become an error, not take the gateway down.
		if r := recover(); r != nil {
			root, err = nil, &Error{File: file, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if e := dec.Decode(&doc); e != nil {
		if errors.Is(e, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(file, e)
	}
	var extra yaml.Node
	switch e := dec.Decode(&extra); {
	case e == nil:
		return nil, &Error{File: file, Line: extra.Line, Column: extra.Column, Msg: "a configuration file holds one YAML document; remove the \"---\" and what follows"}
	case !errors.Is(e, io.EOF):
		return nil, yamlError(file, e)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func yamlError(file string, e error) *Error {
	msg := e.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// normalize puts values into their canonical form before validation:
// methods in upper case, hosts in lower case without a trailing dot, and
// relative file paths resolved against the configuration file's directory.
func normalize(cfg *Config, file string) {
	dir := ""
	if file != "" {
		dir = filepath.Dir(file)
	}
	resolve := func(p *string) {
		if *p != "" && dir != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range cfg.Listeners {
		if t := cfg.Listeners[i].TLS; t != nil {
			resolve(&t.CertFile)
			resolve(&t.KeyFile)
		}
	}
	for i := range cfg.Services {
		if t := cfg.Services[i].Transport.TLS; t != nil {
			resolve(&t.CAFile)
			resolve(&t.CertFile)
			resolve(&t.KeyFile)
		}
	}
	if o := cfg.AccessLog.Output; o != "stdout" && o != "stderr" {
		resolve(&cfg.AccessLog.Output)
	}
	for i := range cfg.Routes {
		m := &cfg.Routes[i].Match
		for j, meth := range m.Methods {
			m.Methods[j] = strings.ToUpper(meth)
		}
		for j, h := range m.Hosts {
			m.Hosts[j] = strings.TrimSuffix(strings.ToLower(h), ".")
		}
	}
}
