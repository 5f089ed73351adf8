package config

import (
	"fmt"
	"strings"
)

// LookupFunc looks up an environment variable; os.LookupEnv is one.
type LookupFunc func(name string) (string, bool)

// expand replaces ${VAR} and ${VAR:-default} in s from lookup and turns $$
// into $. Any other $ is kept as is, so regular expressions such as "^a$"
// need no escaping. fromEnv reports whether any part of the result came
// from a variable that is set, which marks the value as possibly secret.
//
// Expansion works on one scalar value at a time, after YAML parsing, so the
// text of a variable can never add structure to the document.
func expand(s string, lookup LookupFunc) (out string, fromEnv bool, err error) {
	if !strings.Contains(s, "$") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", false, fmt.Errorf("unterminated %q in %q; write $$ for a literal $", s[i:], s)
			}
			ref := s[i+2 : i+2+end]
			val, set, err := resolve(ref, lookup)
			if err != nil {
				return "", false, err
			}
			fromEnv = fromEnv || set
			b.WriteString(val)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), fromEnv, nil
}

// resolve evaluates the inside of one ${...} reference.
func resolve(ref string, lookup LookupFunc) (val string, set bool, err error) {
	name, def, hasDef := strings.Cut(ref, ":-")
	if !validEnvName(name) {
		return "", false, fmt.Errorf("invalid environment variable reference ${%s}: names are letters, digits and _, not starting with a digit; write $$ for a literal $", ref)
	}
	v, ok := lookup(name)
	switch {
	case ok && (v != "" || !hasDef):
		return v, true, nil
	case hasDef:
		return def, false, nil
	default:
		return "", false, fmt.Errorf("environment variable %s is not set; set it or give a default with ${%s:-value}", name, name)
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
