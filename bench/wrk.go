package bench

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WrkResult is one wrk run, read from its text output together with the
// lines wrk/report.lua adds.
type WrkResult struct {
	// Requests is the number of completed requests.
	Requests int64 `json:"requests"`
	// Duration is how long the run lasted.
	Duration time.Duration `json:"duration_ns"`
	// RPS is wrk's "Requests/sec".
	RPS float64 `json:"rps"`
	// P50, P75, P90 and P99 come from wrk's --latency table; P999 from
	// report.lua. P75 is zero when only report.lua's lines were present.
	P50  time.Duration `json:"p50_ns"`
	P75  time.Duration `json:"p75_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	// Socket errors and responses that were not 2xx or 3xx.
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	Timeouts      int64 `json:"timeouts"`
	Non2xx        int64 `json:"non_2xx"`
}

// Errors is the number of failed requests of every kind.
func (r WrkResult) Errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts + r.Non2xx
}

// ErrNoWrkSummary is returned when wrk's output has no Requests/sec line,
// which is what a run that could not connect at all looks like.
var ErrNoWrkSummary = errors.New("wrk output has no Requests/sec line")

// ParseWrk reads the output of `wrk --latency -s report.lua`. wrk's table
// gives p50..p99 rounded to two decimals; report.lua's lines give exact
// microseconds and p99.9, and win where both are present.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var sawRPS, sawP999 bool
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var err error
		switch {
		case line == "Latency Distribution":
			inDist = true
			continue
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			err = r.setTablePercentile(f[0], f[1])
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			r.RPS, err = strconv.ParseFloat(f[1], 64)
			if err == nil && !(r.RPS >= 0 && r.RPS < 1e12) {
				err = fmt.Errorf("bad rate %q", f[1])
			}
			sawRPS = true
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			r.Requests, err = parseCount(f[0])
			if err == nil {
				r.Duration, err = parseWrkDuration(strings.TrimSuffix(f[3], ","))
			}
		case strings.HasPrefix(line, "Socket errors:"):
			err = r.setSocketErrors(strings.TrimPrefix(line, "Socket errors:"))
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			r.Non2xx, err = parseCount(f[4])
		case f[0] == "portico-bench":
			var p999 bool
			p999, err = r.setScriptLine(f[1:])
			sawP999 = sawP999 || p999
		default:
			inDist = inDist && len(f) == 2
		}
		if err != nil {
			return WrkResult{}, fmt.Errorf("wrk output line %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return WrkResult{}, err
	}
	if !sawRPS {
		return WrkResult{}, ErrNoWrkSummary
	}
	if !sawP999 {
		return WrkResult{}, errors.New("wrk output has no p99.9 line (run wrk with -s wrk/report.lua)")
	}
	return r, nil
}

func (r *WrkResult) setTablePercentile(pct, val string) error {
	d, err := parseWrkDuration(val)
	if err != nil {
		return err
	}
	switch pct {
	case "50%":
		r.P50 = d
	case "75%":
		r.P75 = d
	case "90%":
		r.P90 = d
	case "99%":
		r.P99 = d
	default:
		return fmt.Errorf("unknown percentile %s", pct)
	}
	return nil
}

// setSocketErrors reads " connect 0, read 12, write 0, timeout 3".
func (r *WrkResult) setSocketErrors(s string) error {
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return fmt.Errorf("bad socket error count %q", part)
		}
		n, err := parseCount(f[1])
		if err != nil {
			return err
		}
		switch f[0] {
		case "connect":
			r.ConnectErrors = n
		case "read":
			r.ReadErrors = n
		case "write":
			r.WriteErrors = n
		case "timeout":
			r.Timeouts = n
		default:
			return fmt.Errorf("unknown socket error kind %q", f[0])
		}
	}
	return nil
}

// setScriptLine reads one report.lua line (without its "portico-bench"
// word) and reports whether it was the p99.9 latency.
func (r *WrkResult) setScriptLine(f []string) (bool, error) {
	if len(f) == 0 {
		return false, errors.New("empty portico-bench line")
	}
	switch f[0] {
	case "latency":
		if len(f) != 3 {
			return false, errors.New("want: latency pNN MICROSECONDS")
		}
		us, err := parseCount(f[2])
		if err != nil {
			return false, fmt.Errorf("bad latency %q", f[2])
		}
		d := time.Duration(us) * time.Microsecond
		switch f[1] {
		case "p50":
			r.P50 = d
		case "p90":
			r.P90 = d
		case "p99":
			r.P99 = d
		case "p99.9":
			r.P999 = d
			return true, nil
		}
		return false, nil
	case "requests":
		if len(f) != 6 || f[2] != "duration_us" || f[4] != "bytes" {
			return false, errors.New("want: requests N duration_us N bytes N")
		}
		n, err := parseCount(f[1])
		if err != nil {
			return false, err
		}
		us, err := parseCount(f[3])
		if err != nil {
			return false, err
		}
		r.Requests, r.Duration = n, time.Duration(us)*time.Microsecond
		return false, nil
	case "errors":
		// Socket errors are read from wrk's own line; "status" here is
		// the same count as Non-2xx, which wrk prints only when non-zero.
		if len(f) != 11 || f[7] != "status" {
			return false, errors.New("want: errors connect N read N write N status N timeout N")
		}
		n, err := parseCount(f[8])
		if err != nil {
			return false, err
		}
		r.Non2xx = n
		return false, nil
	}
	return false, fmt.Errorf("unknown portico-bench line %q", f[0])
}

// parseWrkDuration reads wrk's durations: "761.00us", "1.17ms", "2.00s",
// "1.50m", "1.00h".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   float64
	}{{"us", float64(time.Microsecond)}, {"ms", float64(time.Millisecond)}, {"s", float64(time.Second)}, {"m", float64(time.Minute)}, {"h", float64(time.Hour)}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || !(v >= 0 && v <= 1e6) {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			return time.Duration(v * u.unit), nil
		}
	}
	return 0, fmt.Errorf("bad duration %q", s)
}

// parseCount reads a non-negative decimal count.
func parseCount(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("negative count %q", s)
	}
	return n, nil
}
