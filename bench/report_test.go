package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sample builds one measurement: rps requests/s over one second, cpu
// seconds of the target, p99 in milliseconds and peak RSS in MiB.
func sample(sc, target string, round int, rps, cpu float64, p99ms, rssMiB int64) Sample {
	return Sample{Scenario: sc, Target: target, Round: round,
		Wrk: WrkResult{RPS: rps, Requests: int64(rps), Duration: time.Second,
			P50: time.Duration(p99ms) * time.Millisecond / 2, P99: time.Duration(p99ms) * time.Millisecond,
			P999: time.Duration(p99ms) * time.Millisecond * 2},
		CPUSeconds: cpu, PeakRSSKiB: rssMiB * 1024}
}

// fixtureSamples are three rounds of s1 and s2 and two of s3; round 2 is
// slow for every process, which per-round ratios must not mind.
func fixtureSamples() []Sample {
	var out []Sample
	for round, f := range map[int]float64{1: 1, 2: 0.5, 3: 1} {
		for _, sc := range []string{"s1", "s2"} {
			out = append(out,
				sample(sc, Direct, round, 60000*f, 0.6*f, 2, 12),
				sample(sc, Portico, round, 20000*f, 0.8*f, 6, 30),
				sample(sc, Nginx, round, 30000*f, 0.45*f, 4, 15),
				sample(sc, Caddy, round, 10000*f, 0.7*f, 10, 45),
			)
		}
	}
	out = append(out,
		sample("s3", Portico, 1, 15000, 0.75, 8, 30), sample("s3", Nginx, 1, 28000, 0.5, 4, 15),
		sample("s3", Portico, 2, 15000, 0.75, 8, 30), sample("s3", Nginx, 2, 28000, 0.5, 4, 15))
	return out
}

