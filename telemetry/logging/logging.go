// Package logging builds the structured logger for the gateway's own log
// lines (start-up, reloads, health changes), as opposed to the per-request
// access log in package accesslog.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a logger writing to w. level is debug, info, warn or error
// (default info); format is json or text (default json). Both are matched
// without case. An unknown level or format is an error naming the accepted
// values, so a typo in the configuration is caught at start-up.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	if w == nil {
		return nil, errors.New("logging: writer is nil")
	}
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "", "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("logging: unknown format %q (want json or text)", format)
	}
}

// ParseLevel returns the slog level named debug, info, warn or error,
// matched without case. The empty string is info.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("logging: unknown level %q (want debug, info, warn or error)", level)
	}
}
