package gateway

import (
	"os"
	"runtime/debug"
	"strconv"
)

// DefaultGCPercent is the garbage collector's target (GOGC) the gateway
// process runs with when GOGC is not set. A gateway's live heap is small —
// a few MiB of configuration, pools and connection buffers — while every
// request allocates a few KiB that die young, so with Go's default of 100
// the collector runs dozens of times a second under load. At 400 it runs a
// fifth as often for a heap that stays well under the memory a few hundred
// connections need anyway; GOMEMLIMIT, when set, still caps it.
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless the environment sets GOGC, which
// always wins. It returns the percentage in effect.
func TuneGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok {
		if v == "off" {
			return -1
		}
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return 100 // the runtime ignores a value it cannot parse
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