func TestRatioPerRound(t *testing.T) {
	t.Parallel()
	s := fixtureSamples()
	got := Ratio(s, "s1", Portico, Nginx, rps)
	if got.N != 3 || math.Abs(got.Median-2.0/3) > 1e-9 || math.Abs(got.Max-got.Min) > 1e-9 {
		t.Errorf("throughput ratio = %+v, want 0.667 in every round", got)
	}
	// CPU per request: Portico 0.8 s / 20000 = 40 µs, nginx 0.45 s / 30000 = 15 µs.
	if got := Ratio(s, "s1", Portico, Nginx, cpu); math.Abs(got.Median-40.0/15) > 1e-9 {
		t.Errorf("CPU ratio = %+v, want %.3f", got, 40.0/15)
	}
	if got := Ratio(s, "s1", Nginx, Nginx, rps); got.Valid() {
		t.Errorf("nginx vs itself = %+v, want no ratio", got)
	}
	if got := Ratio(s, "s3", Portico, Direct, rps); got.Valid() {
		t.Errorf("ratio to a target that was not measured = %+v, want none", got)
	}
	// A round measured for only one of the two is left out.
	s = append(s, sample("s1", Portico, 4, 1, 1, 1, 1))
	if got := Ratio(s, "s1", Portico, Nginx, rps); got.N != 3 {
		t.Errorf("ratio over %d rounds, want 3", got.N)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	scs := []Scenario{{ID: "s1", Targets: []string{Direct, Portico, Nginx, Caddy}}, {ID: "s3", Targets: []string{Portico, Nginx}}}
	sums := Summarize(scs, fixtureSamples())
	if len(sums) != 6 {
		t.Fatalf("%d summaries, want 6", len(sums))
	}
	p := sums[1]
	if p.Scenario != "s1" || p.Target != Portico {
		t.Fatalf("second summary is %s/%s", p.Scenario, p.Target)
	}
	if p.RPS.Median != 20000 || p.RPS.Min != 10000 || p.RPS.Max != 20000 || p.RPS.N != 3 {
		t.Errorf("RPS = %+v", p.RPS)
	}
	if math.Abs(p.CPUPer100k.Median-4) > 1e-9 {
		t.Errorf("CPU per 100k = %+v, want 4 s (40 µs a request)", p.CPUPer100k)
	}
	if math.Abs(p.RPSvsDirect.Median-1.0/3) > 1e-9 || p.P99vsNginx.Median != 1.5 || p.PeakRSSMiB.Median != 30 {
		t.Errorf("ratios: direct %+v, p99 %+v, rss %+v", p.RPSvsDirect, p.P99vsNginx, p.PeakRSSMiB)
	}
	if sums[2].RPSvsNginx.Valid() {
		t.Errorf("nginx has a ratio to itself: %+v", sums[2].RPSvsNginx)
	}
}

func TestGoals(t *testing.T) {
	t.Parallel()
	goals := Goals(fixtureSamples(), GoalScenarios{Plain64: "s1", Plain256: "s2", Policies: "s3", PoliciesOn: true})
	want := []string{
		"not yet", // CPU 2.67x nginx > 2.3x
		"met",     // throughput 0.67x nginx >= 0.65x
		"not yet", // 2x Caddy < 2.3x
		"met",     // s3 CPU: 50 µs vs 17.9 µs = 2.8x <= 3x
		"met",     // p99 1.5x
		"met",     // RSS 30 MiB
	}
	if len(goals) != len(want) {
		t.Fatalf("%d goals, want %d", len(goals), len(want))
	}
	for i, g := range goals {
		if g.Status != want[i] {
			t.Errorf("goal %q: %s (measured %+v), want %s", g.Name, g.Status, g.Measured, want[i])
		}
	}
	off := Goals(fixtureSamples(), GoalScenarios{Plain64: "s1", Plain256: "s2", Policies: "s3"})
	if off[3].Status != "not measured" || !strings.Contains(off[3].Note, "access log only") {
		t.Errorf("policies goal without policies: %+v", off[3])
	}
	none := Goals(nil, GoalScenarios{Plain64: "s1", Plain256: "s2", Policies: "s3", PoliciesOn: true})
	for _, g := range none {
		if g.Status != "not measured" {
			t.Errorf("goal %q without samples: %s", g.Name, g.Status)
		}
	}
}

func TestWriteTablesAndJSON(t *testing.T) {
	t.Parallel()
	scs := []Scenario{{ID: "s1", Title: "plain proxy", Targets: []string{Direct, Portico, Nginx, Caddy}}}
	samples := fixtureSamples()
	rep := &Report{Date: "2026-01-02T03:04:05Z", Layout: "pinned", Rounds: 3, Duration: "5s", Elapsed: "1m0s",
		Versions: map[string]string{"nginx": "nginx/1.22.1"}, Cores: map[string]string{"wrk": "0", "portico": "1"},
		Notes: []string{"a note"}, Scenarios: scs, Samples: samples, Summaries: Summarize(scs, samples),
		Goals: Goals(samples, GoalScenarios{Plain64: "s1", Plain256: "s2", Policies: "s3"})}
	var b bytes.Buffer
	if err := WriteTables(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"pinned layout, 3 round(s) of 5s",
		"cores: portico=1, wrk=0",
		"s1: plain proxy",
		"20,000  (10,000–20,000)",
		"note: a note",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`CPU per request vs nginx +<= 2\.3x +measured 2\.67 \(2\.67–2\.67\) +not yet\n`).MatchString(out) {
		t.Errorf("table lacks the CPU goal's line:\n%s", out)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Samples) != len(samples) || back.Summaries[1].RPS.Median != 20000 {
		t.Errorf("JSON round trip lost data: %d samples, summary %+v", len(back.Samples), back.Summaries[1].RPS)
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"0": "0", "999": "999", "1000": "1,000", "65231": "65,231", "1234567": "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%s) = %s, want %s", in, got, want)
		}
	}
}
