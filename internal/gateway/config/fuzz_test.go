package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that whatever it
// returns is usable: errors are a non-empty ErrorList, and a parsed Config
// can be redacted, checked for warnings, fingerprinted and encoded.
func FuzzParse(f *testing.F) {
	f.Add([]byte("routes:\n  - name: r\n    match: {path: /}\n    direct_response: {}\n"))
	env := envMap(map[string]string{"SET": "value", "EMPTY": ""})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseEnv("fuzz.yaml", data, env)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.Msg == "" || !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("malformed error %#v", e)
				}
			}
			return
		}
		red := cfg.Redacted()
		if _, err := json.Marshal(red); err != nil {
			t.Fatalf("marshal redacted config: %v", err)
		}
		for _, w := range Warnings(cfg) {
			_ = w.String()
		}
		for _, s := range cfg.Services {
			_ = s.Fingerprint()
		}
	})
}
