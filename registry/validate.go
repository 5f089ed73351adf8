package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of a registration.
const (
	maxNameLen      = 128   // id and service
	maxTextLen      = 256   // version, zone, contract, metadata values
	maxMetaPairs    = 64    // metadata entries
	maxMetaKeyLen   = 63    // metadata keys
	maxWeight       = 10000 // weight
	maxHostLen      = 253   // the host part of address (a DNS name)
	maxAddressBytes = maxHostLen + 2 + 1 + 5
)

// fieldError is a validation error naming the field at fault. Its message is
// "field: reason", fit to show to the client that sent the field, and it
// wraps ErrInvalid.
type fieldError struct {
	field, reason string
}

func (e *fieldError) Error() string { return e.field + ": " + e.reason }

func (e *fieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &fieldError{field: field, reason: fmt.Sprintf(format, args...)}
}

// Validate checks the fields of a registration that the instance supplies:
// id, service, address (host:port, port 1–65535), protocol (http, https, h2c,
// grpc or empty), weight (0–10000), metadata (at most 64 pairs; keys 1–63
// characters of [A-Za-z0-9._/:-]; values up to 256 bytes of printable
// UTF-8) and version, zone and contract (up to 256 bytes of printable UTF-8).
// The fields the registry keeps (status, TTL, times, revision) are not
// checked. The error wraps ErrInvalid and reads "field: reason".
func Validate(in *Instance) error {
	if err := validateService(in.Service); err != nil {
		return err
	}
	if err := validateID(in.ID); err != nil {
		return err
	}
	if err := validateAddress(in.Address); err != nil {
		return err
	}
	switch in.Protocol {
	case "", ProtocolHTTP, ProtocolHTTPS, ProtocolH2C, ProtocolGRPC:
	default:
		return invalid("protocol", "%q is not one of http, https, h2c, grpc", truncate(in.Protocol))
	}
	if in.Weight < 0 || in.Weight > maxWeight {
		return invalid("weight", "%d is outside 0–%d", in.Weight, maxWeight)
	}
	for _, f := range [...]struct{ name, value string }{
		{"version", in.Version}, {"zone", in.Zone}, {"contract", in.Contract},
	} {
		if err := validateText(f.name, f.value); err != nil {
			return err
		}
	}
	return validateMetadata(in.Metadata)
}

// validateService checks a service name: 1–128 characters of [a-z0-9._-],
// starting with a letter or digit.
func validateService(s string) error {
	if s == "" {
		return invalid("service", "must not be empty")
	}
	if len(s) > maxNameLen {
		return invalid("service", "longer than %d characters", maxNameLen)
	}
	if !isLowerAlnum(s[0]) {
		return invalid("service", "%q must start with a lowercase letter or digit", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return invalid("service", "%q: only a-z, 0-9, '.', '_' and '-' are allowed", s)
		}
	}
	return nil
}

// validateID checks an instance id: 1–128 characters of [A-Za-z0-9._:-].
func validateID(s string) error {
	if s == "" {
		return invalid("id", "must not be empty")
	}
	if len(s) > maxNameLen {
		return invalid("id", "longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return invalid("id", "%q: only A-Z, a-z, 0-9, '.', '_', ':' and '-' are allowed", s)
		}
	}
	return nil
}

// validateAddress checks host:port. The host is an IP address (IPv6 in
// brackets) or a DNS name; the port is a decimal number in 1–65535.
func validateAddress(s string) error {
	if s == "" {
		return invalid("address", "must not be empty; want host:port")
	}
	if len(s) > maxAddressBytes {
		return invalid("address", "longer than %d bytes", maxAddressBytes)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return invalid("address", "must be host:port")
	}
	if port == "" || len(port) > 5 || !allDigits(port) {
		return invalid("address", "port must be a number in 1–65535")
	}
	if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
		return invalid("address", "port must be a number in 1–65535")
	}
	if host == "" {
		return invalid("address", "must be host:port with a host")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !isHostname(host) {
		return invalid("address", "host %q is neither an IP address nor a DNS name", host)
	}
	return nil
}

