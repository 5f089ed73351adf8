package bench

import (
	"fmt"
	"math"
	"time"
)

// Target names, in the order the harness measures them each round.
const (
	Direct  = "direct"
	Portico = "portico"
	Nginx   = "nginx"
	HAProxy = "haproxy"
	Caddy   = "caddy"
)

// Scenario is one load shape the harness measures.
type Scenario struct {
	// ID is a short name such as "s1-plain-64".
	ID string `json:"id"`
	// Title says what is measured, for the table's heading.
	Title string `json:"title"`
	// Connections is wrk's -c.
	Connections int `json:"connections"`
	// Path is the request path ("/" for the small JSON body, "/64k").
	Path string `json:"path"`
	// Close sends "Connection: close", so every request opens a connection.
	Close bool `json:"close"`
	// Targets are measured in this order each round.
	Targets []string `json:"targets"`
}

// Sample is one wrk run against one target.
type Sample struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Round    int       `json:"round"`
	Wrk      WrkResult `json:"wrk"`
	// CPUSeconds is the CPU time of the target's process tree during the
	// run (for "direct", the backend's).
	CPUSeconds float64 `json:"cpu_seconds"`
	// BackendCPUSeconds is the backend's CPU time during the run.
	BackendCPUSeconds float64 `json:"backend_cpu_seconds"`
	// PeakRSSKiB is the target's peak resident set during the run (summed
	// over its processes).
	PeakRSSKiB int64 `json:"peak_rss_kib"`
}

// CPUPer100k is CPU seconds per 100,000 requests, NaN without requests.
func (s Sample) CPUPer100k() float64 {
	if s.Wrk.Requests <= 0 {
		return math.NaN()
	}
	return s.CPUSeconds / float64(s.Wrk.Requests) * 1e5
}

// Summary is the median and spread of one target in one scenario, and its
// ratios to the direct backend and to nginx measured in the same rounds.
type Summary struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	RPS      Spread `json:"rps"`
	P50ms    Spread `json:"p50_ms"`
	P99ms    Spread `json:"p99_ms"`
	P999ms   Spread `json:"p999_ms"`
	// CPUPer100k is CPU seconds per 100,000 requests; ten times it is
	// microseconds per request.
	CPUPer100k Spread `json:"cpu_seconds_per_100k"`
	PeakRSSMiB Spread `json:"peak_rss_mib"`
	// RPSvsDirect and RPSvsNginx are throughput ratios, one per round.
	RPSvsDirect Spread `json:"rps_vs_direct"`
	RPSvsNginx  Spread `json:"rps_vs_nginx"`
	// CPUvsNginx and P99vsNginx compare CPU per request and p99 latency
	// with nginx's in the same round.
	CPUvsNginx Spread `json:"cpu_vs_nginx"`
	P99vsNginx Spread `json:"p99_vs_nginx"`
	// Errors is the total of failed requests over all rounds.
	Errors int64 `json:"errors"`
}

type metric func(Sample) float64

func rps(s Sample) float64       { return s.Wrk.RPS }
func p99(s Sample) float64       { return ms(s.Wrk.P99) }
func cpu(s Sample) float64       { return s.CPUPer100k() }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Summarize computes one Summary per scenario and target, in the order of
// scenarios and their targets.
func Summarize(scenarios []Scenario, samples []Sample) []Summary {
	var out []Summary
	for _, sc := range scenarios {
		for _, t := range sc.Targets {
			out = append(out, summarize(sc.ID, t, samples))
		}
	}
	return out
}

func summarize(scenario, target string, samples []Sample) Summary {
	mine := filter(samples, scenario, target)
	s := Summary{Scenario: scenario, Target: target}
	s.RPS = over(mine, rps)
	s.P50ms = over(mine, func(x Sample) float64 { return ms(x.Wrk.P50) })
	s.P99ms = over(mine, p99)
	s.P999ms = over(mine, func(x Sample) float64 { return ms(x.Wrk.P999) })
	s.CPUPer100k = over(mine, cpu)
	s.PeakRSSMiB = over(mine, func(x Sample) float64 { return float64(x.PeakRSSKiB) / 1024 })
	for _, x := range mine {
		s.Errors += x.Wrk.Errors()
	}
	s.RPSvsDirect = Ratio(samples, scenario, target, Direct, rps)
	s.RPSvsNginx = Ratio(samples, scenario, target, Nginx, rps)
	s.CPUvsNginx = Ratio(samples, scenario, target, Nginx, cpu)
	s.P99vsNginx = Ratio(samples, scenario, target, Nginx, p99)
	return s
}

