package gateway

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	t.Setenv("GOGC", "150")
	if got := TuneGC(); got != 150 {
		t.Fatalf("with GOGC=150: %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC set but the percentage was changed to %d", got)
	}
	t.Setenv("GOGC", "off")
	if got := TuneGC(); got != -1 {
		t.Fatalf("with GOGC=off: %d", got)
	}
}

func TestTuneGCDefault(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	// t.Setenv cannot unset; an empty GOGC is "set" to the runtime's
	// default, so test the unset case through the environment directly.
	unsetenv(t, "GOGC")
	if got := TuneGC(); got != DefaultGCPercent {
		t.Fatalf("without GOGC: %d", got)
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("percentage in effect %d, want %d", got, DefaultGCPercent)
	}
}

// unsetenv removes key for the rest of the test; t.Setenv has already
// arranged for its old value to come back.
func unsetenv(t *testing.T, key string) {
	t.Helper()
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
}
