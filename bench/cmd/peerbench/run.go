package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portico-dev/portico/bench"
)

// Scenario ids; the policies scenario compares Portico with its policies
// against nginx with its access log.
const (
	scPlain64  = "s1-plain-64"
	scPlain256 = "s2-plain-256"
	scPolicies = "s3-policies"
	scBody64k  = "s4-body-64k"
	scClose    = "s5-new-conn"
)

var allTargets = []string{bench.Direct, bench.Portico, bench.Nginx, bench.HAProxy, bench.Caddy}

func scenarios(policiesOn bool) []bench.Scenario {
	s3 := "Portico with JWT auth (cached) + local rate limit + access log + metrics; nginx with its access log; 64 connections"
	if !policiesOn {
		s3 = "Portico with access log + metrics ONLY (JWT and rate-limit policies not accepted by portico validate); nginx with its access log; 64 connections"
	}
	return []bench.Scenario{
		{ID: scPlain64, Title: "plain proxy, 64 connections, ~200-byte JSON, keep-alive", Connections: 64, Path: "/", Targets: allTargets},
		{ID: scPlain256, Title: "plain proxy, 256 connections, ~200-byte JSON, keep-alive", Connections: 256, Path: "/", Targets: allTargets},
		{ID: scPolicies, Title: s3, Connections: 64, Path: "/", Targets: []string{bench.Direct, bench.Portico, bench.Nginx}},
		{ID: scBody64k, Title: "64 KiB response body, 64 connections, keep-alive", Connections: 64, Path: "/64k", Targets: allTargets},
		{ID: scClose, Title: "new connection per request (Connection: close), 64 connections, ~200-byte JSON", Connections: 64, Path: "/", Close: true, Targets: allTargets},
	}
}

// harness is one run's processes and settings.
type harness struct {
	o        options
	ports    ports
	proc     bench.Proc
	ps       *processes
	wrkCores string // "" when unpinned
	srvCores string
	jwt      jwtSetup
	byName   map[string]*process
	logs     []string // access log files, emptied before each logged run
}

func run(ctx context.Context, o options) error {
	started := time.Now()
	h := &harness{o: o, ports: newPorts(o.host, o.basePort), proc: bench.Proc{Root: "/proc"},
		ps: &processes{dir: o.work, pidFile: filepath.Join(o.work, "pids")}, byName: map[string]*process{}}
	defer h.ps.stopAll()
	if !o.unpinned {
		h.wrkCores, h.srvCores = "0", "1"
	}
	if err := h.portsFree(); err != nil {
		return err
	}
	policiesOn, notes, err := h.startAll(ctx)
	if err != nil {
		return err
	}
	scs := filterScenarios(scenarios(policiesOn), o.only)
	if len(scs) == 0 {
		return fmt.Errorf("no scenario matches -scenarios %q", o.only)
	}
	rep := &bench.Report{
		Date: started.Format(time.RFC3339), Layout: "pinned", Rounds: o.rounds,
		Duration: o.duration.String(), Versions: versions(ctx, o), Cores: h.cores(), Notes: notes, Scenarios: scs,
	}
	if o.unpinned {
		rep.Layout = "unpinned"
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("wrk -t%d; every proxy and the backend run one worker (GOMAXPROCS=1, worker_processes 1, nbthread 1)", o.wrkThreads))
	fmt.Fprintf(os.Stderr, "peerbench: %d scenarios x %d rounds, %s per run; cores %v\n", len(scs), o.rounds, o.duration, rep.Cores)
	for round := 1; round <= o.rounds; round++ {
		for _, sc := range scs {
			n := len(sc.Targets)
			for i := range n {
				target := sc.Targets[(i+round-1)%n] // rotate the order each round
				s, err := h.measure(ctx, sc, target, round)
				if err != nil {
					return err
				}
				rep.Samples = append(rep.Samples, s)
				fmt.Fprintf(os.Stderr, "round %d %-13s %-8s %9.0f req/s  p99 %6.2f ms  cpu %6.2f s/100k  errors %d\n",
					round, sc.ID, target, s.Wrk.RPS, float64(s.Wrk.P99)/1e6, s.CPUPer100k(), s.Wrk.Errors())
			}
		}
	}
	if n, err := h.accessLogDrops(ctx); err == nil && n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("Portico dropped %.0f access-log lines in the policies scenario (writer fell behind)", n))
	}
	rep.Summaries = bench.Summarize(scs, rep.Samples)
	rep.Goals = bench.Goals(rep.Samples, bench.GoalScenarios{Plain64: scPlain64, Plain256: scPlain256, Policies: scPolicies, PoliciesOn: policiesOn})
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	path, err := writeJSON(o.results, rep, started)
	if err != nil {
		return err
	}
	if err := bench.WriteTables(os.Stdout, rep); err != nil {
		return err
	}
	fmt.Println("\nJSON report:", path)
	return nil
}

func filterScenarios(all []bench.Scenario, only string) []bench.Scenario {
	if only == "" {
		return all
	}
	want := map[string]bool{}
	for id := range strings.SplitSeq(only, ",") {
		want[strings.TrimSpace(id)] = true
	}
	var out []bench.Scenario
	for _, sc := range all {
		if want[sc.ID] {
			out = append(out, sc)
		}
	}
	return out
}

