package registry_test

import (
	"context"
	"fmt"
	"time"

	"github.com/portico-dev/portico/registry"
)

func ExampleNewMemory() {
	store := registry.NewMemory(registry.MemoryOptions{})
	defer store.Close()
	ctx := context.Background()

	for _, in := range []registry.Instance{
		{Service: "orders", ID: "orders-2", Address: "10.0.0.8:8080", Version: "v2"},
		{Service: "orders", ID: "orders-1", Address: "10.0.0.7:8080", Version: "v1"},
	} {
		if _, err := store.Register(ctx, in, 10*time.Second); err != nil {
			fmt.Println(err)
			return
		}
	}

	instances, revision, err := store.Instances(ctx, "orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("revision", revision)
	for _, in := range instances {
		fmt.Println(in.ID, in.Address, in.Version, in.Status, in.TTL.D())
	}
	// Output:
	// revision 2
	// orders-1 10.0.0.7:8080 v1 passing 10s
	// orders-2 10.0.0.8:8080 v2 passing 10s
}
