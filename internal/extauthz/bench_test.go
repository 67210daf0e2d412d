package extauthz

import (
	"context"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

// benchConn serves the ext_authz server over a local verifier (authn.NewStatic: the sidecar's
// verifier without its revocation stream, whose check per call is one atomic load) and a health
// service as the no-op call, on one in-process gRPC server.
func benchConn(b *testing.B) (*grpc.ClientConn, string) {
	b.Helper()
	return benchConnWith(b, nil)
}

// noopAuthz answers every Check with OK without reading it: the transport's share of a Check.
type noopAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// benchConnWith is benchConn with authz, when not nil, serving Authorization instead of the sidecar.
func benchConnWith(b *testing.B, authz authv3.AuthorizationServer) (*grpc.ClientConn, string) {
	b.Helper()
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier(authn.WithAnyAudience())
	b.Cleanup(v.Close)
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Verifier: v, Policy: p})
	if err != nil {
		b.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	if authz != nil {
		authv3.RegisterAuthorizationServer(srv, authz)
	} else {
		s.Register(srv)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return conn, iss.Token(authntest.Scopes("orders.read"))
}

// BenchmarkSidecarCheck and BenchmarkNoopCall compare the sidecar placement's Check with a no-op
// gRPC call on the same process (issue 18: target ratio >= 0.8 of the no-op's throughput).
func BenchmarkSidecarCheck(b *testing.B) {
	conn, tok := benchConn(b)
	c := authv3.NewAuthorizationClient(conn)
	req := request("orders.example.com", "/api/orders/1", bearerOf(tok))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Check(context.Background(), req)
			if err != nil || resp.GetOkResponse() == nil {
				b.Fatalf("Check: %v %v", resp, err)
			}
		}
	})
}

// BenchmarkNoopCheck is a Check of the same request answered OK at once: Check's throughput as a
// fraction of it is what the sidecar's own work costs, apart from carrying Envoy's larger messages.
func BenchmarkNoopCheck(b *testing.B) {
	conn, tok := benchConnWith(b, noopAuthz{})
	c := authv3.NewAuthorizationClient(conn)
	req := request("orders.example.com", "/api/orders/1", bearerOf(tok))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Check(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkNoopCall(b *testing.B) {
	conn, _ := benchConn(b)
	c := healthpb.NewHealthClient(conn)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