func checkLoopback(host string) error {
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-host %q is not a loopback address", host)
	}
	return nil
}

// portsFree fails early, naming the port, when another program holds one.
func (h *harness) portsFree() error {
	p := h.ports
	for _, port := range []int{p.backend, p.portico, p.porticoAdmin, p.policies, p.policiesAdmin, p.nginx, p.nginxLogged, p.haproxy, p.caddy} {
		ln, err := net.Listen("tcp", p.addr(port))
		if err != nil {
			return fmt.Errorf("port %d is in use; pick other ports with -base-port: %w", port, err)
		}
		ln.Close()
	}
	return nil
}

// startAll starts the backend and every proxy and waits until each answers.
// It reports whether Portico accepted the policies configuration.
func (h *harness) startAll(ctx context.Context) (policiesOn bool, notes []string, err error) {
	o, p, dir := h.o, h.ports, h.o.work
	if h.jwt, err = newJWT(dir); err != nil {
		return false, nil, err
	}
	type spec struct {
		name string
		env  []string
		argv []string
		url  string
	}
	var specs []spec
	specs = append(specs, spec{"backend", []string{"GOMAXPROCS=1"}, []string{o.backend, "-addr", p.addr(p.backend)}, p.url(p.backend)})

	cfgDir := filepath.Join(o.benchDir, "configs")
	specs = append(specs, spec{"portico", porticoEnv(p, p.portico, p.porticoAdmin, "", nil),
		[]string{o.portico, "gateway", "--config", filepath.Join(cfgDir, "portico-plain.yaml")}, p.url(p.portico)})

	accessLog := filepath.Join(dir, "portico-access.log")
	polEnv := porticoEnv(p, p.policies, p.policiesAdmin, accessLog, h.jwt.env)
	polCfg := filepath.Join(cfgDir, "portico-policies.yaml")
	ok, reason, err := validate(ctx, o.portico, polCfg, polEnv)
	if err != nil {
		return false, nil, err
	}
	if !ok {
		notes = append(notes, "scenario "+scPolicies+" ran Portico with the access log only: portico validate does not accept bench/configs/portico-policies.yaml yet ("+reason+")")
		polCfg = filepath.Join(cfgDir, "portico-accesslog.yaml")
	}
	specs = append(specs, spec{"portico-policies", polEnv, []string{o.portico, "gateway", "--config", polCfg}, p.url(p.policies)})

	data := templateData{Dir: dir, Host: p.host, Backend: p.addr(p.backend), Listen: p.addr(p.nginx), ListenLogged: p.addr(p.nginxLogged)}
	if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o755); err != nil {
		return false, nil, err
	}
	ngx, err := render(o.benchDir, "nginx.conf", dir, "nginx.conf", data)
	if err != nil {
		return false, nil, err
	}
	specs = append(specs, spec{"nginx", nil, []string{"nginx", "-p", dir, "-c", ngx, "-e", filepath.Join(dir, "nginx-error.log")}, p.url(p.nginx)})

	data.Listen = p.addr(p.haproxy)
	hap, err := render(o.benchDir, "haproxy.cfg", dir, "haproxy.cfg", data)
	if err != nil {
		return false, nil, err
	}
	specs = append(specs, spec{"haproxy", nil, []string{"haproxy", "-db", "-f", hap}, p.url(p.haproxy)})

	data.Listen = p.addr(p.caddy)
	cad, err := render(o.benchDir, "Caddyfile", dir, "Caddyfile", data)
	if err != nil {
		return false, nil, err
	}
	caddyEnv := []string{"GOMAXPROCS=1", "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	specs = append(specs, spec{"caddy", caddyEnv, []string{"caddy", "run", "--config", cad, "--adapter", "caddyfile"}, p.url(p.caddy)})

	for _, s := range specs {
		proc, err := h.ps.start(s.name, h.srvCores, s.env, s.argv...)
		if err != nil {
			return false, nil, err
		}
		if err := waitHTTP(ctx, proc, s.url, 15*time.Second); err != nil {
			return false, nil, err
		}
		h.byName[s.name] = proc
	}
	h.logs = []string{accessLog, filepath.Join(dir, "nginx-access.log")}
	return ok, notes, nil
}

func (p ports) url(port int) string { return "http://" + p.addr(port) }

// endpoint is the URL and process of a target in a scenario.
func (h *harness) endpoint(sc bench.Scenario, target string) (string, *process) {
	p := h.ports
	policies := sc.ID == scPolicies
	switch target {
	case bench.Portico:
		if policies {
			return p.url(p.policies), h.byName["portico-policies"]
		}
		return p.url(p.portico), h.byName["portico"]
	case bench.Nginx:
		if policies {
			return p.url(p.nginxLogged), h.byName["nginx"]
		}
		return p.url(p.nginx), h.byName["nginx"]
	case bench.HAProxy:
		return p.url(p.haproxy), h.byName["haproxy"]
	case bench.Caddy:
		return p.url(p.caddy), h.byName["caddy"]
	}
	return p.url(p.backend), h.byName["backend"]
}

