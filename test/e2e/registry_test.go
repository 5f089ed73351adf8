package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/etcdtest"
)

// stampedBuffer collects a process's output and the time each line of it
// arrived, so a test can measure from the moment a process said something.
type stampedBuffer struct {
	mu    sync.Mutex
	part  bytes.Buffer // an unfinished line
	lines []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (s *stampedBuffer) Write(p []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part.Write(p)
	for {
		line, err := s.part.ReadString('\n')
		if err != nil { // no newline yet: keep the rest for the next write
			rest := []byte(line)
			s.part.Reset()
			s.part.Write(rest)
			return len(p), nil
		}
		s.lines = append(s.lines, stampedLine{at: now, text: strings.TrimSuffix(line, "\n")})
	}
}

// line returns the first complete line containing sub and when it arrived.
func (s *stampedBuffer) line(sub string) (stampedLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l.text, sub) {
			return l, true
		}
	}
	return stampedLine{}, false
}

// startTee is start with the process's stdout copied to tee as well.
func startTee(t *testing.T, tee io.Writer, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(p.stdout, tee), p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// awaitLine waits up to d for a line of out containing sub. It gives up
// early when the process exits.
func awaitLine(p *proc, out *stampedBuffer, sub string, d time.Duration) (stampedLine, error) {
	deadline := time.Now().Add(d)
	for {
		if l, ok := out.line(sub); ok {
			return l, nil
		}
		select {
		case err := <-p.exited:
			p.exited <- err // for the cleanup's wait
			if l, ok := out.line(sub); ok {
				return l, nil
			}
			return stampedLine{}, fmt.Errorf("exited (%v) before printing %q; stderr:\n%s", err, sub, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return stampedLine{}, fmt.Errorf("did not print %q within %v", sub, d)
		}
	}
}

// echoProc is a running `portico echo`.
type echoProc struct {
	*proc
	name string
	addr string // the address it listens on, host:port
	out  *stampedBuffer
}

// url is the endpoint URL the gateway gives the instance.
func (e *echoProc) url() string { return "http://" + e.addr }

// kill stops the process with SIGKILL: it cannot deregister.
func (e *echoProc) kill(t *testing.T) {
	t.Helper()
	if err := e.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-e.exited
	e.exited <- err // for the cleanup's wait
}

// startEcho runs `portico echo --listen 127.0.0.1:0 --name name args...` and
// waits until it listens.
func startEcho(t *testing.T, name string, args ...string) (*echoProc, error) {
	t.Helper()
	out := &stampedBuffer{}
	p := startTee(t, out, append([]string{"echo", "--listen", "127.0.0.1:0", "--name", name}, args...)...)
	l, err := awaitLine(p, out, "listening on ", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("echo %s: %w", name, err)
	}
	f := strings.Fields(l.text)
	return &echoProc{proc: p, name: name, addr: f[len(f)-1], out: out}, nil
}

// registerEcho runs an echo process that registers itself as instance id
// of service orders in the registry at admin, and returns when it printed
// that it registered (the time of that line is the registration time).
func registerEcho(t *testing.T, admin, id, ttl string) (*echoProc, time.Time) {
	t.Helper()
	e, at, err := tryRegisterEcho(t, admin, id, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return e, at
}

func tryRegisterEcho(t *testing.T, admin, id, ttl string) (*echoProc, time.Time, error) {
	t.Helper()
	e, err := startEcho(t, "echo-"+id, "--register", "http://"+admin, "--service", "orders", "--id", id, "--ttl", ttl)
	if err != nil {
		return nil, time.Time{}, err
	}
	l, err := awaitLine(e.proc, e.out, "registered orders/"+id, 10*time.Second)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("echo %s: %w", id, err)
	}
	return e, l.at, nil
}

// gatewayProc is a running `portico gateway`.
type gatewayProc struct {
	*proc
	listen, admin string
}

// ordersURL is the gateway URL routed to the service orders.
func (g *gatewayProc) ordersURL() string { return "http://" + g.listen + "/orders/x" }

// startDiscoveryGateway runs a gateway whose service orders discovers its
// endpoints with discoveryYAML (a flow mapping), with registryYAML as its
// top-level registry section (may be empty), and waits until it is ready.
func startDiscoveryGateway(t *testing.T, registryYAML, discoveryYAML string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{listen: freeAddr(t), admin: freeAddr(t)}
	cfg := fmt.Sprintf(`
listeners:
  - name: public
    address: %q
admin:
  address: %q
%s
services:
  - name: orders
    discovery: %s
routes:
  - name: orders
    match: {path: "/orders/{rest...}"}
    service: orders
    rewrite: {strip_prefix: /orders}
`, g.listen, g.admin, registryYAML, discoveryYAML)
	cfgPath := filepath.Join(t.TempDir(), "portico.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proc = start(t, "gateway", "--config", cfgPath)
	waitHTTP(t, "http://"+g.admin+"/readyz", 200)
	return g
}

// discoveredService is the part of a service in /admin/services these
// tests read.
type discoveredService struct {
	Name      string `json:"name"`
	Endpoints []struct {
		URL       string `json:"url"`
		Available bool   `json:"available"`
		Ejected   bool   `json:"ejected"`
	} `json:"endpoints"`
	Discovery *struct {
		Provider  string `json:"provider"`
		Endpoints int    `json:"endpoints"`
		Synced    bool   `json:"synced"`
		Error     string `json:"error"`
	} `json:"discovery"`
}

// ordersView returns the service orders as /admin/services shows it.
func ordersView(t *testing.T, admin string) discoveredService {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/admin/services")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Services []discoveredService `json:"services"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("/admin/services: %v: %s", err, body)
	}
	for _, s := range out.Services {
		if s.Name == "orders" {
			return s
		}
	}
	t.Fatalf("service orders not in /admin/services: %s", body)
	return discoveredService{}
}

// endpointState reports whether the endpoint at url is in the pool of
// orders, and if so whether it is available and whether outlier detection
// ejected it.
func endpointState(t *testing.T, admin, url string) (listed, available, ejected bool) {
	t.Helper()
	for _, e := range ordersView(t, admin).Endpoints {
		if e.URL == url {
			return true, e.Available, e.Ejected
		}
	}
	return false, false, false
}

// registryStatus returns the STATUS column of instance id of service
// orders as `portico registry ls orders` prints it, or "" when the
// instance is not listed.
func registryStatus(t *testing.T, admin, id string) string {
	t.Helper()
	stdout, stderr, code := run(t, "registry", "ls", "orders", "--url", "http://"+admin)
	if code != 0 {
		t.Fatalf("portico registry ls orders: exit %d: %s", code, stderr)
	}
	lines := strings.Split(stdout, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("portico registry ls orders printed no table header:\n%s", stdout)
	}
	for _, line := range lines[1:] {
		// ID VERSION ADDRESS PROTOCOL ZONE STATUS LAST-HEARTBEAT
		if f := strings.Fields(line); len(f) >= 6 && f[0] == id {
			return f[5]
		}
	}
	return ""
}

// firstSuccess sends a GET to url every 5ms until one is answered 200 by
// the echo server want, stop is closed or d passed, and sends the time
// the answer arrived (zero if none did).
func firstSuccess(url, want string, d time.Duration, stop <-chan struct{}) <-chan time.Time {
	got := make(chan time.Time, 1)
	go func() {
		c := &http.Client{Timeout: 2 * time.Second}
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			if server, err := getServer(c, url); err == nil && server == want {
				got <- time.Now()
				return
			}
			select {
			case <-stop:
				got <- time.Time{}
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		got <- time.Time{}
	}()
	return got
}

// TestRegisteredInstanceTakesTraffic: an echo process that registers itself
// with the gateway's embedded registry is served traffic within a second of
// its registration.
func TestRegisteredInstanceTakesTraffic(t *testing.T) {
	g := startDiscoveryGateway(t, "", "{registry: {}}")
	stop := make(chan struct{})
	defer close(stop)
	first := firstSuccess(g.ordersURL(), "echo-a", 15*time.Second, stop)

	_, registered := registerEcho(t, g.admin, "a", "2s")
	var served time.Time
	select {
	case served = <-first:
	case <-time.After(15 * time.Second):
	}
	if served.IsZero() {
		t.Fatalf("the registered instance took no traffic; /admin/services: %+v", ordersView(t, g.admin))
	}
	took := served.Sub(registered)
	t.Logf("first request served by the instance %v after it logged its registration", took)
	if took > time.Second {
		t.Fatalf("first traffic %v after registration, want at most 1s", took)
	}
}

// TestKilledInstanceLeavesWithoutErrors: of two registered instances under
// steady load, one is killed with SIGKILL. No GET fails (retried on the
// other instance); outlier detection ejects the dead endpoint at once, the
// registry marks the instance critical after its TTL (which takes it out of
// the pool), and removes it after the grace period.
func TestKilledInstanceLeavesWithoutErrors(t *testing.T) {
	const ttl, grace = 2 * time.Second, 3 * time.Second
	g := startDiscoveryGateway(t, "registry: {grace_period: 3s}", "{registry: {}}")
	registerEcho(t, g.admin, "a", ttl.String())
	victim, _ := registerEcho(t, g.admin, "b", ttl.String())
	waitUntil(t, 5*time.Second, "the gateway to route to both instances", func() bool { return servesAll(g, "echo-a", "echo-b") })

	stop := make(chan struct{})
	res, wait := steadyLoad(g.ordersURL(), 12000, stop)
	halt := sync.OnceFunc(func() { close(stop); wait() })
	defer halt()
	waitUntil(t, 5*time.Second, "both instances serving", func() bool {
		return res.served("echo-a") > 0 && res.served("echo-b") > 0
	})

	victim.kill(t)
	killed := time.Now()
	var ejected bool
	unavailable := waitUntil(t, 3*time.Second, "the killed endpoint to be taken out of rotation", func() bool {
		listed, available, ej := endpointState(t, g.admin, victim.url())
		if !listed {
			t.Fatalf("the killed endpoint left the pool %v after the kill, before it was taken out of rotation", time.Since(killed))
		}
		ejected = ej
		return !available
	})
	t.Logf("killed endpoint unavailable %v after the kill (ejected=%v)", unavailable, ejected)
	if !ejected {
		t.Fatal("the killed endpoint is unavailable but not ejected by outlier detection")
	}

	waitUntil(t, ttl+2*time.Second-time.Since(killed), "the killed endpoint to leave the pool", func() bool {
		listed, _, _ := endpointState(t, g.admin, victim.url())
		return !listed
	})
	removed := time.Since(killed)
	t.Logf("killed endpoint left the pool %v after the kill (TTL %v)", removed, ttl)

	// The registry keeps the instance, critical, for the grace period.
	var status string
	waitUntil(t, 2*time.Second, "portico registry ls to show the instance critical", func() bool {
		status = registryStatus(t, g.admin, "b")
		return status == "critical" || status == ""
	})
	if status != "critical" {
		t.Fatalf("the killed instance left the registry %v after the kill without being seen critical", time.Since(killed))
	}
	if s := registryStatus(t, g.admin, "a"); s != "passing" {
		t.Fatalf("the live instance is %q in the registry, want passing", s)
	}
	waitUntil(t, ttl+grace+3*time.Second-time.Since(killed), "the registry to remove the killed instance", func() bool {
		return registryStatus(t, g.admin, "b") == ""
	})
	t.Logf("killed instance removed from the registry %v after the kill (grace %v)", time.Since(killed), grace)

	// The survivor keeps serving after the removal.
	before := res.served("echo-a")
	waitUntil(t, 3*time.Second, "traffic after the removal", func() bool { return res.served("echo-a") >= before+20 })
	halt()
	if n := res.sent.Load(); res.failed.Load() != 0 || n < 200 {
		t.Fatalf("%d of %d GETs failed (last: %s)", res.failed.Load(), n, res.lastErr)
	}
	t.Logf("%d GETs, none failed; served by %v", res.sent.Load(), res.byServer)
}

// TestInstanceJoinsUnderLoad: an instance that registers while another one
// serves steady load takes its share at once, and no request fails.
func TestInstanceJoinsUnderLoad(t *testing.T) {
	g := startDiscoveryGateway(t, "", "{registry: {}}")
	registerEcho(t, g.admin, "a", "5s")
	waitUntil(t, 5*time.Second, "the gateway to route to the first instance", func() bool { return servesAll(g, "echo-a") })

	stop := make(chan struct{})
	res, wait := steadyLoad(g.ordersURL(), 6000, stop)
	halt := sync.OnceFunc(func() { close(stop); wait() })
	defer halt()
	waitUntil(t, 5*time.Second, "the first instance serving", func() bool { return res.served("echo-a") >= 20 })

	_, registered := registerEcho(t, g.admin, "b", "5s")
	waitUntil(t, 5*time.Second, "the joining instance to take traffic", func() bool { return res.served("echo-b") > 0 })
	t.Logf("the joining instance took traffic %v after it logged its registration", time.Since(registered))
	waitUntil(t, 5*time.Second, "the joining instance to take its share", func() bool { return res.served("echo-b") >= 50 })
	after := res.served("echo-a")
	waitUntil(t, 5*time.Second, "both instances to keep serving", func() bool { return res.served("echo-a") >= after+50 })

	halt()
	if n := res.sent.Load(); res.failed.Load() != 0 || n < 200 {
		t.Fatalf("%d of %d GETs failed (last: %s)", res.failed.Load(), n, res.lastErr)
	}
	t.Logf("%d GETs, none failed; served by %v", res.sent.Load(), res.byServer)
}

// burst sends n GETs to each gateway and fails the test if any fails. It
// returns the echo servers that answered.
func burst(t *testing.T, what string, n int, gws map[string]*gatewayProc) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	c := &http.Client{Timeout: 5 * time.Second}
	for name, g := range gws {
		for i := range n {
			server, err := getServer(c, g.ordersURL())
			if err != nil {
				t.Fatalf("%s: GET %d through gateway %s: %v", what, i, name, err)
			}
			seen[server] = true
		}
	}
	return seen
}

// servesAll reports whether a few GETs through g reach every one of names.
func servesAll(g *gatewayProc, names ...string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	seen := map[string]bool{}
	for range 2 * len(names) {
		if server, err := getServer(c, g.ordersURL()); err == nil {
			seen[server] = true
		}
	}
	for _, n := range names {
		if !seen[n] {
			return false
		}
	}
	return true
}

// waitGateways polls cond on every gateway until it held on each, and
// returns how long each took from since. It fails the test when one has not
// within d of since.
func waitGateways(t *testing.T, since time.Time, d time.Duration, what string, gws map[string]*gatewayProc, cond func(*gatewayProc) bool) map[string]time.Duration {
	t.Helper()
	took := map[string]time.Duration{}
	for len(took) < len(gws) {
		for name, g := range gws {
			if _, done := took[name]; !done && cond(g) {
				took[name] = time.Since(since).Round(time.Millisecond)
			}
		}
		if len(took) < len(gws) && time.Since(since) > d {
			t.Fatalf("%s: not within %v on every gateway (done: %v)", what, d, took)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return took
}

// TestEtcdSharedRegistry: gateways A and B keep their registry in one etcd
// cluster, gateway C reads that cluster's registry keys with etcd
// discovery. An instance registered through A is routed to by all three.
// While etcd is down every gateway keeps serving the last set and reports
// the discovery failure; once it is back, an instance registered through A
// reaches all three.
func TestEtcdSharedRegistry(t *testing.T) {
	srv := etcdtest.Start(t)
	eps := `["` + strings.Join(srv.Endpoints(), `", "`) + `"]`
	shared := "registry: {backend: etcd, etcd: {endpoints: " + eps + ", dial_timeout: 2s}}"
	gws := map[string]*gatewayProc{
		"A": startDiscoveryGateway(t, shared, "{registry: {}}"),
		"B": startDiscoveryGateway(t, shared, "{registry: {}}"),
		"C": startDiscoveryGateway(t, "", "{etcd: {endpoints: "+eps+", dial_timeout: 2s}}"),
	}
	a := gws["A"]

	// The TTL outlasts the outage: nothing expires while etcd is down.
	_, registered := registerEcho(t, a.admin, "one", "30s")
	took := waitGateways(t, registered, 10*time.Second, "routing to the instance", gws, func(g *gatewayProc) bool { return servesAll(g, "echo-one") })
	t.Logf("time from the registration to the first GET it served, per gateway: %v", took)
	if s := registryStatus(t, gws["B"].admin, "one"); s != "passing" {
		t.Fatalf("gateway B's registry shows the instance registered through A as %q, want passing", s)
	}

	srv.Stop()
	stopped := time.Now()
	burst(t, "right after etcd stopped", 20, gws)
	took = waitGateways(t, stopped, 15*time.Second, "the discovery failure to show", gws, func(g *gatewayProc) bool {
		d := ordersView(t, g.admin).Discovery
		return d != nil && d.Error != ""
	})
	t.Logf("time from stopping etcd to the discovery failure in /admin/services, per gateway: %v (A: %q)", took, ordersView(t, a.admin).Discovery.Error)
	if seen := burst(t, "while etcd is down", 20, gws); len(seen) != 1 || !seen["echo-one"] {
		t.Fatalf("while etcd is down the gateways answered from %v, want echo-one only", seen)
	}

	srv.Restart()
	restarted := time.Now()
	// A's registry answers 503 until its etcd client reconnects; echo
	// exits when its first registration fails, so start it again.
	var regErr error
	for attempt := 1; time.Since(restarted) < 20*time.Second; attempt++ {
		if _, registered, regErr = tryRegisterEcho(t, a.admin, "two", "30s"); regErr == nil {
			t.Logf("second instance registered %v after etcd restarted (attempt %d)", registered.Sub(restarted), attempt)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if regErr != nil {
		t.Fatalf("no registration through gateway A within 20s of etcd restarting: %v", regErr)
	}
	took = waitGateways(t, restarted, 20*time.Second, "routing to both instances", gws, func(g *gatewayProc) bool {
		return servesAll(g, "echo-one", "echo-two")
	})
	t.Logf("time from restarting etcd to routing to both instances, per gateway: %v (registered after %v)", took, registered.Sub(restarted).Round(time.Millisecond))
	took = waitGateways(t, restarted, 20*time.Second, "the discovery failure to clear", gws, func(g *gatewayProc) bool {
		d := ordersView(t, g.admin).Discovery
		return d != nil && d.Error == ""
	})
	t.Logf("time from restarting etcd to the discovery failure clearing, per gateway: %v", took)
	if seen := burst(t, "after etcd is back", 10, gws); !seen["echo-one"] || !seen["echo-two"] {
		t.Fatalf("after etcd is back the gateways answered from %v, want both instances", seen)
	}
}
