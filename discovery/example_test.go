package discovery_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/portico-dev/portico/discovery"
	"github.com/portico-dev/portico/registry"
)

// printSink prints the first endpoint set it receives, then stops the
// provider.
type printSink struct {
	stop context.CancelFunc
}

func (s printSink) Update(eps []discovery.Endpoint) {
	for _, e := range eps {
		fmt.Println(e.URL, e.Meta[discovery.MetaInstance], e.Meta[discovery.MetaVersion], e.Weight)
	}
	s.stop()
}

func (s printSink) Fail(err error) { fmt.Println("failed:", err) }

func ExampleStatic() {
	p := discovery.Static([]discovery.Endpoint{
		{URL: &url.URL{Scheme: "http", Host: "10.0.0.1:8080"}, Weight: 2, Meta: map[string]string{discovery.MetaInstance: "a"}},
		{URL: &url.URL{Scheme: "http", Host: "10.0.0.2:8080"}, Meta: map[string]string{discovery.MetaInstance: "b"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	// Run delivers the set once and returns when the sink cancels.
	if err := p.Run(ctx, printSink{stop: cancel}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Kind())
	// Output:
	// http://10.0.0.1:8080 a  2
	// http://10.0.0.2:8080 b  0
	// static
}

func ExampleNewRegistry() {
	store := registry.NewMemory(registry.MemoryOptions{})
	defer store.Close()
	ctx := context.Background()
	for _, in := range []registry.Instance{
		{Service: "orders", ID: "orders-1", Address: "10.0.0.1:8080", Version: "v2", Weight: 3},
		{Service: "orders", ID: "orders-2", Address: "10.0.0.2:8080", Version: "v1"},
		{Service: "orders", ID: "orders-3", Address: "10.0.0.3:8080", Version: "v2", Protocol: registry.ProtocolGRPC},
	} {
		if _, err := store.Register(ctx, in, 30*time.Second); err != nil {
			log.Fatal(err)
		}
	}

	// Follow the passing v2 instances of orders. A remote registry
	// (registry.NewClient) or etcd (registry.NewEtcd) is used the same way.
	p, err := discovery.NewRegistry(store, discovery.Filter{Service: "orders", Version: "v2"}, discovery.RegistryOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := p.Run(ctx, printSink{stop: cancel}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// h2c://10.0.0.3:8080 orders-3 v2 0
	// http://10.0.0.1:8080 orders-1 v2 3
}