// measure runs one warm-up (in the first round) and one measured wrk run
// against target, reading CPU time and peak RSS around the measured run.
func (h *harness) measure(ctx context.Context, sc bench.Scenario, target string, round int) (bench.Sample, error) {
	base, proc := h.endpoint(sc, target)
	url := base + sc.Path
	if round == 1 && h.o.warmup > 0 {
		if _, err := h.wrk(ctx, sc, url, h.o.warmup); err != nil {
			return bench.Sample{}, fmt.Errorf("%s %s warm-up: %w", sc.ID, target, err)
		}
	}
	if sc.ID == scPolicies {
		for _, f := range h.logs {
			if err := os.Truncate(f, 0); err != nil && !os.IsNotExist(err) {
				return bench.Sample{}, err
			}
		}
	}
	// Let the previous run's connections close and the processes settle.
	select {
	case <-ctx.Done():
		return bench.Sample{}, ctx.Err()
	case <-time.After(300 * time.Millisecond):
	}
	pid, backendPID := proc.Pid(), h.byName["backend"].Pid()
	if err := h.proc.ResetPeakRSS(pid); err != nil {
		return bench.Sample{}, fmt.Errorf("reset peak RSS of %s: %w", proc.name, err)
	}
	cpu0, err := h.proc.TreeCPUTicks(pid)
	if err != nil {
		return bench.Sample{}, err
	}
	be0, err := h.proc.TreeCPUTicks(backendPID)
	if err != nil {
		return bench.Sample{}, err
	}
	res, err := h.wrk(ctx, sc, url, h.o.duration)
	if err != nil {
		return bench.Sample{}, fmt.Errorf("%s %s round %d: %w", sc.ID, target, round, err)
	}
	cpu1, err := h.proc.TreeCPUTicks(pid)
	if err != nil {
		return bench.Sample{}, err
	}
	be1, err := h.proc.TreeCPUTicks(backendPID)
	if err != nil {
		return bench.Sample{}, err
	}
	rss, err := h.proc.TreePeakRSSKiB(pid)
	if err != nil {
		return bench.Sample{}, err
	}
	return bench.Sample{Scenario: sc.ID, Target: target, Round: round, Wrk: res,
		CPUSeconds: ticks(cpu1 - cpu0), BackendCPUSeconds: ticks(be1 - be0), PeakRSSKiB: rss}, nil
}

// ticks converts clock ticks to seconds; Linux reports USER_HZ = 100.
func ticks(n uint64) float64 { return float64(n) / 100 }

// wrk runs one bounded wrk and parses its output.
func (h *harness) wrk(ctx context.Context, sc bench.Scenario, url string, d time.Duration) (bench.WrkResult, error) {
	args := []string{"-t", strconv.Itoa(h.o.wrkThreads), "-c", strconv.Itoa(sc.Connections),
		"-d", strconv.Itoa(int(d.Seconds())) + "s", "--timeout", "5s", "--latency",
		"-s", filepath.Join(h.o.benchDir, "wrk", "report.lua")}
	if sc.Close {
		args = append(args, "-H", "Connection: close")
	}
	if sc.ID == scPolicies {
		args = append(args, "-H", "Authorization: Bearer "+h.jwt.token)
	}
	args = append(args, url)
	argv := append([]string{"wrk"}, args...)
	if h.wrkCores != "" {
		argv = append([]string{"taskset", "-c", h.wrkCores}, argv...)
	}
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return bench.WrkResult{}, ctx.Err()
		}
		return bench.WrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	res, err := bench.ParseWrk(string(out))
	if err != nil {
		return bench.WrkResult{}, fmt.Errorf("%w\n%s", err, out)
	}
	return res, nil
}

// cores reports where each process may run, read back from /proc.
func (h *harness) cores() map[string]string {
	m := map[string]string{"wrk": h.wrkCores}
	if h.wrkCores == "" {
		m["wrk"] = "any"
	}
	for name, p := range h.byName {
		c, err := h.proc.CPUsAllowed(p.Pid())
		if err != nil {
			c = "unknown"
		}
		m[name] = c
	}
	return m
}

// accessLogDrops reads portico_access_log_dropped_total from the policies
// instance's admin API.
func (h *harness) accessLogDrops(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.ports.url(h.ports.policiesAdmin)+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "portico_access_log_dropped_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no portico_access_log_dropped_total in /metrics")
}

func versions(ctx context.Context, o options) map[string]string {
	first := func(argv ...string) string {
		out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if line == "" {
			return "unknown"
		}
		return line
	}
	return map[string]string{
		"portico": first(o.portico, "version") + " " + o.commit,
		"nginx":   first("nginx", "-v"),
		"haproxy": first("haproxy", "-v"),
		"caddy":   first("caddy", "version"),
		"go":      first("go", "version"),
		"wrk":     first("wrk", "-v"),
		"kernel":  first("uname", "-r"),
	}
}

func writeJSON(dir string, rep *bench.Report, started time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "peerbench-"+rep.Layout+"-"+started.Format("20060102-150405")+".json")
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
