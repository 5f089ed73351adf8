package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is everything one harness run measured; it is written as JSON to
// bench/results/ and printed as tables.
type Report struct {
	// Date is when the run started (RFC 3339).
	Date string `json:"date"`
	// Layout is "pinned" or "unpinned".
	Layout string `json:"layout"`
	// Rounds is how many times each target was measured per scenario.
	Rounds int `json:"rounds"`
	// Duration is the length of each measured wrk run.
	Duration string `json:"duration"`
	// Elapsed is how long the whole run took.
	Elapsed string `json:"elapsed"`
	// Versions of the proxies, Go and Portico.
	Versions map[string]string `json:"versions"`
	// Cores says which CPUs each process was allowed to run on.
	Cores map[string]string `json:"cores"`
	// Notes are things the reader must know, such as a scenario that ran
	// with fewer policies than it names.
	Notes     []string   `json:"notes,omitempty"`
	Scenarios []Scenario `json:"scenarios"`
	Samples   []Sample   `json:"samples"`
	Summaries []Summary  `json:"summaries"`
	Goals     []Goal     `json:"goals"`
}

// WriteTables prints one table per scenario (medians, with the min–max
// spread of throughput, p99 and CPU), the cores, the notes and the goals.
func WriteTables(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Portico peer benchmark, %s, %s layout, %d round(s) of %s per target, took %s\n",
		r.Date, r.Layout, r.Rounds, r.Duration, r.Elapsed)
	fmt.Fprintln(&b, "cores:", joinMap(r.Cores))
	fmt.Fprintln(&b, "versions:", joinMap(r.Versions))
	for _, sc := range r.Scenarios {
		fmt.Fprintf(&b, "\n%s: %s\n", sc.ID, sc.Title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\treq/s\t(min–max)\tp50 ms\tp99 ms\t(min–max)\tp99.9 ms\tCPU s/100k req\t(min–max)\tpeak RSS MiB\t×direct\t×nginx\tCPU ×nginx\terrors\t")
		for _, s := range r.Summaries {
			if s.Scenario != sc.ID {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
				s.Target, num(s.RPS.Median, 0), rangeOf(s.RPS, 0), num(s.P50ms.Median, 2),
				num(s.P99ms.Median, 2), rangeOf(s.P99ms, 2), num(s.P999ms.Median, 2),
				num(s.CPUPer100k.Median, 2), rangeOf(s.CPUPer100k, 2), num(s.PeakRSSMiB.Median, 1),
				ratio(s.RPSvsDirect), ratio(s.RPSvsNginx), ratio(s.CPUvsNginx), s.Errors)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(&b, "\nCPU is the process tree's user+system time from /proc (for direct, the backend's);")
	fmt.Fprintln(&b, "ratios are taken round by round and their median shown.")
	for _, n := range r.Notes {
		fmt.Fprintln(&b, "note:", n)
	}
	fmt.Fprintln(&b, "\ntargets (Portico):")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, g := range r.Goals {
		fmt.Fprintf(tw, "  %s\t%s\tmeasured %s\t%s\n", g.Name, g.Limit, median(g.Measured), g.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64, prec int) string {
	if v != v { // NaN
		return "-"
	}
	s := fmt.Sprintf("%.*f", prec, v)
	if prec == 0 {
		return thousands(s)
	}
	return s
}

func rangeOf(s Spread, prec int) string {
	if !s.Valid() || s.N < 2 {
		return ""
	}
	return "(" + num(s.Min, prec) + "–" + num(s.Max, prec) + ")"
}

func ratio(s Spread) string {
	if !s.Valid() {
		return "-"
	}
	return fmt.Sprintf("%.2f", s.Median)
}

func median(s Spread) string {
	if !s.Valid() {
		return "-"
	}
	out := fmt.Sprintf("%.2f", s.Median)
	if s.N > 1 {
		out += fmt.Sprintf(" (%.2f–%.2f)", s.Min, s.Max)
	}
	return out
}

// thousands inserts commas into a non-negative integer string.
func thousands(s string) string {
	if len(s) <= 3 || strings.HasPrefix(s, "-") {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	b.WriteString(s[:pre])
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func joinMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}