func filter(samples []Sample, scenario, target string) []Sample {
	var out []Sample
	for _, s := range samples {
		if s.Scenario == scenario && s.Target == target {
			out = append(out, s)
		}
	}
	return out
}

func over(samples []Sample, m metric) Spread {
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = m(s)
	}
	return NewSpread(xs)
}

// Ratio is m(target)/m(base) computed round by round in one scenario, so a
// round that was slow for every process does not skew it, summarized over
// the rounds that measured both. A target compared with itself has no ratio.
func Ratio(samples []Sample, scenario, target, base string, m metric) Spread {
	if target == base {
		return NewSpread(nil)
	}
	num := map[int]float64{}
	for _, s := range filter(samples, scenario, target) {
		num[s.Round] = m(s)
	}
	var xs []float64
	for _, s := range filter(samples, scenario, base) {
		if n, ok := num[s.Round]; ok && m(s) > 0 {
			xs = append(xs, n/m(s))
		}
	}
	return NewSpread(xs)
}

// Goal is one of the targets with what this run measured.
type Goal struct {
	// Name says what is compared, e.g. "plain proxy CPU per request vs nginx".
	Name string `json:"name"`
	// Limit is the target, e.g. "<= 2.3x".
	Limit string `json:"limit"`
	// Measured is the median ratio or value; NaN when it could not be measured.
	Measured Spread `json:"measured"`
	// Status is "met", "not yet" or "not measured".
	Status string `json:"status"`
	// Note explains a "not measured".
	Note string `json:"note,omitempty"`
}

// GoalScenarios names the scenarios the goals are checked on.
type GoalScenarios struct {
	Plain64, Plain256, Policies string
	// PoliciesOn is false when the policy configuration was not accepted
	// and the policies scenario ran with the access log only.
	PoliciesOn bool
}

// Goals checks the targets for Portico against the samples: CPU
// per request and throughput against nginx and Caddy, p99 against nginx,
// and peak RSS at 256 connections.
func Goals(samples []Sample, g GoalScenarios) []Goal {
	atMost := func(limit float64) func(float64) bool { return func(v float64) bool { return v <= limit } }
	atLeast := func(limit float64) func(float64) bool { return func(v float64) bool { return v >= limit } }
	below := func(limit float64) func(float64) bool { return func(v float64) bool { return v < limit } }
	rss := func(s Sample) float64 { return float64(s.PeakRSSKiB) / 1024 }
	goals := []Goal{
		check("plain proxy (64 conns): CPU per request vs nginx", "<= 2.3x",
			Ratio(samples, g.Plain64, Portico, Nginx, cpu), atMost(2.3)),
		check("plain proxy (64 conns): throughput vs nginx", ">= 0.65x",
			Ratio(samples, g.Plain64, Portico, Nginx, rps), atLeast(0.65)),
		check("plain proxy (64 conns): throughput vs Caddy", ">= 2.3x",
			Ratio(samples, g.Plain64, Portico, Caddy, rps), atLeast(2.3)),
		check("JWT + rate limit + access log + metrics: CPU per request vs nginx with access log", "<= 3x",
			Ratio(samples, g.Policies, Portico, Nginx, cpu), atMost(3)),
		check("p99 latency (64 conns) vs nginx", "<= 1.5x",
			Ratio(samples, g.Plain64, Portico, Nginx, p99), atMost(1.5)),
		check("peak RSS at 256 connections (MiB)", "< 64",
			over(filter(samples, g.Plain256, Portico), rss), below(64)),
	}
	if !g.PoliciesOn {
		goals[3].Status = "not measured"
		goals[3].Note = "the JWT and rate-limit policies are not available yet; the scenario ran with the access log only (" +
			fmtRatio(goals[3].Measured) + ")"
	}
	return goals
}

func check(name, limit string, measured Spread, ok func(float64) bool) Goal {
	g := Goal{Name: name, Limit: limit, Measured: measured}
	switch {
	case !measured.Valid():
		g.Status = "not measured"
	case ok(measured.Median):
		g.Status = "met"
	default:
		g.Status = "not yet"
	}
	return g
}

func fmtRatio(s Spread) string {
	if !s.Valid() {
		return "-"
	}
	return fmt.Sprintf("%.2fx", s.Median)
}
