package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in YAML as a Go duration string such
// as "10s", "250ms" or "1m30s". Negative durations are rejected, and so are
// bare numbers other than 0, because "10" could mean seconds or milliseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns d in Go duration syntax without zero trailing units, e.g.
// "1m30s", "2m" or "1h".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration parses s as a configuration duration.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration; write a value such as \"10s\"")
	}
	if s == "0" {
		return 0, nil
	}
	if isNumber(s) {
		return 0, fmt.Errorf("duration %q has no unit; write %q or %q", s, s+"s", s+"ms")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use a number and a unit (ns, us, ms, s, m, h) such as \"10s\" or \"1m30s\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as \"10s\", got %s", kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON implements json.Marshaler: a duration is shown as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// ByteSize is a size in bytes written in YAML as an integer ("512") or an
// integer with a unit: B; decimal kB/KB, MB, GB, TB (powers of 1000); binary
// KiB, MiB, GiB, TiB (powers of 1024). -1 means "no limit" and is accepted
// only by the fields that document it.
type ByteSize int64

// Unlimited is the ByteSize that disables a limit where a field allows it.
const Unlimited ByteSize = -1

var byteUnits = []struct {
	name string
	mult int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"B", 1},
}

// ParseByteSize parses s as a configuration size.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return Unlimited, nil
	}
	num, unit := s, ""
	if i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '-' }); i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	}
	if strings.HasPrefix(unit, ".") {
		return 0, fmt.Errorf("invalid size %q: must be a whole number of bytes or units, such as \"1536KiB\"", s)
	}
	if num == "" || !isNumber(num) {
		return 0, fmt.Errorf("invalid size %q: write an integer with an optional unit, such as \"512\", \"64KiB\" or \"10MiB\"", s)
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("size %q must not be negative (only -1, meaning no limit, is accepted where documented)", s)
	}
	mult := int64(-1)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits {
		if unit == u.name {
			mult = u.mult
		}
	}
	if mult < 0 {
		return 0, fmt.Errorf("invalid size unit %q in %q: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", unit, s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as \"64KiB\", got %s", kindName(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String returns b with the largest binary unit that divides it exactly,
// e.g. "64KiB", "10MiB" or "1000B"; -1 is "-1" and 0 is "0".
func (b ByteSize) String() string {
	if b <= 0 {
		return strconv.FormatInt(int64(b), 10)
	}
	for _, u := range byteUnits[:4] {
		if int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// MarshalJSON implements json.Marshaler: a size is shown as a string.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// isNumber reports whether s is an optionally signed decimal number
// (integer or with a fraction).
func isNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= '0' && s[i] <= '9':
		case s[i] == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return s != "."
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	default:
		return "a scalar"
	}
}

var (
	_ yaml.Unmarshaler = (*Duration)(nil)
	_ json.Marshaler   = Duration(0)
	_ yaml.Unmarshaler = (*ByteSize)(nil)
	_ json.Marshaler   = ByteSize(0)
)
