package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// adminServices is the part of /admin/services this test reads.
type adminServices struct {
	Services []struct {
		Name      string `json:"name"`
		Endpoints []struct {
			URL       string `json:"url"`
			Available bool   `json:"available"`
			Ejected   bool   `json:"ejected"`
			Health    string `json:"health"`
		} `json:"endpoints"`
	} `json:"services"`
}

// endpointAvailable reports the admin view of the endpoint at url.
func endpointAvailable(t *testing.T, admin, url string) (available bool, state string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/admin/services")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var as adminServices
	if err := json.Unmarshal(body, &as); err != nil {
		t.Fatalf("/admin/services: %v: %s", err, body)
	}
	for _, s := range as.Services {
		for _, e := range s.Endpoints {
			if e.URL == url {
				return e.Available, fmt.Sprintf("available=%v ejected=%v health=%s", e.Available, e.Ejected, e.Health)
			}
		}
	}
	t.Fatalf("endpoint %s not in /admin/services: %s", url, body)
	return false, ""
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// loadResult counts what the load generator saw, per echo server name.
type loadResult struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	byServer     map[string]int
	lastErr      string
}

func (l *loadResult) served(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byServer[name]
}

// steadyLoad sends GETs to url from 4 clients until stop is closed or max
// requests were sent.
func steadyLoad(url string, max int64, stop <-chan struct{}) (*loadResult, func()) {
	res := &loadResult{byServer: map[string]int{}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if res.sent.Add(1) > max {
					res.sent.Add(-1)
					return
				}
				server, err := getServer(c, url)
				res.mu.Lock()
				if err != nil {
					res.failed.Add(1)
					res.lastErr = err.Error()
				} else {
					res.byServer[server]++
				}
				res.mu.Unlock()
				time.Sleep(3 * time.Millisecond)
			}
		})
	}
	return res, wg.Wait
}

// getServer sends one GET and returns the name of the echo server that
// answered it.
func getServer(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var reply struct {
		Server string `json:"server"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return "", fmt.Errorf("reply %q: %w", body, err)
	}
	return reply.Server, nil
}

// TestKilledEchoIsRetriedEjectedAndReadmitted: one of three echo processes
// behind the gateway is killed with SIGKILL under steady load. No GET fails
// (retried on another endpoint), the endpoint is taken out within seconds,
// and once an echo process listens on its address again it is readmitted
// and served traffic.
func TestKilledEchoIsRetriedEjectedAndReadmitted(t *testing.T) {
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	echoes := make([]*proc, len(addrs))
	for i, a := range addrs {
		echoes[i] = start(t, "echo", "--listen", a, "--name", fmt.Sprintf("echo-%d", i))
	}
	for _, a := range addrs {
		waitHTTP(t, "http://"+a+"/", 200)
	}
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`
listeners:
  - name: public
    address: %q
admin:
  address: %q
services:
  - name: echo
    endpoints:
      - url: http://%s
      - url: http://%s
      - url: http://%s
    health_check: {interval: 100ms, timeout: 100ms, jitter: 10ms, healthy_threshold: 1, unhealthy_threshold: 2}
    outlier_detection:
      consecutive_failures: 2
      base_ejection_time: 500ms
      success_rate: {minimum_hosts: 3, request_volume: 20, stdev_factor: 1, interval: 500ms}
routes:
  - name: echo
    match: {path: "/echo/{rest...}"}
    service: echo
    rewrite: {strip_prefix: /echo}
    retry: {attempts: 3, backoff_base: 1ms, backoff_max: 5ms}
`, listen, admin, addrs[0], addrs[1], addrs[2])
	cfgPath := filepath.Join(t.TempDir(), "portico.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "gateway", "--config", cfgPath)
	waitHTTP(t, "http://"+admin+"/readyz", 200)

	stop := make(chan struct{})
	res, wait := steadyLoad("http://"+listen+"/echo/x", 4000, stop)
	halt := sync.OnceFunc(func() { close(stop); wait() })
	defer halt()
	waitUntil(t, 3*time.Second, "every echo serving", func() bool {
		return res.served("echo-0") > 0 && res.served("echo-1") > 0 && res.served("echo-2") > 0
	})

	victim, victimURL := echoes[1], "http://"+addrs[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	victim.exited <- nil // for the cleanup's wait
	took := waitUntil(t, 3*time.Second, "the killed endpoint to be taken out", func() bool {
		avail, _ := endpointAvailable(t, admin, victimURL)
		return !avail
	})
	_, state := endpointAvailable(t, admin, victimURL)
	t.Logf("killed endpoint unavailable after %v (%s)", took, state)
	time.Sleep(300 * time.Millisecond)

	start(t, "echo", "--listen", addrs[1], "--name", "echo-1-again")
	took = waitUntil(t, 5*time.Second, "the restarted endpoint to be readmitted", func() bool {
		avail, _ := endpointAvailable(t, admin, victimURL)
		return avail
	})
	t.Logf("restarted endpoint available after %v", took)
	waitUntil(t, 3*time.Second, "traffic to reach the restarted endpoint", func() bool {
		return res.served("echo-1-again") >= 10
	})

	halt()
	if n := res.sent.Load(); res.failed.Load() != 0 || n < 200 {
		t.Fatalf("%d of %d GETs failed (last: %s)", res.failed.Load(), n, res.lastErr)
	}
	t.Logf("%d GETs, none failed; served by %v", res.sent.Load(), res.byServer)
}
