package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/etcdtest"
	"github.com/portico-dev/portico/internal/gateway/config"
	"github.com/portico-dev/portico/registry"
)

// named is a backend that answers its name and counts its requests.
type named struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newNamed(t testing.TB, name string, h func(w http.ResponseWriter, r *http.Request)) *named {
	t.Helper()
	n := &named{name: name}
	n.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(n.Close)
	return n
}

func versionedService(name string, eps map[string]string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  - name: %s\n    endpoints:\n", name)
	for u, v := range eps {
		fmt.Fprintf(&sb, "      - url: %s\n        metadata: {version: %s}\n", u, v)
	}
	return sb.String()
}

func TestRouteSendsToOneVersion(t *testing.T) {
	t.Parallel()
	v1, v2 := newNamed(t, "v1", nil), newNamed(t, "v2", nil)
	g := startGateway(t, `
services:
`+versionedService("orders", map[string]string{v1.URL: "v1", v2.URL: "v2"})+`
routes:
  - name: beta
    match: {path: "/beta/{rest...}"}
    service: orders
    version: v2
  - name: all
    match: {path: "/{rest...}"}
    service: orders
`)
	c := httpClient()
	for range 20 {
		resp, body := get(t, c, g.base+"/beta/x")
		if resp.StatusCode != 200 || body != "v2" {
			t.Fatalf("beta answered %d %q, want v2", resp.StatusCode, body)
		}
	}
	seen := map[string]bool{}
	for range 20 {
		_, body := get(t, c, g.base+"/x")
		seen[body] = true
	}
	if !seen["v1"] || !seen["v2"] {
		t.Fatalf("the unversioned route reached %v, want both versions", seen)
	}
	// /admin/services lists the subset.
	if as := adminServiceOf(t, g, "orders"); len(as.Subsets) != 1 || as.Subsets[0].Version != "v2" || as.Subsets[0].Endpoints != 1 {
		t.Fatalf("admin services subsets: %+v", as.Subsets)
	}
}

func TestCanarySplitIsExact(t *testing.T) {
	t.Parallel()
	stable, canary := newNamed(t, "stable", nil), newNamed(t, "canary", nil)
	g := startGateway(t, `
services:
`+versionedService("orders", map[string]string{stable.URL: "v1", canary.URL: "v2"})+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
    split:
      - {version: v1, weight: 90}
      - {version: v2, weight: 10}
`)
	c := httpClient()
	const total = 2000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 8 {
				resp, err := c.Get(g.base + "/o")
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	// The split is a weighted rotation, so over whole turns it is exact.
	if s, k := stable.hits.Load(), canary.hits.Load(); s != 1800 || k != 200 {
		t.Fatalf("stable %d canary %d of %d, want 1800 and 200", s, k, total)
	}
}

func TestSplitSkipsVersionWithoutEndpoints(t *testing.T) {
	t.Parallel()
	stable := newNamed(t, "stable", nil)
	g := startGateway(t, `
services:
`+versionedService("orders", map[string]string{stable.URL: "v1"})+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
    split:
      - {version: v1, weight: 50}
      - {version: v2, weight: 50}
`)
	c := httpClient()
	for range 10 {
		if resp, body := get(t, c, g.base+"/o"); resp.StatusCode != 200 || body != "stable" {
			t.Fatalf("got %d %q; a version with no endpoints must pass its turn", resp.StatusCode, body)
		}
	}
}

func TestSplitWeightsSequence(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		want    []int
	}{
		{[]int{90, 10}, []int{9, 1}},
		{[]int{1, 1, 2}, []int{1, 1, 2}},
		{[]int{10000, 1}, nil}, // scaled: checked below
	} {
		h := newSplitHandler(tc.weights, make([]splitBranch, len(tc.weights)))
		got := make([]int, len(tc.weights))
		for _, b := range h.seq {
			got[b]++
		}
		if tc.want != nil && fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("weights %v: turn %v, want %v", tc.weights, got, tc.want)
		}
		if len(h.seq) > maxSplitTurn+len(tc.weights) {
			t.Errorf("weights %v: turn of %d", tc.weights, len(h.seq))
		}
		for i, n := range got {
			if n == 0 {
				t.Errorf("weights %v: branch %d never chosen", tc.weights, i)
			}
		}
	}
	// Smooth: a 90/10 split never sends two canary requests in a row.
	h := newSplitHandler([]int{90, 10}, make([]splitBranch, 2))
	for i := 1; i < len(h.seq); i++ {
		if h.seq[i] == 1 && h.seq[i-1] == 1 {
			t.Fatalf("sequence %v is not smooth", h.seq)
		}
	}
}

