package authn_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

// A verifier checks a token and returns its claims; its errors say why a token is refused.
func Example() {
	ctx := context.Background()
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier() // a local verifier of iss's tokens for audience "orders"
	defer v.Close()

	claims, err := v.Verify(ctx, iss.Token(authntest.Subject("alice"), authntest.Scopes("orders:read")))
	fmt.Println(claims.Subject, claims.Scopes, claims.HasScope("orders:write"), err)

	for _, tok := range []string{
		iss.Token(authntest.Expired()),
		iss.Token(authntest.Type(authntest.TypeRefresh)),
		iss.Token(authntest.Audience("billing")),
	} {
		_, err := v.Verify(ctx, tok)
		fmt.Println(err, "->", status.Code(authn.StatusError(ctx, err)))
	}
	// Output:
	// alice [orders:read] false <nil>
	// token expired -> Unauthenticated
	// not an access token -> Unauthenticated
	// token not issued for this audience -> PermissionDenied
}

// A service protects its methods with the interceptors and a policy; the health check stays public.
func ExampleUnaryServerInterceptor() {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	policy := authn.Policy{
		Public: []string{healthpb.Health_Check_FullMethodName},
		Scopes: map[string][]string{healthpb.Health_List_FullMethodName: {"health:list"}},
		// Health/Watch is in neither list: refused to every token (authn.DenyUnlisted).
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(authn.UnaryServerInterceptor(v, policy)),
		grpc.ChainStreamInterceptor(authn.StreamServerInterceptor(v, policy)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	conn := startExample(srv)
	defer srv.Stop()
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	call := func(token string) {
		ctx := context.Background()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		_, errCheck := client.Check(ctx, &healthpb.HealthCheckRequest{})
		_, errList := client.List(ctx, &healthpb.HealthListRequest{})
		fmt.Printf("Check: %v, List: %v\n", status.Code(errCheck), status.Code(errList))
	}
	call("")
	call(iss.Token())
	call(iss.Token(authntest.Scopes("health:list")))
	// Output:
	// Check: OK, List: Unauthenticated
	// Check: OK, List: PermissionDenied
	// Check: OK, List: OK
}

// AuthFunc plugs into go-grpc-middleware's auth interceptors; Policy.Matcher skips the public
// methods through its selector. This is what UnaryServerInterceptor wires.
func ExampleAuthFunc() {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	policy := authn.Policy{
		Public:   []string{healthpb.Health_Check_FullMethodName},
		Unlisted: authn.AuthenticateUnlisted,
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			// metrics and logging would come first
			selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authn.AuthFunc(v, policy)), policy.Matcher()),
			// recovery would come last
		),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	conn := startExample(srv)
	defer srv.Stop()
	defer conn.Close()

	_, err := healthpb.NewHealthClient(conn).List(context.Background(), &healthpb.HealthListRequest{})
	fmt.Println(status.Code(err), status.Convert(err).Message())
	// Output:
	// Unauthenticated missing bearer token: send the metadata "authorization: Bearer <access token>"
}

// A handler reads the verified claims from its context.
func ExampleClaimsFromContext() {
	handler := func(ctx context.Context) string {
		c, ok := authn.ClaimsFromContext(ctx)
		if !ok {
			return "anonymous"
		}
		return c.Subject
	}
	// In a handler test, ContextWithClaims stands in for the interceptor.
	ctx := authn.ContextWithClaims(context.Background(), &authn.Claims{Subject: "alice"})
	fmt.Println(handler(ctx), handler(context.Background()))
	// Output: alice anonymous
}

// A test proves that every method of the server is classified by the policy.
func ExamplePolicy_Covers() {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	policy := authn.Policy{
		Public: []string{healthpb.Health_Check_FullMethodName},
		Scopes: map[string][]string{healthpb.Health_List_FullMethodName: {"health:list"}},
	}
	fmt.Println(policy.Covers(srv.GetServiceInfo()))
	// Output: method /grpc.health.v1.Health/Watch is not in the policy
}

// A service verifies tokens locally against the authority's keys and revocation stream.
// (Not run: it needs an authority.)
func ExampleNewLocal() {
	conn, err := grpc.NewClient("authority.internal:8443", grpc.WithTransportCredentials(credentials.NewTLS(nil)))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v, err := authn.NewLocal(ctx, conn, "API key with role verify",
		authn.WithIssuer("https://authority.example/t/acme"),
		authn.WithAudience("orders"),
		authn.WithStalenessBound(10*time.Second),
	)
	cancel() // the context bounds the start only
	if errors.Is(err, authn.ErrNoUsableKeys) {
		log.Fatal("the tenant signs with HS256: use authn.NewRemote")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	_ = grpc.NewServer(grpc.ChainUnaryInterceptor(authn.UnaryServerInterceptor(v, authn.Policy{})))
}

// A client obtains tokens for its calls with a principal's credentials. (Not run: it needs an
// authority.)
func ExampleNewTokenSource() {
	authority, err := grpc.NewClient("authority.internal:8443", grpc.WithTransportCredentials(credentials.NewTLS(nil)))
	if err != nil {
		log.Fatal(err)
	}
	tokens, err := authn.NewTokenSource(authority, "API key of the tenant", authn.TokenRequest{
		Principal: &authn.Principal{Identifier: "billing", Secret: "from the secret store"},
		Audience:  []string{"orders"},
		Scopes:    []string{"orders:read"},
	})
	if err != nil {
		log.Fatal(err)
	}
	orders, err := grpc.NewClient("orders.internal:8443",
		grpc.WithTransportCredentials(credentials.NewTLS(nil)),
		grpc.WithPerRPCCredentials(tokens),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer orders.Close()
}

// startExample serves srv in memory and returns a connection to it.
func startExample(srv *grpc.Server) *grpc.ClientConn {
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///example",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	return conn
}
