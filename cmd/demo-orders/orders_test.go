package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tokenauthority/tokenauthority/authn/authntest"
	ordersv1 "github.com/tokenauthority/tokenauthority/gen/demo/orders/v1"
)

// harness is the order service in memory, with the real interceptor chain and a static verifier
// of iss's tokens: no authority is involved.
type harness struct {
	iss    *authntest.Issuer
	book   *orderBook
	conn   *grpc.ClientConn
	orders ordersv1.OrderServiceClient
}

func newHarness(t *testing.T, opts ...authntest.Option) *harness {
	t.Helper()
	iss := authntest.NewIssuer(append([]authntest.Option{
		authntest.WithIssuer(defaultIssuer), authntest.WithAudience(defaultAudience),
	}, opts...)...)
	v := iss.Verifier()
	t.Cleanup(v.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	book := newOrderBook(time.Now)
	srv, _ := newServer(v, &orderService{book: book, log: log, verifier: v, recheck: 10 * time.Millisecond}, log)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///demo-orders",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &harness{iss: iss, book: book, conn: conn, orders: ordersv1.NewOrderServiceClient(conn)}
}

// withToken returns a context that presents token as a bearer token; none when token is empty.
func withToken(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// firstWatched opens WatchOrders and returns the first order it sends.
func firstWatched(ctx context.Context, c ordersv1.OrderServiceClient) (*ordersv1.Order, error) {
	stream, err := c.WatchOrders(ctx, &ordersv1.WatchOrdersRequest{})
	if err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	return resp.GetOrder(), err
}

func TestAccessControl(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	alicesOrder, err := h.book.create("alice", "coffee", 1)
	if err != nil {
		t.Fatal(err)
	}
	forger := authntest.NewIssuer(authntest.WithIssuer(defaultIssuer), authntest.WithAudience(defaultAudience))

	alice := func(opts ...authntest.TokenOption) func() string {
		return func() string {
			return h.iss.Token(append([]authntest.TokenOption{authntest.Subject("alice")}, opts...)...)
		}
	}
	none := func() string { return "" }
	readWrite := authntest.Scopes(scopeRead, scopeWrite)

	create := func(ctx context.Context) error {
		_, err := h.orders.CreateOrder(ctx, &ordersv1.CreateOrderRequest{Item: "tea", Quantity: 1})
		return err
	}
	get := func(id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := h.orders.GetOrder(ctx, &ordersv1.GetOrderRequest{OrderId: id})
			return err
		}
	}
	watch := func(ctx context.Context) error {
		_, err := firstWatched(ctx, h.orders)
		return err
	}
	health := healthpb.NewHealthClient(h.conn)
	healthCheck := func(ctx context.Context) error {
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	healthWatch := func(ctx context.Context) error {
		stream, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	healthList := func(ctx context.Context) error {
		_, err := health.List(ctx, &healthpb.HealthListRequest{})
		return err
	}
	reflect := func(ctx context.Context) error {
		stream, err := reflectionv1.NewServerReflectionClient(h.conn).ServerReflectionInfo(ctx)
		if err != nil {
			return err
		}
		err = stream.Send(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{},
		})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}

	tests := []struct {
		name  string
		call  func(context.Context) error
		token func() string
		want  codes.Code
	}{
		{"CreateOrder without token", create, none, codes.Unauthenticated},
		{"CreateOrder with a malformed token", create, func() string { return "not-a-jwt" }, codes.Unauthenticated},
		{"CreateOrder with an expired token", create, alice(readWrite, authntest.Expired()), codes.Unauthenticated},
		{"CreateOrder with a token not yet valid", create, alice(readWrite, authntest.NotYetValid()), codes.Unauthenticated},
		{"CreateOrder with a refresh token", create, alice(readWrite, authntest.Type(authntest.TypeRefresh)), codes.Unauthenticated},
		{"CreateOrder with another issuer's token", create, alice(readWrite, authntest.IssuerName("urn:tokenauthority:tenant:other")), codes.Unauthenticated},
		{"CreateOrder with a forged signature", create, func() string { return forger.Token(readWrite) }, codes.Unauthenticated},
		{"CreateOrder with scope orders:read only", create, alice(authntest.Scopes(scopeRead)), codes.PermissionDenied},
		{"CreateOrder with no scope", create, alice(), codes.PermissionDenied},
		{"CreateOrder with a token for another audience", create, alice(readWrite, authntest.Audience("billing")), codes.PermissionDenied},
		{"CreateOrder with a token for no audience", create, alice(readWrite, authntest.Audience()), codes.PermissionDenied},
		{"CreateOrder with scope orders:write", create, alice(authntest.Scopes(scopeWrite)), codes.OK},

		{"GetOrder without token", get(alicesOrder.GetOrderId()), none, codes.Unauthenticated},
		{"GetOrder with an expired token", get(alicesOrder.GetOrderId()), alice(readWrite, authntest.Expired()), codes.Unauthenticated},
		{"GetOrder with scope orders:write only", get(alicesOrder.GetOrderId()), alice(authntest.Scopes(scopeWrite)), codes.PermissionDenied},
		{"GetOrder with a token for another audience", get(alicesOrder.GetOrderId()), alice(readWrite, authntest.Audience("billing")), codes.PermissionDenied},
		{"GetOrder with scope orders:read", get(alicesOrder.GetOrderId()), alice(authntest.Scopes(scopeRead)), codes.OK},
		{"GetOrder of another subject", get(alicesOrder.GetOrderId()), func() string { return h.iss.Token(authntest.Subject("bob"), readWrite) }, codes.NotFound},
		{"GetOrder of an unknown order", get("ord_UNKNOWN"), alice(readWrite), codes.NotFound},
		{"GetOrder without order_id", get(""), alice(readWrite), codes.InvalidArgument},

		{"WatchOrders without token", watch, none, codes.Unauthenticated},
		{"WatchOrders with an expired token", watch, alice(readWrite, authntest.Expired()), codes.Unauthenticated},
		{"WatchOrders with a refresh token", watch, alice(readWrite, authntest.Type(authntest.TypeRefresh)), codes.Unauthenticated},
		{"WatchOrders with scope orders:write only", watch, alice(authntest.Scopes(scopeWrite)), codes.PermissionDenied},
		{"WatchOrders with a token for another audience", watch, alice(readWrite, authntest.Audience("billing")), codes.PermissionDenied},
		{"WatchOrders with scope orders:read", watch, alice(authntest.Scopes(scopeRead)), codes.OK},

		{"Health/Check without token", healthCheck, none, codes.OK},
		{"Health/Check with a malformed token", healthCheck, func() string { return "not-a-jwt" }, codes.OK},
		{"Health/Watch without token", healthWatch, none, codes.OK},
		{"Health/List without token", healthList, none, codes.OK},
		{"reflection without token", reflect, none, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(withToken(t, tt.token()))
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

// TestPolicyCoversEveryMethod fails when a method is added to the server without a policy entry
// (it would be refused to every token) or when the policy names a method that does not exist.
func TestPolicyCoversEveryMethod(t *testing.T) {
	t.Parallel()
	p := policy()
	if err := p.Validate(); err != nil {
		t.Errorf("policy is invalid: %v", err)
	}
	srv, _ := newServer(authntest.NewIssuer().Verifier(), &orderService{}, slog.New(slog.DiscardHandler))
	if err := p.Covers(srv.GetServiceInfo()); err != nil {
		t.Errorf("policy does not cover the server:\n%v", err)
	}
}

func TestOrdersBelongToTheirSubject(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tokenOf := func(sub string) string {
		return h.iss.Token(authntest.Subject(sub), authntest.Scopes(scopeRead, scopeWrite))
	}
	aliceCtx, bobCtx := withToken(t, tokenOf("alice")), withToken(t, tokenOf("bob"))

	created, err := h.orders.CreateOrder(aliceCtx, &ordersv1.CreateOrderRequest{Item: "coffee", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := created.GetOrder().GetOwner(); got != "alice" {
		t.Errorf("owner %q, want the token's subject alice", got)
	}
	id := created.GetOrder().GetOrderId()
	if _, err := h.orders.GetOrder(bobCtx, &ordersv1.GetOrderRequest{OrderId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("bob reading alice's order: %v, want NotFound", err)
	}
	got, err := h.orders.GetOrder(aliceCtx, &ordersv1.GetOrderRequest{OrderId: id})
	if err != nil || got.GetOrder().GetItem() != "coffee" {
		t.Errorf("alice reading her order: %v, %v", got, err)
	}

	// Bob's stream shows bob's orders only, including those created while it is open.
	bobStream, err := h.orders.WatchOrders(bobCtx, &ordersv1.WatchOrdersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.orders.CreateOrder(aliceCtx, &ordersv1.CreateOrderRequest{Item: "milk", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.orders.CreateOrder(bobCtx, &ordersv1.CreateOrderRequest{Item: "tea", Quantity: 3}); err != nil {
		t.Fatal(err)
	}
	msg, err := bobStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if o := msg.GetOrder(); o.GetOwner() != "bob" || o.GetItem() != "tea" {
		t.Errorf("bob's stream sent %v, want bob's tea", o)
	}

	// Alice's stream replays her orders, oldest first.
	aliceStream, err := h.orders.WatchOrders(aliceCtx, &ordersv1.WatchOrdersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"coffee", "milk"} {
		msg, err := aliceStream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if o := msg.GetOrder(); o.GetOwner() != "alice" || o.GetItem() != want {
			t.Errorf("alice's stream sent %v, want alice's %s", o, want)
		}
	}
}

func TestCreateOrderValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := withToken(t, h.iss.Token(authntest.Scopes(scopeWrite)))
	tests := []struct {
		name     string
		item     string
		quantity int32
		wantErr  string // empty: accepted
	}{
		{name: "smallest", item: "x", quantity: 1},
		{name: "largest", item: strings.Repeat("é", maxItemLen), quantity: maxQuantity},
		{name: "empty item", item: "", quantity: 1, wantErr: "item must be"},
		{name: "long item", item: strings.Repeat("x", maxItemLen+1), quantity: 1, wantErr: "item must be"},
		{name: "zero quantity", item: "x", quantity: 0, wantErr: "quantity must be"},
		{name: "negative quantity", item: "x", quantity: -1, wantErr: "quantity must be"},
		{name: "large quantity", item: "x", quantity: maxQuantity + 1, wantErr: "quantity must be"},
		{name: "every problem at once", item: "", quantity: 0, wantErr: "item must be 1 to 200 characters; quantity must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := h.orders.CreateOrder(ctx, &ordersv1.CreateOrderRequest{Item: tt.item, Quantity: tt.quantity})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.wantErr)):
				t.Fatalf("got %v, want InvalidArgument containing %q", err, tt.wantErr)
			}
		})
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestWatchOrdersEndsWithItsToken: the interceptor checks a stream's token once, at the open; the
// handler checks it again so that a stream never outlives its token.
func TestWatchOrdersEndsWithItsToken(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	h := newHarness(t, authntest.WithClock(clock.Now))
	ctx := withToken(t, h.iss.Token(authntest.Scopes(scopeRead, scopeWrite), authntest.TTL(time.Minute)))
	if _, err := h.orders.CreateOrder(ctx, &ordersv1.CreateOrderRequest{Item: "coffee", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	stream, err := h.orders.WatchOrders(ctx, &ordersv1.WatchOrdersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("the first order: %v", err)
	}
	clock.Advance(2 * time.Minute)
	_, err = stream.Recv()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "token expired") {
		t.Fatalf("after the token expired the stream gave %v, want Unauthenticated (token expired)", err)
	}
}

func TestOrderBookWatchers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		act     func(b *orderBook)
		wantErr error
	}{
		{
			name: "a slow reader is ended, not waited for",
			act: func(b *orderBook) {
				for range watchBuffer + 1 {
					if _, err := b.create("alice", "x", 1); err != nil {
						t.Error(err)
					}
				}
			},
			wantErr: errFellBehind,
		},
		{
			name:    "closing the book ends every stream",
			act:     func(b *orderBook) { b.close() },
			wantErr: errClosed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newOrderBook(time.Now)
			_, w, stop, err := b.watch("alice")
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			tt.act(b)
			for range w.ch { // drain until the book closes the channel
			}
			if !errors.Is(w.err, tt.wantErr) {
				t.Errorf("subscription ended with %v, want %v", w.err, tt.wantErr)
			}
		})
	}
	t.Run("a closed book refuses new orders and streams", func(t *testing.T) {
		t.Parallel()
		b := newOrderBook(time.Now)
		b.close()
		if _, err := b.create("alice", "x", 1); !errors.Is(err, errClosed) {
			t.Errorf("create: %v, want errClosed", err)
		}
		if _, _, _, err := b.watch("alice"); !errors.Is(err, errClosed) {
			t.Errorf("watch: %v, want errClosed", err)
		}
	})
}
