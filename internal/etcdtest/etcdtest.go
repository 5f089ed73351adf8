// Package etcdtest runs real etcd servers for tests: a private server per
// test (Start), owned by the test process and stopped when the test ends,
// or the shared server that CI starts (Shared).
//
// Both skip the test when etcd is not available, unless the environment
// variable PORTICO_REQUIRE_SERVICES is "1": then they fail it.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Environment variables the package reads.
const (
	// RequireEnv set to "1" turns a missing etcd into a test failure.
	RequireEnv = "PORTICO_REQUIRE_SERVICES"
	// SharedEnv holds the comma-separated client URLs of the shared
	// server, as .ci/run exports them.
	SharedEnv = "PORTICO_ETCD_ENDPOINTS"
)

// Timeouts of the helpers; generous, for a loaded machine.
const (
	readyTimeout = 30 * time.Second // a started server answers a Get
	stopTimeout  = 10 * time.Second // a SIGTERM'd server exits
	startRetries = 5                // fresh port pairs tried when a port was taken
	maxOutput    = 256 << 10        // bytes of etcd's output kept
)

// runMarker starts the line written to the output before each run.
const runMarker = "--- run: "

// Server is an etcd process the test owns: a single-member cluster on
// loopback ports with its data in a temporary directory.
type Server struct {
	t       testing.TB
	bin     string
	dataDir string
	client  string // client URL
	peer    string // peer URL
	out     *tailBuffer

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of etcd.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's result, set before exited closes
}

// Start runs a new etcd server for the test and waits until it answers. The
// server is stopped, and its data removed, when the test ends; its output
// is logged if the test failed.
//
// The server uses a 50ms heartbeat and a 500ms election timeout, so it
// grants leases as short as one second (the defaults raise them to two).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	s := &Server{t: t, bin: bin, dataDir: t.TempDir(), out: &tailBuffer{max: maxOutput}}
	// Registered first, so it runs last: after the server stopped, with
	// all of its output.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd output (%s):\n%s", s.client, s.out.String())
		}
	})
	t.Cleanup(s.shutdown)

	var err error
	for range startRetries {
		var ports [2]int
		if ports, err = freePorts(); err != nil {
			t.Fatalf("etcdtest: pick ports: %v", err)
		}
		s.client = "http://127.0.0.1:" + strconv.Itoa(ports[0])
		s.peer = "http://127.0.0.1:" + strconv.Itoa(ports[1])
		if err = s.run(); err == nil {
			return s
		}
		if !s.portTaken() {
			break
		}
		// Another process took a port between our probe and etcd's
		// bind: start over with a fresh data directory and ports.
		s.dataDir = t.TempDir()
		s.out.Reset()
	}
	t.Fatalf("etcdtest: start %s: %v\n%s", bin, err, s.out.String())
	return nil
}

// Endpoints returns the server's client URLs.
func (s *Server) Endpoints() []string { return []string{s.client} }

// Stop kills the server (SIGKILL, as in a crash) and waits for it to exit.
// Its data directory is kept for Restart. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Restart starts the server again on the same ports and data directory,
// after stopping it if it runs, and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The ports were free a moment ago and nothing else should take them,
	// but a loaded machine may still hold them briefly.
	deadline := time.Now().Add(readyTimeout)
	for {
		if err = s.run(); err == nil || !s.portTaken() || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("etcdtest: restart %s: %v\n%s", s.client, err, s.out.String())
	}
}

// run starts one etcd process and waits until it answers a Get.
func (s *Server) run() error {
	args := []string{
		"--name", "default",
		"--data-dir", s.dataDir,
		"--listen-client-urls", s.client,
		"--advertise-client-urls", s.client,
		"--listen-peer-urls", s.peer,
		"--initial-advertise-peer-urls", s.peer,
		"--initial-cluster", "default=" + s.peer,
		"--initial-cluster-state", "new",
		"--heartbeat-interval", "50",
		"--election-timeout", "500",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "error",
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	cmd.SysProcAttr = procAttr()
	fmt.Fprintf(s.out, "%s%s %s\n", runMarker, s.bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	if err := waitReady(s.Endpoints(), p.exited); err != nil {
		s.Stop()
		if p.err != nil {
			err = fmt.Errorf("%w (etcd exited: %v)", err, p.err)
		}
		return err
	}
	return nil
}

// portTaken reports whether the output of etcd's last run says a port was
// in use.
func (s *Server) portTaken() bool {
	out := s.out.String()
	if i := strings.LastIndex(out, runMarker); i >= 0 {
		out = out[i:]
	}
	return strings.Contains(out, "address already in use")
}

// shutdown stops the server for good: SIGTERM, then SIGKILL after
// stopTimeout.
func (s *Server) shutdown() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady polls endpoints with a Get until one answers, exited closes
// (the process died) or readyTimeout passes.
func waitReady(endpoints []string, exited <-chan struct{}) error {
	cli, err := NewClient(endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = cli.Get(ctx, "etcdtest-ready")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd at %v did not answer within %v: %w", endpoints, readyTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("etcd exited before it answered")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NewClient returns an etcd client of endpoints that does not log. The
// caller closes it.
func NewClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// Client returns a client of endpoints, closed when the test ends.
func Client(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := NewClient(endpoints)
	if err != nil {
		t.Fatalf("etcdtest: client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Shared returns the client URLs of the etcd server that CI runs for every
// package's tests, from PORTICO_ETCD_ENDPOINTS (comma-separated). The
// server is shared: keep to a key prefix of the test's own, and do not
// compact it or stop it.
func Shared(t testing.TB) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(SharedEnv))
	if v == "" {
		unavailable(t, SharedEnv+" is not set (.ci/run starts a shared etcd and sets it)")
	}
	var eps []string
	for ep := range strings.SplitSeq(v, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	cli, err := NewClient(eps)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Get(ctx, "etcdtest-ready")
		cancel()
		_ = cli.Close()
	}
	if err != nil {
		unavailable(t, fmt.Sprintf("the shared etcd at %s=%s does not answer: %v", SharedEnv, v, err))
	}
	return eps
}

// binary returns the path of the etcd binary, or ends the test.
func binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	const debian = "/usr/bin/etcd"
	if fi, err := os.Stat(debian); err == nil && !fi.IsDir() {
		return debian
	}
	unavailable(t, "etcd is not installed (not on PATH, nor at "+debian+"; apt-get install etcd-server)")
	return ""
}

// unavailable skips the test, or fails it when RequireEnv is "1".
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("etcd is required (%s=1): %s", RequireEnv, why)
	}
	t.Skipf("etcd is not available: %s", why)
}

// freePorts returns two distinct loopback ports that were free a moment
// ago.
func freePorts() ([2]int, error) {
	var ports [2]int
	var lns [2]net.Listener
	defer func() {
		for _, ln := range lns {
			if ln != nil {
				ln.Close()
			}
		}
	}()
	// Both listeners are open at once, so the ports differ.
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports, err
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// tailBuffer is a bytes.Buffer safe for concurrent use that keeps about
// the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	cut bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
		b.cut = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "[earlier output dropped]\n" + b.buf.String()
	}
	return b.buf.String()
}

func (b *tailBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
	b.cut = false
}
