package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "10s", want: 10 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: " 2h ", want: 2 * time.Hour},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "10", wantErr: `duration "10" has no unit; write "10s" or "10ms"`},
		{in: "1.5", wantErr: `duration "1.5" has no unit`},
		{in: "-5s", wantErr: `duration "-5s" must not be negative`},
		{in: "ten seconds", wantErr: `invalid duration "ten seconds"`},
		{in: "", wantErr: "empty duration"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseDuration(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.D() != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.D(), err, tc.want)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{in: "512", want: 512},
		{in: "0", want: 0},
		{in: "-1", want: Unlimited},
		{in: "64KiB", want: 64 << 10},
		{in: "10MiB", want: 10 << 20},
		{in: "10 MiB", want: 10 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "1TiB", want: 1 << 40},
		{in: "1GB", want: 1e9},
		{in: "3MB", want: 3e6},
		{in: "5KB", want: 5000},
		{in: "5kB", want: 5000},
		{in: "7B", want: 7},
		{in: "-2", wantErr: `size "-2" must not be negative (only -1, meaning no limit, is accepted where documented)`},
		{in: "10XB", wantErr: `invalid size unit "XB" in "10XB"`},
		{in: "1.5MiB", wantErr: "must be a whole number"},
		{in: "MiB", wantErr: `invalid size "MiB"`},
		{in: "", wantErr: `invalid size ""`},
		{in: "99999999999TiB", wantErr: "too large"},
		{in: "99999999999999999999", wantErr: "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseByteSize(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestUnitsString(t *testing.T) {
	t.Parallel()
	sizes := map[ByteSize]string{0: "0", -1: "-1", 512: "512B", 64 << 10: "64KiB", 10 << 20: "10MiB", 1 << 30: "1GiB", 1e9: "1000000000B", 1536: "1536B", 3 << 40: "3TiB"}
	for b, want := range sizes {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
		if want != "-1" {
			if back, err := ParseByteSize(want); err != nil || back != b {
				t.Errorf("ParseByteSize(%q) = %d, %v; want round trip to %d", want, back, err, int64(b))
			}
		}
	}
	durations := map[time.Duration]string{0: "0s", 90 * time.Second: "1m30s", 2 * time.Minute: "2m", time.Hour: "1h", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1.5s"}
	for d, want := range durations {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(want); err != nil || back.D() != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want round trip to %v", want, back, err, d)
		}
	}
}

func TestUnitsMarshalJSON(t *testing.T) {
	t.Parallel()
	got, err := json.Marshal(struct {
		D Duration `json:"d"`
		B ByteSize `json:"b"`
	}{Duration(90 * time.Second), 10 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"d":"1m30s","b":"10MiB"}`; string(got) != want {
		t.Fatalf("json = %s, want %s", got, want)
	}
}
