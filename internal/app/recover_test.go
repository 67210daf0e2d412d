package app

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// TestTokenSourceRecoversAfterRevocation: callers with a TokenSource and its interceptors call a
// service protected in local mode in a steady loop; the authority revokes one caller's session,
// then every session of their subject. Each caller sees at most one failed call per revocation
// (none, in practice: the interceptor retries a refused call once with a renewed token) and then
// succeeds again, without a restart or a wait for the old token's renewal time.
func TestTokenSourceRecoversAfterRevocation(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, testConfig(t, srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v, err := authn.NewLocal(ctx, r.conn, r.devKey, authn.WithAudience("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	policy := authn.Policy{Public: authn.HealthMethods[1:], Scopes: map[string][]string{healthpb.Health_Check_FullMethodName: {"orders:read"}}}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(authn.UnaryServerInterceptor(v, policy)))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	const callers = 4
	type caller struct {
		ts       *authn.TokenSource
		client   healthpb.HealthClient
		ok, fail atomic.Int64
	}
	cs := make([]*caller, callers)
	for i := range cs {
		ts, err := authn.NewTokenSource(r.conn, r.devKey, authn.TokenRequest{Subject: "svc-billing", Audience: []string{"orders"}, Scopes: []string{"orders:read"}},
			authn.AllowInsecureTransport())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(ts), grpc.WithUnaryInterceptor(ts.UnaryClientInterceptor()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		cs[i] = &caller{ts: ts, client: healthpb.NewHealthClient(conn)}
	}
	loopCtx, stopLoop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loopCtx.Err() == nil {
				callCtx, cancelCall := context.WithTimeout(loopCtx, 5*time.Second)
				_, err := c.client.Check(callCtx, &healthpb.HealthCheckRequest{})
				cancelCall()
				switch {
				case err == nil:
					c.ok.Add(1)
				case loopCtx.Err() == nil:
					c.fail.Add(1)
					t.Logf("a call failed: %v", err)
				}
			}
		}()
	}
	defer func() { stopLoop(); wg.Wait() }()

	tokens := tokenauthorityv1.NewTokenServiceClient(r.conn)
	admin := withKey(r.devKey)
	// settled waits until every caller holds a token other than old[i] (any token where old[i] is
	// empty) and has succeeded with it.
	settled := func(what string, old []string) {
		t.Helper()
		base := make([]int64, callers)
		for i, c := range cs {
			base[i] = c.ok.Load()
		}
		deadline := time.Now().Add(30 * time.Second)
		for i, c := range cs {
			for {
				cur, err := c.ts.Token(ctx)
				if err == nil && (old[i] == "" || cur != old[i]) && c.ok.Load() > base[i]+5 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: caller %d did not recover (ok %d, failed %d)", what, i, c.ok.Load(), c.fail.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	current := func() []string {
		out := make([]string, callers)
		for i, c := range cs {
			out[i] = must(c.ts.Token(ctx))
		}
		return out
	}
	settled("start", make([]string, callers))

	// One caller's session is revoked.
	before := current()
	vr := must(tokens.VerifyToken(admin, &tokenauthorityv1.VerifyTokenRequest{Token: before[0]}))
	must(tokens.RevokeToken(admin, &tokenauthorityv1.RevokeTokenRequest{
		Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: vr.GetClaims().GetSessionId()}}))
	onlyFirst := make([]string, callers) // the others may keep their tokens
	onlyFirst[0] = before[0]
	waitUntil(t, "the first caller to replace its revoked token", 30*time.Second, func() bool { return current()[0] != before[0] })
	settled("session revoked", onlyFirst)
	failsAfterSession := make([]int64, callers)
	for i, c := range cs {
		failsAfterSession[i] = c.fail.Load()
		if failsAfterSession[i] > 1 {
			t.Errorf("caller %d: %d failed calls after its session was revoked, want at most 1", i, failsAfterSession[i])
		}
	}

	// Every session of the subject is cut off.
	before = current()
	must(tokens.RevokeSessions(admin, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "svc-billing"}}))
	settled("subject revoked", before)
	for i, c := range cs {
		if n := c.fail.Load() - failsAfterSession[i]; n > 1 {
			t.Errorf("caller %d: %d failed calls after its subject was revoked, want at most 1", i, n)
		}
	}
	stopLoop()
	wg.Wait()
	for i, c := range cs {
		t.Logf("caller %d: %d calls succeeded, %d failed", i, c.ok.Load(), c.fail.Load())
	}
}
