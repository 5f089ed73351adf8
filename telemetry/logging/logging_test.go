package logging

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		level, format string
		// logged lists the levels that must appear, in order of the calls
		// Debug, Info, Warn, Error.
		logged []string
		json   bool
	}{
		{"", "", []string{"INFO", "WARN", "ERROR"}, true},
		{"debug", "json", []string{"DEBUG", "INFO", "WARN", "ERROR"}, true},
		{"INFO", "JSON", []string{"INFO", "WARN", "ERROR"}, true},
		{"warn", "text", []string{"WARN", "ERROR"}, false},
		{"error", "text", []string{"ERROR"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, tc.level, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d", "k", "v")
			log.Info("i", "k", "v")
			log.Warn("w", "k", "v")
			log.Error("e", "k", "v")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != len(tc.logged) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tc.logged), buf.String())
			}
			for i, ln := range lines {
				if tc.json {
					var v map[string]any
					if err := json.Unmarshal([]byte(ln), &v); err != nil {
						t.Fatalf("line %q: %v", ln, err)
					}
					if v["level"] != tc.logged[i] || v["k"] != "v" {
						t.Errorf("line %q, want level %s and k=v", ln, tc.logged[i])
					}
				} else if !strings.Contains(ln, "level="+tc.logged[i]) || !strings.Contains(ln, "k=v") {
					t.Errorf("line %q, want level=%s and k=v", ln, tc.logged[i])
				}
			}
		})
	}
}

func TestNewRejectsUnknownValues(t *testing.T) {
	tests := []struct {
		name, level, format, want string
	}{
		{"level", "verbose", "json", `unknown level "verbose"`},
		{"format", "info", "logfmt", `unknown format "logfmt"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(io.Discard, tc.level, tc.format)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want it to mention %s", err, tc.want)
			}
		})
	}
	if _, err := New(nil, "", ""); err == nil {
		t.Error("New accepted a nil writer")
	}
}