func TestMirrorNeverAffectsTheClient(t *testing.T) {
	t.Parallel()
	type seen struct{ host, body, method, path string }
	shadowSeen := make(chan seen, 100)
	main := newNamed(t, "main", nil)
	shadow := newNamed(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		shadowSeen <- seen{r.Host, string(b), r.Method, r.URL.Path}
		// A slow, failing shadow.
		time.Sleep(300 * time.Millisecond)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "shadow broke")
	})
	g := startGateway(t, `
services:
`+versionedService("orders", map[string]string{main.URL: "v1", shadow.URL: "v2"})+`
routes:
  - name: orders
    match: {path: "/api/{rest...}"}
    service: orders
    version: v1
    rewrite: {strip_prefix: /api}
    mirror: {version: v2}
`)
	c := httpClient()
	for i := range 5 {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, g.base+"/api/orders", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		req.Host = "shop.example:8080"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "main" {
			t.Fatalf("client got %d %q, want the main version's answer", resp.StatusCode, b)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Logf("request %d took %v (the shadow sleeps 300ms; the client must not wait for it)", i, d)
		}
	}
	for i := range 5 {
		select {
		case s := <-shadowSeen:
			if s.host != "shop.example-shadow:8080" || s.method != http.MethodPost || s.path != "/orders" || !strings.HasPrefix(s.body, `{"n":`) {
				t.Fatalf("shadow saw %+v", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("shadow saw %d of 5 copies", i)
		}
	}
	if main.hits.Load() != 5 {
		t.Fatalf("main got %d requests, want 5", main.hits.Load())
	}
	waitFor(t, 5*time.Second, "mirror metrics", func() bool {
		_, body := get(t, c, g.admin+"/metrics")
		return contains(body, `portico_mirror_requests_total{result="failed",route="orders"} 5`) &&
			contains(body, `portico_mirror_requests_total{result="sent",route="orders"} 5`)
	})
}

func TestMirrorShareAndBodyCap(t *testing.T) {
	t.Parallel()
	main := newNamed(t, "main", nil)
	shadow := newNamed(t, "shadow", nil)
	g := startGateway(t, `
services:
`+serviceYAML("main", main.URL)+serviceYAML("shadow", shadow.URL)+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: main
    mirror: {service: shadow, percent: 25, max_body_bytes: 16}
`)
	c := httpClient()
	for range 100 {
		resp, body := get(t, c, g.base+"/x")
		if resp.StatusCode != 200 || body != "main" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
	waitFor(t, 5*time.Second, "25 mirrored copies", func() bool { return shadow.hits.Load() == 25 })
	// A body over the cap goes to the main version whole and is not copied.
	big := strings.Repeat("x", 64)
	for range 8 {
		resp, err := c.Post(g.base+"/x", "text/plain", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if n := shadow.hits.Load(); n != 25 {
		t.Fatalf("shadow got %d copies after oversized bodies, want 25", n)
	}
	_, body := get(t, c, g.admin+"/metrics")
	if !contains(body, `portico_mirror_requests_total{result="skipped",route="orders"} 2`) {
		t.Fatalf("skipped copies not counted:\n%s", grep(body, "portico_mirror"))
	}
}

// registerInstance registers a backend in the gateway's registry over its
// HTTP API.
func registerInstance(t testing.TB, admin, service, id, version, addr string, ttl time.Duration) {
	t.Helper()
	c, err := registry.NewClient(admin, registry.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Register(ctx, registry.Instance{ID: id, Service: service, Version: version, Address: addr}, ttl); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func hostOf(t testing.TB, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestEmbeddedRegistryFeedsThePool(t *testing.T) {
	t.Parallel()
	a, b := newNamed(t, "a", nil), newNamed(t, "b", nil)
	g := startGateway(t, `
services:
  - name: orders
    discovery:
      registry: {}
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
`)
	c := httpClient()
	if resp, _ := get(t, c, g.base+"/x"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("before any registration: %d, want 503", resp.StatusCode)
	}
	start := time.Now()
	registerInstance(t, g.admin, "orders", "a-1", "v1", hostOf(t, a.URL), 30*time.Second)
	waitFor(t, 2*time.Second, "the registered instance to take traffic", func() bool {
		resp, body := get(t, c, g.base+"/x")
		return resp.StatusCode == 200 && body == "a"
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("the instance took traffic %v after registering, want under 1s", d)
	}
	registerInstance(t, g.admin, "orders", "b-1", "v2", hostOf(t, b.URL), 30*time.Second)
	waitFor(t, 2*time.Second, "both instances", func() bool {
		as := adminServiceOf(t, g, "orders")
		return len(as.Endpoints) == 2 && as.Discovery != nil && as.Discovery.Provider == "registry" && as.Discovery.Endpoints == 2
	})
	// Deregistration drains the instance at once.
	rc, _ := registry.NewClient(g.admin, registry.ClientOptions{})
	if err := rc.Deregister(context.Background(), "orders", "a-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a to leave", func() bool {
		for range 4 {
			if _, body := get(t, c, g.base+"/x"); body != "b" {
				return false
			}
		}
		return true
	})
	_, body := get(t, c, g.admin+"/metrics")
	if !contains(body, `portico_discovery_endpoints{provider="registry",service="orders"} 1`) ||
		!contains(body, `portico_discovery_up{provider="registry",service="orders"} 1`) {
		t.Fatalf("discovery metrics:\n%s", grep(body, "portico_discovery"))
	}
}

func TestRemoteRegistryFailureKeepsLastSet(t *testing.T) {
	t.Parallel()
	a := newNamed(t, "a", nil)
	store := registry.NewMemory(registry.MemoryOptions{})
	t.Cleanup(func() { _ = store.Close() })
	api, err := registry.NewHandler(store, registry.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	remote := httptest.NewServer(api)
	t.Cleanup(remote.Close)
	if _, err := store.Register(context.Background(), registry.Instance{ID: "a-1", Service: "orders", Address: hostOf(t, a.URL)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, `
registry: {enabled: false}
services:
  - name: orders
    discovery:
      registry: {url: "`+remote.URL+`"}
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
`)
	c := httpClient()
	waitFor(t, 3*time.Second, "the remote instance", func() bool {
		resp, body := get(t, c, g.base+"/x")
		return resp.StatusCode == 200 && body == "a"
	})
	remote.CloseClientConnections()
	remote.Close()
	waitFor(t, 10*time.Second, "the failure to show", func() bool {
		as := adminServiceOf(t, g, "orders")
		return as.Discovery != nil && as.Discovery.Error != "" && as.Discovery.Synced
	})
	for range 10 {
		if resp, body := get(t, c, g.base+"/x"); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("while the registry is down: %d %q; the last set must keep serving", resp.StatusCode, body)
		}
	}
	_, body := get(t, c, g.admin+"/metrics")
	if !contains(body, `portico_discovery_up{provider="registry",service="orders"} 0`) {
		t.Fatalf("discovery metrics:\n%s", grep(body, "portico_discovery"))
	}
}

func TestReloadKeepsTheSource(t *testing.T) {
	t.Parallel()
	a := newNamed(t, "a", nil)
	cfg := `
services:
  - name: orders
    discovery:
      registry: {}
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
`
	g := startGateway(t, cfg)
	registerInstance(t, g.admin, "orders", "a-1", "", hostOf(t, a.URL), 30*time.Second)
	c := httpClient()
	waitFor(t, 2*time.Second, "traffic", func() bool { resp, _ := get(t, c, g.base+"/x"); return resp.StatusCode == 200 })
	src := g.sources()["orders"]
	// A route change keeps the service, its pool and its source.
	if _, err := g.Apply(mustParse(t, baseConfig+cfg+`    timeout: 5s
`)); err != nil {
		t.Fatal(err)
	}
	if g.sources()["orders"] != src {
		t.Fatal("an unchanged discovery setting got a new source")
	}
	if resp, _ := get(t, c, g.base+"/x"); resp.StatusCode != 200 {
		t.Fatalf("after reload: %d", resp.StatusCode)
	}
	// Switching to static endpoints detaches the source.
	b := newNamed(t, "b", nil)
	if _, err := g.Apply(mustParse(t, baseConfig+`
services:
`+serviceYAML("orders", b.URL)+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
`)); err != nil {
		t.Fatal(err)
	}
	registerInstance(t, g.admin, "orders", "a-2", "", hostOf(t, a.URL), 30*time.Second)
	time.Sleep(100 * time.Millisecond)
	for range 6 {
		if _, body := get(t, c, g.base+"/x"); body != "b" {
			t.Fatalf("a detached source still feeds the pool: got %q", body)
		}
	}
}

