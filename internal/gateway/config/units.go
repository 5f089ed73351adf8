package config

import "time"

// Duration is a time.Duration written in YAML as a Go duration string ("10s", "1m30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size in bytes written in YAML as an integer or with a unit
// ("64KiB", "10MiB", "1GB").
type ByteSize int64
