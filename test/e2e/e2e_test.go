// Package e2e runs the real portico binary: the gateway in front of echo
// backends, reloads by signal, graceful shutdown, and the validate command.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portico-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "portico")
	build := exec.Command("go", "build", "-o", binary, "github.com/portico-dev/portico/cmd/portico")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build portico:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type proc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	exited chan error
}

// start runs the binary with args; it is killed when the test ends.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
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

func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d in 10s (last error %v)", url, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func gatewayConfig(listen, admin, backend string, extra string) string {
	return fmt.Sprintf(`
listeners:
  - name: public
    address: %q
admin:
  address: %q
shutdown:
  drain_timeout: 5s
services:
  - name: echo
    endpoints:
      - url: http://%s
routes:
  - name: echo
    match: {path: "/echo/{rest...}"}
    service: echo
    rewrite: {strip_prefix: /echo}
%s`, listen, admin, backend, extra)
}

func TestGatewayBinary(t *testing.T) {
	backendAddr, listen, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, "echo", "--listen", backendAddr, "--name", "e2e-echo")
	waitHTTP(t, "http://"+backendAddr+"/", 200)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "portico.yaml")
	if err := os.WriteFile(cfgPath, []byte(gatewayConfig(listen, admin, backendAddr, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := start(t, "gateway", "--config", cfgPath)
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	resp, err := http.Get("http://" + listen + "/echo/hello?name=portico")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var full map[string]any
	if err := json.Unmarshal(body, &full); err != nil {
		t.Fatalf("reply %q: %v", body, err)
	}
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || full["path"] != "/hello" || full["server"] != "e2e-echo" || full["request_id"] != id || id == "" {
		t.Fatalf("status %d id %q reply %s", resp.StatusCode, id, body)
	}

	// The access log line for that request is on stdout.
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(gw.stdout.String(), id) {
		if time.Now().After(deadline) {
			t.Fatalf("no access log line with request id %s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	line := lineWith(gw.stdout.String(), id)
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil || entry["route"] != "echo" || entry["status"] != float64(200) {
		t.Fatalf("access log line %q (%v)", line, err)
	}

	// SIGHUP reloads an edited file.
	extra := `  - name: hello
    match: {path: /hello}
    direct_response: {body: "hello"}
`
	if err := os.WriteFile(cfgPath, []byte(gatewayConfig(listen, admin, backendAddr, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = gw.cmd.Process.Signal(syscall.SIGHUP)
	waitHTTP(t, "http://"+listen+"/hello", 200)

	// An invalid file is rejected; the gateway keeps serving.
	if err := os.WriteFile(cfgPath, []byte("routes: [ {name: x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = gw.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(3 * time.Second)
	for !strings.Contains(gw.stderr.String(), "configuration rejected") {
		if time.Now().After(deadline) {
			t.Fatal("invalid configuration was not reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitHTTP(t, "http://"+listen+"/hello", 200)

	// SIGTERM drains an in-flight request, then the process exits 0.
	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/echo/delay/500ms")
		if err != nil {
			inflight <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	time.Sleep(150 * time.Millisecond)
	_ = gw.cmd.Process.Signal(syscall.SIGTERM)
	if code := <-inflight; code != 200 {
		t.Fatalf("in-flight request during shutdown got %d", code)
	}
	select {
	case err := <-gw.exited:
		gw.exited <- err
		if err != nil {
			t.Fatalf("gateway exited with %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("gateway did not exit within the drain timeout")
	}
}

func lineWith(s, needle string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return sc.Text()
		}
	}
	return ""
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`
services:
  - name: a
    endpoints: [{url: "http://127.0.0.1:1"}]
  - name: unused
    endpoints: [{url: "http://127.0.0.1:2"}]
routes:
  - name: r1
    match: {path: /x, headers: [{name: X, regex: "("}]}
    service: missing
    timeout: 5
  - name: r1
    match: {path: /y}
    servce: a
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "validate", "--config", bad)
	if code != 1 {
		t.Fatalf("exit code %d for an invalid file; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"bad.yaml:10", "routes[0].match.headers[0].regex", "missing", "routes[0].timeout", "routes[1].name", "servce"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}

	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`
services:
  - name: a
    endpoints: [{url: "http://127.0.0.1:1"}]
  - name: unused
    endpoints: [{url: "http://127.0.0.1:2"}]
routes:
  - name: first
    match: {path: "/u/{id}", methods: [GET, POST]}
    service: a
  - name: second
    match: {path: "/u/{name}", methods: [GET]}
    service: a
`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "validate", "--config", good)
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Fatalf("exit %d for a valid file:\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "unused") || !strings.Contains(stderr, "second") {
		t.Fatalf("warnings missing (unused service, shadowed route):\n%s", stderr)
	}
}

func TestVersionHelpAndCompletion(t *testing.T) {
	stdout, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "portico ") {
		t.Fatalf("version: %d %q", code, stdout)
	}
	for _, sub := range []string{"gateway", "validate", "echo", "version", "completion"} {
		stdout, _, code := run(t, sub, "--help")
		if code != 0 || !strings.Contains(stdout, "Usage:") {
			t.Fatalf("%s --help: %d %q", sub, code, stdout)
		}
	}
	stdout, _, code = run(t, "completion", "bash")
	if code != 0 || !strings.Contains(stdout, "bash completion") {
		t.Fatalf("completion bash: %d", code)
	}
}

func TestQuickstartConfigIsValid(t *testing.T) {
	stdout, stderr, code := run(t, "validate", "--config", "../../examples/quickstart/portico.yaml")
	if code != 0 {
		t.Fatalf("quick start configuration: %s %s", stdout, stderr)
	}
	if strings.Contains(stderr, "warning") {
		t.Fatalf("quick start configuration has warnings: %s", stderr)
	}
}
