package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseWrk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want WrkResult
	}{
		{"wrk-keepalive.txt", WrkResult{
			Requests: 130639, Duration: 2002684 * time.Microsecond, RPS: 65231.96,
			P50: 761 * time.Microsecond, P75: 1170 * time.Microsecond, P90: 2346 * time.Microsecond,
			P99: 6096 * time.Microsecond, P999: 8744 * time.Microsecond,
		}},
		{"wrk-close.txt", WrkResult{
			Requests: 34115, Duration: 2013520 * time.Microsecond, RPS: 16942.97,
			P50: 1818 * time.Microsecond, P75: 2930 * time.Microsecond, P90: 3966 * time.Microsecond,
			P99: 6578 * time.Microsecond, P999: 8768 * time.Microsecond,
		}},
		{"wrk-errors.txt", WrkResult{
			Requests: 5972, Duration: 5010433 * time.Microsecond, RPS: 1191.92,
			P50: 80497 * time.Microsecond, P75: 150 * time.Millisecond, P90: 799870 * time.Microsecond,
			P99: 1501002 * time.Microsecond, P999: 1900123 * time.Microsecond,
			ReadErrors: 12, WriteErrors: 1, Timeouts: 37, Non2xx: 5,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got, err := ParseWrk(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseWrk:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseWrkErrorsTotal(t *testing.T) {
	t.Parallel()
	got, err := ParseWrk(readFixture(t, "wrk-errors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if n := got.Errors(); n != 12+1+37+5 {
		t.Errorf("Errors() = %d, want 55", n)
	}
}

func TestParseWrkRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, out, want string
	}{
		{"connection refused", readFixture(t, "wrk-refused.txt"), "no Requests/sec"},
		{"without report.lua", readFixture(t, "wrk-no-script.txt"), "no p99.9"},
		{"bad percentile", "Latency Distribution\n 50% 1.0xs\nRequests/sec: 1\nportico-bench latency p99.9 1\n", "bad duration"},
		{"negative latency", "Requests/sec: 1\nportico-bench latency p99.9 -4\n", "bad latency"},
		{"unknown script line", "Requests/sec: 1\nportico-bench what 1\n", "unknown portico-bench line"},
		{"bad socket errors", "Requests/sec: 1\nSocket errors: connect x, read 1\nportico-bench latency p99.9 1\n", "invalid syntax"},
		{"NaN duration", "Latency Distribution\n 50% NaNms\n", "bad duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseWrk(tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseWrk error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseWrk(readFixture(t, "wrk-refused.txt")); !errors.Is(err, ErrNoWrkSummary) {
		t.Errorf("refused run: error %v is not ErrNoWrkSummary", err)
	}
}

func TestParseWrkDuration(t *testing.T) {
	t.Parallel()
	tests := map[string]time.Duration{
		"761.00us": 761 * time.Microsecond,
		"1.17ms":   1170 * time.Microsecond,
		"2.00s":    2 * time.Second,
		"1.50m":    90 * time.Second,
		"1.00h":    time.Hour,
	}
	for in, want := range tests {
		got, err := parseWrkDuration(in)
		if err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ms", "1.0", "-1ms", "1e9s", "infs"} {
		if _, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q) succeeded", bad)
		}
	}
}

func FuzzParseWrk(f *testing.F) {
	for _, name := range []string{"wrk-keepalive.txt", "wrk-close.txt", "wrk-errors.txt", "wrk-no-script.txt", "wrk-refused.txt"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, out string) {
		r, err := ParseWrk(out)
		if err != nil {
			return
		}
		if r.Requests < 0 || r.Duration < 0 || !(r.RPS >= 0) || r.P50 < 0 || r.P75 < 0 || r.P90 < 0 || r.P99 < 0 || r.P999 < 0 ||
			r.ConnectErrors < 0 || r.ReadErrors < 0 || r.WriteErrors < 0 || r.Timeouts < 0 || r.Non2xx < 0 {
			t.Errorf("negative values from %q: %+v", out, r)
		}
	})
}