func mustParse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("portico.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// adminServiceOf returns the /admin/services entry of the named service.
func adminServiceOf(t testing.TB, g *testGateway, name string) adminService {
	t.Helper()
	_, body := get(t, httpClient(), g.admin+"/admin/services")
	var out struct {
		Services []adminService `json:"services"`
	}
	decodeJSON(t, body, &out)
	for _, s := range out.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("service %q not in /admin/services: %s", name, body)
	return adminService{}
}

func TestEtcdDiscoverySharesOneConnection(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	ctx := context.Background()
	store, err := registry.NewEtcd(ctx, registry.EtcdOptions{Endpoints: srv.Endpoints(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	orders, users := newNamed(t, "orders", nil), newNamed(t, "users", nil)
	for _, in := range []registry.Instance{
		{ID: "o-1", Service: "orders", Address: hostOf(t, orders.URL)},
		{ID: "u-1", Service: "users", Address: hostOf(t, users.URL)},
	} {
		if _, err := store.Register(ctx, in, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	eps := `["` + strings.Join(srv.Endpoints(), `","`) + `"]`
	g := startGateway(t, `
services:
  - name: orders
    discovery:
      etcd: {endpoints: `+eps+`}
  - name: users
    discovery:
      etcd: {endpoints: `+eps+`, service: users}
routes:
  - name: orders
    match: {path: "/orders"}
    service: orders
  - name: users
    match: {path: "/users"}
    service: users
`)
	c := httpClient()
	waitFor(t, 10*time.Second, "both services", func() bool {
		_, a := get(t, c, g.base+"/orders")
		_, b := get(t, c, g.base+"/users")
		return a == "orders" && b == "users"
	})
	g.etcdStores.mu.Lock()
	n := len(g.etcdStores.stores)
	g.etcdStores.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d etcd connections for two services of one cluster, want 1", n)
	}
	// etcd down: the last sets keep serving and the failure shows.
	srv.Stop()
	waitFor(t, 20*time.Second, "the failure to show", func() bool {
		as := adminServiceOf(t, g, "orders")
		return as.Discovery != nil && as.Discovery.Error != ""
	})
	for range 5 {
		if _, body := get(t, c, g.base+"/users"); body != "users" {
			t.Fatalf("while etcd is down users answered %q", body)
		}
	}
	srv.Restart()
	waitFor(t, 20*time.Second, "recovery", func() bool {
		as := adminServiceOf(t, g, "orders")
		return as.Discovery != nil && as.Discovery.Error == ""
	})
}

// A shadow whose response breaks off, or a request body of unknown length,
// must neither crash the gateway nor stall the client.
func TestMirrorSurvivesBrokenShadowAndSkipsStreams(t *testing.T) {
	t.Parallel()
	main := newNamed(t, "main", nil)
	shadow := newNamed(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "short")
	})
	g := startGateway(t, `
services:
`+serviceYAML("main", main.URL)+serviceYAML("shadow", shadow.URL)+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: main
    mirror: {service: shadow}
`)
	c := httpClient()
	for range 5 {
		if resp, body := get(t, c, g.base+"/x"); resp.StatusCode != 200 || body != "main" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
	waitFor(t, 5*time.Second, "the broken copies to be counted", func() bool {
		_, body := get(t, c, g.admin+"/metrics")
		return contains(body, `portico_mirror_requests_total{result="failed",route="orders"} 5`)
	})
	// A body of unknown length goes to the main version unmirrored.
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "streamed")
		_ = pw.Close()
	}()
	resp, err := c.Post(g.base+"/x", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("streamed body: %d", resp.StatusCode)
	}
	_, body := get(t, c, g.admin+"/metrics")
	if !contains(body, `portico_mirror_requests_total{result="skipped",route="orders"} 1`) {
		t.Fatalf("a body of unknown length was mirrored:\n%s", grep(body, "portico_mirror"))
	}
}

// Mirrored copies do not count against the service's max_requests.
func TestMirrorDoesNotTakeCapacity(t *testing.T) {
	t.Parallel()
	main := newNamed(t, "main", nil)
	slow := newNamed(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
	})
	g := startGateway(t, `
services:
  - name: orders
    circuit_breaker: {max_requests: 2}
    endpoints:
      - {url: "`+main.URL+`", metadata: {version: v1}}
      - {url: "`+slow.URL+`", metadata: {version: v2}}
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
    version: v1
    mirror: {version: v2}
`)
	c := httpClient()
	for i := range 6 {
		if resp, body := get(t, c, g.base+"/x"); resp.StatusCode != 200 || body != "main" {
			t.Fatalf("request %d with slow copies in flight: %d %q", i, resp.StatusCode, body)
		}
	}
}

// Subsets a configuration no longer names stop following the pool.
func TestReloadDropsUnusedSubsets(t *testing.T) {
	t.Parallel()
	v1, v2 := newNamed(t, "v1", nil), newNamed(t, "v2", nil)
	svc := versionedService("orders", map[string]string{v1.URL: "v1", v2.URL: "v2"})
	g := startGateway(t, `
services:
`+svc+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
    split: [{version: v1, weight: 1}, {version: v2, weight: 1}]
`)
	pool := g.pools()["orders"]
	if n := len(pool.Subsets()); n != 2 {
		t.Fatalf("%d subsets, want 2", n)
	}
	if _, err := g.Apply(mustParse(t, baseConfig+`
services:
`+svc+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
    version: v2
`)); err != nil {
		t.Fatal(err)
	}
	if subs := pool.Subsets(); len(subs) != 1 {
		t.Fatalf("%d subsets after the reload, want 1", len(subs))
	}
}

// A pool whose discovered instances spoke h2c gets an HTTP/1.1 transport
// back when the service returns to static http endpoints.
func TestTransportFollowsSourceReplacement(t *testing.T) {
	t.Parallel()
	var protos sync.Map
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		_, _ = io.WriteString(w, "h2c")
	}))
	h2.Config.Protocols = new(http.Protocols)
	h2.Config.Protocols.SetHTTP1(true)
	h2.Config.Protocols.SetUnencryptedHTTP2(true)
	h2.Start()
	t.Cleanup(h2.Close)
	cfg := `
services:
  - name: orders
    discovery:
      registry: {}
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
`
	g := startGateway(t, cfg)
	rc, _ := registry.NewClient(g.admin, registry.ClientOptions{})
	if _, err := rc.Register(context.Background(), registry.Instance{ID: "g-1", Service: "orders", Address: hostOf(t, h2.URL), Protocol: "h2c"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := httpClient()
	waitFor(t, 3*time.Second, "the h2c instance", func() bool {
		resp, body := get(t, c, g.base+"/x")
		return resp.StatusCode == 200 && body == "h2c"
	})
	if _, ok := protos.Load("HTTP/2.0"); !ok {
		t.Fatal("the h2c instance was not spoken to over HTTP/2")
	}
	plain := newNamed(t, "plain", nil)
	if _, err := g.Apply(mustParse(t, baseConfig+`
services:
`+serviceYAML("orders", plain.URL)+`
routes:
  - name: orders
    match: {path: "/{rest...}"}
    service: orders
`)); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if resp, body := get(t, c, g.base+"/x"); resp.StatusCode != 200 || body != "plain" {
			t.Fatalf("after returning to static http endpoints: %d %q", resp.StatusCode, body)
		}
	}
}
