package gateway

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestGRPCThroughGateway sends unary and server-streaming gRPC calls (the
// standard health service: Check and Watch) through an h2c listener to an
// h2c endpoint, and checks that statuses carried in trailers arrive intact.
func TestGRPCThroughGateway(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	g := startGateway(t, `
services:
  - name: grpc
    endpoints: [{url: "h2c://`+ln.Addr().String()+`"}]
routes:
  - name: health
    match: {path: "/grpc.health.v1.Health/{method}", methods: [POST]}
    service: grpc
`)
	conn, err := grpc.NewClient(g.Addr("public"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "shop.Orders"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary Check: %v %v", resp, err)
	}
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unary Check of an unknown service: %v, want NotFound from the trailers", err)
	}

	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "shop.Orders"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first streamed message: %v %v", first, err)
	}
	hs.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil || second.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second streamed message: %v %v", second, err)
	}

	waitFor(t, 3*time.Second, "grpc access log lines", func() bool { return len(g.access.lines()) >= 2 })
	_, metrics := get(t, httpClient(), g.admin+"/metrics")
	if !contains(metrics, `portico_grpc_responses_total{grpc_code="5",route="health",service="grpc"} 1`) {
		t.Fatalf("grpc status not in metrics:\n%s", grep(metrics, "portico_grpc"))
	}
}
