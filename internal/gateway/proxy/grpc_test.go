package proxy

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// grpcBackend serves the standard health service over h2c.
func grpcBackend(t testing.TB) (string, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return "h2c://" + ln.Addr().String(), hs
}

func TestGRPCThroughProxy(t *testing.T) {
	t.Parallel()
	endpoint, hs := grpcBackend(t)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{H2C: true}, endpoint), Timeout: testTimeout}, nil)
	cc, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(g.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	client := healthpb.NewHealthClient(cc)
	ctx := ctxTimeout(t)

	t.Run("unary", func(t *testing.T) {
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("status %v", res.Status)
		}
		ex := g.lastExchange(t)
		if ex.GRPCStatus != "0" || ex.Endpoint != strings.TrimPrefix(endpoint, "h2c://") || ex.Err != nil {
			t.Fatalf("GRPCStatus=%q Endpoint=%q Err=%v", ex.GRPCStatus, ex.Endpoint, ex.Err)
		}
	})

	t.Run("non-OK status", func(t *testing.T) {
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "missing"})
		st, _ := status.FromError(err)
		if st.Code() != codes.NotFound || st.Message() != "unknown service" {
			t.Fatalf("got %v", err)
		}
		if ex := g.lastExchange(t); ex.GRPCStatus != "5" {
			t.Fatalf("GRPCStatus=%q", ex.GRPCStatus)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		hs.SetServingStatus("shop", healthpb.HealthCheckResponse_SERVING)
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := client.Watch(sctx, &healthpb.HealthCheckRequest{Service: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.Recv()
		if err != nil || msg.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first update %v %v", msg, err)
		}
		// The second message only exists after the first was received.
		hs.SetServingStatus("shop", healthpb.HealthCheckResponse_NOT_SERVING)
		msg, err = stream.Recv()
		if err != nil || msg.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("second update %v %v", msg, err)
		}
		// Shutting the health server down ends the stream with trailers.
		cancel()
		_, err = stream.Recv()
		if status.Code(err) != codes.Canceled {
			t.Fatalf("after cancel: %v", err)
		}
		g.lastExchange(t)
	})
}
