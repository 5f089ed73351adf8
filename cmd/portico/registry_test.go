package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/registry"
)

const testReadToken = "read-secret-0123456789"

// testRegistry serves the registry API over a memory store.
func testRegistry(t *testing.T, opts registry.HandlerOptions) (*registry.Memory, *httptest.Server) {
	t.Helper()
	mem := registry.NewMemory(registry.MemoryOptions{History: 5})
	h, err := registry.NewHandler(mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = mem.Close()
	})
	return mem, srv
}

// lockedBuffer is a bytes.Buffer a running command and the test may share.
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

// runPortico runs the CLI with args until it returns or ctx ends.
func runPortico(ctx context.Context, stdout, stderr *lockedBuffer, args ...string) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func portico(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr lockedBuffer
	err := runPortico(ctx, &stdout, &stderr, args...)
	return stdout.String(), stderr.String(), err
}

func register(t *testing.T, mem *registry.Memory, service, id, version string) registry.Instance {
	t.Helper()
	in, err := mem.Register(context.Background(), registry.Instance{
		Service: service, ID: id, Version: version, Address: "127.0.0.1:8080", Zone: "z1",
	}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRegistryLs(t *testing.T) {
	t.Parallel()
	mem, srv := testRegistry(t, registry.HandlerOptions{})
	register(t, mem, "orders", "o-1", "v1")
	register(t, mem, "orders", "o-2", "v2")
	register(t, mem, "billing", "b-1", "")

	out, _, err := portico(t, "registry", "ls", "--url", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := "NAME     INSTANCES  PASSING  VERSIONS\n" +
		"billing  1          1        -\n" +
		"orders   2          2        v1,v2\n"
	if out != want {
		t.Fatalf("services table:\n%s\nwant:\n%s", out, want)
	}

	out, _, err = portico(t, "registry", "ls", "orders", "--url", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^o-1  v1       127\.0\.0\.1:8080  http      z1    passing  (<1s|\d+s) ago$`)
	if !strings.HasPrefix(out, "ID   VERSION  ADDRESS         PROTOCOL  ZONE  STATUS   LAST-HEARTBEAT\n") || !row.MatchString(out) || strings.Count(out, "\n") != 3 {
		t.Fatalf("instances table:\n%s", out)
	}

	out, _, err = portico(t, "registry", "ls", "orders", "--url", srv.URL, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Revision  int64               `json:"revision"`
		Instances []registry.Instance `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Revision != 3 || len(doc.Instances) != 2 || doc.Instances[1].Version != "v2" {
		t.Fatalf("json listing %q: %+v, %v", out, doc, err)
	}

	_, stderr, err := portico(t, "registry", "ls", "unknown", "--url", srv.URL)
	if err != nil || !strings.Contains(stderr, `no instances of "unknown"`) {
		t.Fatalf("unknown service: %q, %v", stderr, err)
	}
	if _, _, err := portico(t, "registry", "ls", "--url", srv.URL, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "--output: want table or json") {
		t.Fatalf("bad output format: %v", err)
	}
}

func TestRegistryShow(t *testing.T) {
	t.Parallel()
	mem, srv := testRegistry(t, registry.HandlerOptions{})
	want := register(t, mem, "orders", "o-1", "v1")
	out, _, err := portico(t, "registry", "show", "orders", "o-1", "--url", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var got registry.Instance
	if err := json.Unmarshal([]byte(out), &got); err != nil || !strings.Contains(out, "\n  \"id\": \"o-1\",\n") {
		t.Fatalf("show output %q: %v", out, err)
	}
	if got.ID != want.ID || got.Revision != want.Revision || !got.LastHeartbeat.Equal(want.LastHeartbeat) {
		t.Fatalf("show %+v, want %+v", got, want)
	}

	_, _, err = portico(t, "registry", "show", "orders", "o-9", "--url", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") || exitCode(err) != 1 {
		t.Fatalf("show unknown: %v", err)
	}
	if _, _, err := portico(t, "registry", "show", "orders", "--url", srv.URL); err == nil {
		t.Fatal("show with one argument succeeded")
	}
}

// The environment supplies the URL and the token; not parallel: it sets
// the environment.
func TestRegistryEnvironmentAndAuthErrors(t *testing.T) {
	mem, srv := testRegistry(t, registry.HandlerOptions{ReadToken: testReadToken})
	register(t, mem, "orders", "o-1", "v1")
	t.Setenv(envRegistryURL, srv.URL)
	t.Setenv(envRegistryToken, "")

	_, _, err := portico(t, "registry", "ls")
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized: a read token is required") {
		t.Fatalf("without a token: %v", err)
	}
	t.Setenv(envRegistryToken, testReadToken)
	if out, _, err := portico(t, "registry", "ls"); err != nil || !strings.Contains(out, "\norders  1 ") {
		t.Fatalf("with the environment's token: %q, %v", out, err)
	}
	if _, _, err := portico(t, "registry", "ls", "--token", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("--token overrides the environment: %v", err)
	}
	if _, _, err := portico(t, "registry", "ls", "--url", "localhost:9901"); err == nil || !strings.Contains(err.Error(), "http or https URL") {
		t.Fatalf("bad --url: %v", err)
	}
	// A registry that is not there: the error names the address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	_ = ln.Close()
	if _, _, err := portico(t, "registry", "ls", "--url", dead); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("unreachable registry: %v", err)
	}
}

func TestRegistryWatch(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", raw), func(t *testing.T) {
			t.Parallel()
			mem, srv := testRegistry(t, registry.HandlerOptions{})
			register(t, mem, "orders", "o-0", "v1")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr lockedBuffer
			args := []string{"registry", "watch", "orders", "--url", srv.URL, "--revision", "1"}
			if raw {
				args = append(args, "--json")
			}
			done := make(chan error, 1)
			go func() { done <- runPortico(ctx, &stdout, &stderr, args...) }()

			register(t, mem, "orders", "o-1", "v1")
			register(t, mem, "billing", "b-1", "v1")
			if err := mem.Deregister(context.Background(), "orders", "o-1"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "two events", func() bool { return strings.Count(stdout.String(), "\n") >= 2 })
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("interrupted watch: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("watch did not stop when interrupted")
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("output %q", stdout.String())
			}
			if !raw {
				want := []string{"2 put    orders/o-1 passing 127.0.0.1:8080", "4 delete orders/o-1 passing 127.0.0.1:8080"}
				if lines[0] != want[0] || lines[1] != want[1] {
					t.Fatalf("lines %q, want %q", lines, want)
				}
				return
			}
			for i, want := range []struct {
				typ string
				rev int64
			}{{"put", 2}, {"delete", 4}} {
				var ev registry.Event
				if err := json.Unmarshal([]byte(lines[i]), &ev); err != nil || ev.Type != want.typ || ev.Revision != want.rev || ev.Instance.ID != "o-1" {
					t.Fatalf("line %q: %+v, %v", lines[i], ev, err)
				}
			}
		})
	}
}

