package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
)

// RedactedValue replaces secrets in Redacted copies.
const RedactedValue = "REDACTED"

// Redacted returns a deep copy of c that is safe to print or serve on
// /admin/config: every string value that was read from an environment
// variable, and every secret wherever it came from (the admin token, the
// Redis password, bcrypt hashes, API key digests, HMAC secrets,
// introspection client secrets, registry tokens and read tokens, etcd
// passwords and a remote registry's token), is replaced by "REDACTED". File paths
// written in the file itself, such as TLS key paths, are kept.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	out := clone(reflect.ValueOf(c).Elem()).Addr().Interface().(*Config)
	if c.src != nil && len(c.src.env) > 0 {
		redact(reflect.ValueOf(out).Elem(), "", c.src.env)
	}
	out.redactSecrets()
	return out
}

// redactSecrets replaces the secrets of c, written in the file or not. A
// bcrypt hash or an API key digest is not the password or key itself, but
// it lets whoever reads it test guesses offline, so it is a secret too.
func (c *Config) redactSecrets() {
	hide := func(s *string) {
		if *s != "" {
			*s = RedactedValue
		}
	}
	hide(&c.Admin.Token)
	if rd := c.RateLimits.Redis; rd != nil {
		hide(&rd.Password)
	}
	for _, cs := range [][]Consumer{c.Auth.Consumers, c.Auth.FileConsumers} {
		for i := range cs {
			for j := range cs[i].APIKeys {
				hide(&cs[i].APIKeys[j].SHA256)
				hide(&cs[i].APIKeys[j].Key)
			}
			if b := cs[i].Basic; b != nil {
				hide(&b.Bcrypt)
			}
		}
	}
	for i := range c.Auth.JWTIssuers {
		hide(&c.Auth.JWTIssuers[i].HMACSecret)
	}
	for i := range c.Auth.Introspection {
		hide(&c.Auth.Introspection[i].ClientSecret)
	}
	for i := range c.Registry.Tokens {
		hide(&c.Registry.Tokens[i].Token)
	}
	hide(&c.Registry.ReadToken)
	if e := c.Registry.Etcd; e != nil {
		hide(&e.Password)
	}
	for i := range c.Services {
		d := c.Services[i].Discovery
		if d == nil {
			continue
		}
		if rd := d.Registry; rd != nil {
			hide(&rd.Token)
		}
		if ed := d.Etcd; ed != nil {
			hide(&ed.Password)
		}
	}
}

// clone deep-copies v: pointers, slices and maps are copied, not shared.
// Unexported fields are copied shallowly.
func clone(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			out.Set(clone(v.Elem()).Addr())
		}
	case reflect.Struct:
		out.Set(v)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(clone(v.Field(i)))
			}
		}
	case reflect.Slice:
		if !v.IsNil() {
			out.Set(reflect.MakeSlice(v.Type(), v.Len(), v.Len()))
			for i := range v.Len() {
				out.Index(i).Set(clone(v.Index(i)))
			}
		}
	case reflect.Map:
		if !v.IsNil() {
			out.Set(reflect.MakeMapWithSize(v.Type(), v.Len()))
			for it := v.MapRange(); it.Next(); {
				out.SetMapIndex(it.Key(), clone(it.Value()))
			}
		}
	default:
		out.Set(v)
	}
	return out
}

// redact replaces the strings at the field paths in env, walking v with the
// same paths the decoder recorded.
func redact(v reflect.Value, path string, env map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			redact(v.Elem(), path, env)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				redact(v.Field(i), joinField(path, name), env)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			redact(v.Index(i), joinIndex(path, i), env)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.String {
			return
		}
		for _, k := range v.MapKeys() {
			if env[joinKey(path, k.String())] {
				v.SetMapIndex(k, reflect.ValueOf(RedactedValue).Convert(v.Type().Elem()))
			}
		}
	case reflect.String:
		if env[path] {
			v.SetString(RedactedValue)
		}
	}
}

// Fingerprint returns a stable hash of everything in the service's
// definition: equal definitions have equal fingerprints and a change to any
// field changes it, so on reload a pool whose service fingerprint is
// unchanged is kept as it is. Compare fingerprints of services that both
// had ApplyDefaults applied. The files a TLS setting names are identified
// by path, not content.
func (s Service) Fingerprint() string {
	// encoding/json writes struct fields in a fixed order and map keys
	// sorted, so equal services encode to equal bytes.
	b, err := json.Marshal(s)
	if err != nil {
		// Service holds only strings, numbers, booleans and string maps,
		// which always encode; keep the hash well-defined regardless.
		b = []byte(err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