// isHostname reports whether s is a DNS name: dot-separated labels of
// letters, digits, '-' and '_', each 1–63 characters and not starting or
// ending with '-'. A trailing dot is allowed.
func isHostname(s string) bool {
	if len(s) > maxHostLen {
		return false
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	label := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if label == 0 || label > 63 || s[i-label] == '-' || s[i-1] == '-' {
				return false
			}
			label = 0
			continue
		}
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
		label++
	}
	return true
}

// validatePattern checks a token's service pattern: a service name, or a
// prefix of one followed by "*".
func validatePattern(p string) error {
	prefix, wildcard := strings.CutSuffix(p, "*")
	if !wildcard {
		return validateService(p)
	}
	if prefix == "" {
		return nil
	}
	// Any valid service name that starts with the prefix must be possible.
	if err := validateService(prefix); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	return nil
}

// validateText checks an optional free-text field: up to 256 bytes of
// printable UTF-8.
func validateText(field, s string) error {
	if len(s) > maxTextLen {
		return invalid(field, "longer than %d bytes", maxTextLen)
	}
	if !printable(s) {
		return invalid(field, "must be printable UTF-8 without control characters")
	}
	return nil
}

func validateMetadata(md map[string]string) error {
	if len(md) > maxMetaPairs {
		return invalid("metadata", "%d pairs; at most %d are allowed", len(md), maxMetaPairs)
	}
	for k, v := range md {
		if k == "" {
			return invalid("metadata", "keys must not be empty")
		}
		if len(k) > maxMetaKeyLen {
			return invalid("metadata", "key %q is longer than %d characters", truncate(k), maxMetaKeyLen)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !isAlnum(c) && c != '.' && c != '_' && c != '/' && c != ':' && c != '-' {
				return invalid("metadata", "key %q: only A-Z, a-z, 0-9, '.', '_', '/', ':' and '-' are allowed", k)
			}
		}
		if len(v) > maxTextLen {
			return invalid("metadata", "value of %q is longer than %d bytes", k, maxTextLen)
		}
		if !printable(v) {
			return invalid("metadata", "value of %q must be printable UTF-8 without control characters", k)
		}
	}
	return nil
}

// truncate shortens a value quoted back in an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

func printable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

// registration is the body of a register request: an Instance whose
// registry-kept fields are accepted and ignored whatever their values, and
// whose TTL is decoded apart so that its errors name it.
type registration struct {
	Instance
	TTL           json.RawMessage `json:"ttl"`
	Status        json.RawMessage `json:"status"`
	RegisteredAt  json.RawMessage `json:"registered_at"`
	LastHeartbeat json.RawMessage `json:"last_heartbeat"`
	Revision      json.RawMessage `json:"revision"`
}

// decodeRegistration decodes exactly one JSON object with known fields from
// body. It returns the status to answer an error with (400 or 413).
func decodeRegistration(body io.Reader) (Instance, time.Duration, int, error) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var reg registration
	if err := dec.Decode(&reg); err != nil {
		return Instance{}, 0, decodeStatus(err), decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if st := decodeStatus(err); st != http.StatusBadRequest {
			return Instance{}, 0, st, decodeError(err)
		}
		return Instance{}, 0, http.StatusBadRequest, errors.New("body: want one JSON object; there is more after it")
	}
	var ttl Duration
	if len(reg.TTL) > 0 {
		if err := ttl.UnmarshalJSON(reg.TTL); err != nil {
			return Instance{}, 0, http.StatusBadRequest, fmt.Errorf("ttl: want a duration such as \"10s\" or a number of seconds, not %s", truncate(string(reg.TTL)))
		}
	}
	return reg.Instance, ttl.D(), 0, nil
}

func decodeStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// decodeError rewords a JSON decoding error so that it names the field.
func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("the body is over %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return errors.New("body: empty; want an Instance JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body: truncated JSON")
	case errors.As(err, &se):
		return fmt.Errorf("body: invalid JSON at byte %d", se.Offset)
	case errors.As(err, &ute):
		if ute.Field == "" {
			return errors.New("body: want an Instance JSON object")
		}
		return fmt.Errorf("%s: want a JSON %s, not %s", ute.Field, jsonKind(ute.Type.Kind().String()), ute.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown field", strings.Trim(f, `"`))
	}
	return fmt.Errorf("body: %v", err)
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "map", goKind == "struct":
		return "object"
	}
	return goKind
}
