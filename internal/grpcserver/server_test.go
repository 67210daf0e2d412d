package grpcserver

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/lifecycle"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// testMasterKey is the master credential of the test servers.
const testMasterKey = "test-master-key-of-at-least-32-characters"

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend is the store shared by the replicas of a test, on one fake clock.
type backend struct {
	clock  *fakeClock
	store  *memory.Store
	events *memory.Events
	kek    []byte
	// keyOpts configure the key managers of the replicas started after they are set.
	keyOpts []keys.Option
}

func newBackend() *backend {
	clock := &fakeClock{t: time.Now()}
	// The log keeps events longer than any test moves the clock, so that no watch is told to
	// resynchronise.
	return &backend{clock: clock, store: memory.New(clock.Now), events: memory.NewEvents(clock.Now, 48*time.Hour, 0),
		kek: make([]byte, 32)}
}

// replica is one in-process server over the backend, reached through conn.
type replica struct {
	conn    *grpc.ClientConn
	tenants *tenant.Service
	// ticks drive the credential re-checks of the replica's revocation streams: each value sent
	// is received by one stream's guard.
	ticks chan time.Time
}

// replica starts a server over the backend; tweak, when not nil, adjusts its Config.
func (b *backend) replica(t testing.TB, tweak func(*Config)) *replica {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	r := b.serve(t, lis, tweak)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r.conn = conn
	return r
}

// serve serves a replica on lis until the test ends.
func (b *backend) serve(t testing.TB, lis net.Listener, tweak func(*Config)) *replica {
	t.Helper()
	km, err := keys.NewManager(b.store, b.kek, b.clock.Now, b.keyOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{tenants: tenant.NewService(b.store, testMasterKey, b.clock.Now), ticks: make(chan time.Time)}
	tokens := token.New(token.Config{Store: b.store, Keys: km, Now: b.clock.Now, AccessTTL: 5 * time.Minute,
		RefreshTTL: time.Hour, MaxAccessTTL: time.Hour, MaxRefreshTTL: 24 * time.Hour, Events: b.events})
	hub := revocation.NewHub(b.events, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go hub.Run(ctx)
	cfg := Config{Tokens: tokens, Keys: km, Tenants: r.tenants, Logger: discardLogger(), Revocations: hub, Now: b.clock.Now,
		Lifecycle:     lifecycle.New(lifecycle.Config{Tenants: r.tenants, Keys: km, Tokens: tokens}),
		RecheckTicker: func(time.Duration) (<-chan time.Time, func()) { return r.ticks, func() {} }}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetServing(true)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(func() {
		hub.Close()
		srv.GRPC.Stop()
		cancel()
	})
	return r
}

func withAPIKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, APIKeyHeader, key)
}

// must returns v, or fails the test on err (a panic, which the testing package reports with the
// stack of the failing call).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testKey is an API key of a test tenant.
type testKey struct {
	id, value string
}

func (k testKey) ctx() context.Context { return withAPIKey(context.Background(), k.value) }

// newTenant creates the tenant id through r and returns a key of it with every role.
func newTenant(t testing.TB, r *replica, id string) testKey {
	t.Helper()
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	created := must(admin.CreateTenant(withAPIKey(context.Background(), testMasterKey), &tokenauthorityv1.CreateTenantRequest{
		Tenant: &tokenauthorityv1.Tenant{TenantId: id, Issuer: "urn:test:" + id}}))
	k := must(admin.CreateApiKey(withAPIKey(context.Background(), created.GetAdminApiKey()), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "all", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY,
			tokenauthorityv1.Role_ROLE_REVOKE, tokenauthorityv1.Role_ROLE_ADMIN}}))
	return testKey{id: k.GetApiKey().GetKeyId(), value: k.GetSecret()}
}
