package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	routes := func(i int) string {
		return `
services:
` + serviceYAML("echo", be.URL) + fmt.Sprintf(`
routes:
  - name: echo
    match: {path: "/{rest...}"}
    service: echo
    headers:
      response: {set: {X-Generation: "%d"}}
  - name: slow
    match: {path: "/delay/{d}"}
    service: echo
`, i)
	}
	g := startGateway(t, routes(0))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	// One long request spans every reload.
	longDone := make(chan error, 1)
	go func() {
		resp, err := c.Get(g.base + "/delay/1500ms")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("long request status %d", resp.StatusCode)
			}
		}
		longDone <- err
	}()

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(g.base + "/x")
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		time.Sleep(40 * time.Millisecond)
		cfg := routes(i)
		g.rewrite(t, cfg)
		if _, err := g.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if err := <-longDone; err != nil {
		t.Fatalf("long request across reloads: %v", err)
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed, %d succeeded across 20 reloads", failed.Load(), ok.Load())
	}
	resp, _ := get(t, c, g.base+"/x")
	if resp.Header.Get("X-Generation") != "20" {
		t.Fatalf("generation %q after 20 reloads", resp.Header.Get("X-Generation"))
	}
	// The service definition never changed, so its pool and connections were
	// kept: the backend saw only the client's few connections.
	if n := be.conns.Load(); n > 16 {
		t.Errorf("backend accepted %d connections; the pool was not carried over", n)
	}
}

func TestInvalidReloadKeepsServing(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	good := `
services:
` + serviceYAML("echo", be.URL) + `
routes:
  - name: echo
    match: {path: "/{rest...}"}
    service: echo
`
	g := startGateway(t, good)
	c := &http.Client{Timeout: 5 * time.Second}
	g.rewrite(t, good+`
  - name: broken
    match: {path: "/b", headers: [{name: X, regex: "("}]}
    service: missing
`)
	req, _ := http.NewRequest(http.MethodPost, g.admin+"/admin/reload", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("reload status %d: %s", resp.StatusCode, body)
	}
	var doc struct{ Errors []string }
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(doc.Errors, "\n")
	for _, want := range []string{"portico.yaml:", "routes[1]", "regex", "missing"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reload errors do not mention %q:\n%s", want, joined)
		}
	}
	if r, _ := get(t, c, g.base+"/still-here"); r.StatusCode != 200 {
		t.Fatalf("old configuration stopped serving: %d", r.StatusCode)
	}
	_, metrics := get(t, c, g.admin+"/metrics")
	if !strings.Contains(metrics, `portico_config_reloads_total{result="failure"} 1`) ||
		!strings.Contains(metrics, "portico_config_last_reload_successful 0") {
		t.Fatalf("reload failure not in metrics")
	}
}

func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	base := `
services:
` + serviceYAML("echo", be.URL) + `
routes:
  - name: a
    match: {path: /a}
    service: echo
`
	g := startGateway(t, base)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = g.watch(ctx) }()
	c := &http.Client{Timeout: 5 * time.Second}
	if r, _ := get(t, c, g.base+"/b"); r.StatusCode != 404 {
		t.Fatalf("/b before reload: %d", r.StatusCode)
	}
	// The watcher may not be registered yet when the file is first written,
	// so write it again if the change is not picked up within a second.
	next := base + `
  - name: b
    match: {path: /b}
    direct_response: {body: b}
`
	for attempt := 0; ; attempt++ {
		g.rewrite(t, next+strings.Repeat("\n", attempt))
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if r, _ := get(t, c, g.base+"/b"); r.StatusCode == 200 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if attempt == 4 {
			t.Fatal("a changed configuration file was not applied within 5s")
		}
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGateway(t, `
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: echo
    match: {path: "/{rest...}", hosts: [api.example.com]}
    service: echo
`)
	c := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/admin/routes", "/admin/services", "/admin/config", "/admin/status", "/metrics"} {
		resp, body := get(t, c, g.admin+path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	_, body := get(t, c, g.admin+"/admin/routes")
	if !strings.Contains(body, `"api.example.com"`) {
		t.Fatalf("routes: %s", body)
	}
	_, body = get(t, c, g.admin+"/admin/services")
	if !strings.Contains(body, be.URL) {
		t.Fatalf("services: %s", body)
	}
	if r, _ := get(t, c, g.admin+"/readyz"); r.StatusCode != 200 {
		t.Fatalf("readyz %d", r.StatusCode)
	}
}

func TestAdminToken(t *testing.T) {
	t.Setenv("PORTICO_TEST_ADMIN_TOKEN", "s3cret-token")
	g := startGatewayRaw(t, `
listeners:
  - name: public
    address: "127.0.0.1:0"
admin:
  address: "127.0.0.1:0"
  token: ${PORTICO_TEST_ADMIN_TOKEN}
routes:
  - name: hello
    match: {path: /hello}
    direct_response: {body: hi}
`)
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name, path, auth string
		status           int
	}{
		{"no token", "/admin/routes", "", 401},
		{"wrong token", "/admin/routes", "Bearer nope", 401},
		{"prefix of token", "/admin/config", "Bearer s3cret", 401},
		{"basic scheme", "/metrics", "Basic czNjcmV0LXRva2Vu", 401},
		{"right token", "/admin/routes", "Bearer s3cret-token", 200},
		{"health needs none", "/healthz", "", 200},
		{"readiness needs none", "/readyz", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, g.admin+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, g.admin+"/admin/config", nil)
	req.Header.Set("Authorization", "Bearer s3cret-token")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "s3cret-token") || !strings.Contains(string(body), "REDACTED") {
		t.Fatalf("/admin/config does not redact the token: %s", body)
	}
}
