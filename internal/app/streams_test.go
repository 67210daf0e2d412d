package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// listServices asks the server reflection of conn for its services, as grpcurl list does.
func listServices(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = stream.Recv()
	return err
}

// TestReflectionByEnvironment checks the wiring of reflection's policy: open in development,
// where the README's grpcurl list needs no key, and behind a credential in production.
func TestReflectionByEnvironment(t *testing.T) {
	dev := start(t, testConfig(t, ""))
	if err := listServices(context.Background(), dev.conn); err != nil {
		t.Errorf("development, no key: %v, want the services", err)
	}

	cfg := testConfig(t, "")
	cfg.Env = config.EnvProduction // on the in-memory store, which Parse would refuse in production
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, gl, hl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := listServices(context.Background(), conn); status.Code(err) != codes.Unauthenticated {
		t.Errorf("production, no key: %v, want Unauthenticated", err)
	}
	if err := listServices(withKey(cfg.MasterKey.Reveal()), conn); err != nil {
		t.Errorf("production, the master credential: %v, want the services", err)
	}
}

// TestWatchEndsWithItsTenantAcrossReplicas deletes a tenant through one replica and creates it
// again under the same id: a WatchRevocations stream of the first tenant on another replica ends
// with Unauthenticated, and never receives an event of the second, through the real Redis log.
func TestWatchEndsWithItsTenantAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	r1 := start(t, cfg)
	r2 := start(t, cfg)
	key := unlimitedKey(t, r1, "acme", "urn:test:acme")

	ctx, cancel := context.WithCancel(withKey(key))
	defer cancel()
	stream, err := tokenauthorityv1.NewTokenServiceClient(r2.conn).WatchRevocations(ctx, &tokenauthorityv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetKind() != tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED {
		t.Fatalf("first message %v, %v; want the live marker", m, err)
	}

	admin := tokenauthorityv1.NewAdminServiceClient(r1.conn)
	must(admin.DeleteTenant(withKey(r1.master), &tokenauthorityv1.DeleteTenantRequest{TenantId: "acme"}))
	next := unlimitedKey(t, r1, "acme", "urn:test:acme")
	ts := tokenauthorityv1.NewTokenServiceClient(r1.conn)
	pair := must(ts.IssueToken(withKey(next), &tokenauthorityv1.IssueTokenRequest{Subject: "mallory"}))
	must(ts.RevokeToken(withKey(next), &tokenauthorityv1.RevokeTokenRequest{
		Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: pair.GetSessionId()}}))

	ended := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				ended <- err
				return
			}
			if m.GetSessionId() == pair.GetSessionId() {
				ended <- status.Error(codes.DataLoss, "the stream of the deleted tenant received the new tenant's session "+m.GetSessionId())
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("the stream ended with %v, want Unauthenticated", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stream of the deleted tenant is still open")
	}
}
