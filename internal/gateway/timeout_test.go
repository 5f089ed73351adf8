package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// timeoutGateway is a gateway with short idle timeouts in front of handler.
func timeoutGateway(t *testing.T, handler http.Handler) *testGateway {
	t.Helper()
	be := httptest.NewServer(handler)
	t.Cleanup(be.Close)
	return startGatewayRaw(t, `
listeners:
  - name: public
    address: "127.0.0.1:0"
    read_timeout: 400ms
    write_timeout: 400ms
admin: {address: "off"}
services:
`+serviceYAML("be", be.URL)+`
routes:
  - name: be
    match: {path: "/{rest...}"}
    service: be
`)
}

// TestSlowReaderIsCut: a client that stops reading a large response loses
// its connection after the write timeout, and the upstream is released.
func TestSlowReaderIsCut(t *testing.T) {
	t.Parallel()
	var upstreamDone atomic.Bool
	chunk := make([]byte, 64<<10)
	g := timeoutGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer upstreamDone.Store(true)
		for i := 0; i < 4096; i++ { // up to 256 MiB, far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	conn, err := net.Dial("tcp", g.Addr("public"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	// Never read. The gateway must give up on this client.
	waitFor(t, 8*time.Second, "the upstream to be released after the client stopped reading", upstreamDone.Load)
}

// TestSlowStreamsThatProgressAreNotCut: events spaced below the write
// timeout keep flowing for longer than the timeout itself.
func TestSlowStreamsThatProgressAreNotCut(t *testing.T) {
	t.Parallel()
	g := timeoutGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := 0; i < 8; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			_ = rc.Flush()
			time.Sleep(150 * time.Millisecond)
		}
	}))
	resp, err := http.Get(g.base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			n++
		}
	}
	if n != 8 {
		t.Fatalf("received %d of 8 events over 1.2s with a 400ms write timeout (err %v)", n, sc.Err())
	}
}

// TestSlowUploads: a body that stalls longer than the read timeout is cut; a
// body that keeps coming, slowly, for longer than the timeout is not.
func TestSlowUploads(t *testing.T) {
	t.Parallel()
	g := timeoutGateway(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
	}))
	upload := func(step time.Duration, steps int) (string, error) {
		conn, err := net.Dial("tcp", g.Addr("public"))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", steps*10)
		for i := 0; i < steps; i++ {
			time.Sleep(step)
			if _, err := io.WriteString(conn, "0123456789"); err != nil {
				return "", err
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
	}

	got, err := upload(100*time.Millisecond, 10) // 1s in all, never idle for 400ms
	if err != nil || got != "200 100" {
		t.Fatalf("progressing upload: %q %v", got, err)
	}
	got, err = upload(time.Second, 2) // stalls for 1s
	if err == nil && strings.HasPrefix(got, "200") {
		t.Fatalf("stalled upload was not cut: %q", got)
	}
}