func TestRegistryWatchCompacted(t *testing.T) {
	t.Parallel()
	mem, srv := testRegistry(t, registry.HandlerOptions{})
	for i := range 8 { // more than the history of 5
		register(t, mem, "orders", fmt.Sprintf("o-%d", i), "v1")
	}
	_, _, err := portico(t, "registry", "watch", "--url", srv.URL, "--revision", "1")
	if !errors.Is(err, registry.ErrCompacted) || !strings.Contains(err.Error(), "410 Gone") {
		t.Fatalf("watch from a compacted revision: %v", err)
	}
}

func TestEchoRegisters(t *testing.T) {
	t.Parallel()
	mem, srv := testRegistry(t, registry.HandlerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runPortico(ctx, &stdout, &stderr, "echo", "--listen", "127.0.0.1:0",
			"--register", srv.URL, "--service", "orders", "--version", "v3", "--zone", "z9", "--ttl", "1s")
	}()
	var in registry.Instance
	// The registry holds the instance a moment before echo prints that it
	// registered: wait for both.
	eventually(t, "the registration", func() bool {
		list, _, err := mem.Instances(ctx, "orders")
		if err != nil || len(list) != 1 {
			return false
		}
		in = list[0]
		return strings.Contains(stdout.String(), "registered orders/")
	})
	listening := regexp.MustCompile(`listening on (127\.0\.0\.1:(\d+))`).FindStringSubmatch(stdout.String())
	if listening == nil {
		t.Fatalf("output %q", stdout.String())
	}
	if in.Address != listening[1] || in.Version != "v3" || in.Zone != "z9" || in.TTL.D() != time.Second ||
		!strings.HasSuffix(in.ID, fmt.Sprintf("-%d-%s", os.Getpid(), listening[2])) {
		t.Fatalf("registered %+v; output %q", in, stdout.String())
	}
	if !strings.Contains(stdout.String(), "registered orders/"+in.ID+" at "+in.Address) {
		t.Fatalf("output %q", stdout.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("echo did not stop")
	}
	if list, _, _ := mem.Instances(context.Background(), "orders"); len(list) != 0 {
		t.Fatalf("after shutdown: %+v", list)
	}
}

func TestEchoRegistrationFailsClearly(t *testing.T) {
	t.Parallel()
	_, srv := testRegistry(t, registry.HandlerOptions{Tokens: []registry.Token{{Name: "t", Token: "tok-0123456789", Services: []string{"echo"}}}})
	_, _, err := portico(t, "echo", "--listen", "127.0.0.1:0", "--register", srv.URL, "--token", "tok-0123456789", "--service", "orders")
	if err == nil || !strings.Contains(err.Error(), `403 Forbidden: this token may not write service "orders"`) {
		t.Fatalf("echo with a token for another service: %v", err)
	}
}

func TestSelfRegistrationAdvertise(t *testing.T) {
	t.Parallel()
	mem, srv := testRegistry(t, registry.HandlerOptions{})
	for i, tc := range []struct {
		addr      net.Addr
		advertise string
		want      string
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9001}, "", "127.0.0.1:9001"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9002}, "", "127.0.0.1:9002"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9003}, "", "[::1]:9003"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9004}, "svc.internal:80", "svc.internal:80"},
	} {
		s := selfRegistration{url: srv.URL, service: "adv", id: fmt.Sprint("i-", i), ttl: time.Minute, advertise: tc.advertise}
		var out, errOut lockedBuffer
		if err := s.start(context.Background(), &out, &errOut, tc.addr); err != nil {
			t.Fatal(err)
		}
		in, err := mem.Instance(context.Background(), "adv", s.id)
		if err != nil || in.Address != tc.want {
			t.Fatalf("%v advertised as %q: %+v, %v", tc.addr, tc.advertise, in, err)
		}
		s.stop(&errOut)
		s.stop(&errOut)
		if _, err := mem.Instance(context.Background(), "adv", s.id); !errors.Is(err, registry.ErrNotFound) || errOut.String() != "" {
			t.Fatalf("after stop: %v; stderr %q", err, errOut.String())
		}
	}
	if id := defaultInstanceID("80"); !regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`).MatchString(id) {
		t.Fatalf("default id %q", id)
	}
}
