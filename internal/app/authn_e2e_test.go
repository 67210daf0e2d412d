package app

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// protected is a service guarded by the authn interceptor in local mode: the standard health
// service, whose Check needs scope "orders:read".
type protected struct {
	client healthpb.HealthClient
}

func serveProtected(t *testing.T, v authn.Verifier) *protected {
	t.Helper()
	policy := authn.Policy{Scopes: map[string][]string{healthpb.Health_Check_FullMethodName: {"orders:read"}}}
	srv := grpc.NewServer(grpc.UnaryInterceptor(authn.UnaryServerInterceptor(v, policy)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &protected{client: healthpb.NewHealthClient(conn)}
}

// call calls the protected method with the token and returns the status code.
func (p *protected) call(tok string) codes.Code {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok), 5*time.Second)
	defer cancel()
	_, err := p.client.Check(ctx, &healthpb.HealthCheckRequest{})
	return status.Code(err)
}

// waitFor polls the protected method until it answers want, and returns how long that took.
func (p *protected) waitFor(t *testing.T, tok string, want codes.Code, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		got := p.call(tok)
		if got == want {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("the protected method still answers %v after %v, want %v", got, within, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestInterceptorLocalModeAcrossReplicas: an interceptor in local mode watches replica 2 (through a
// TCP proxy, to cut its stream); tokens are issued and revoked through replica 1.
func TestInterceptorLocalModeAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	r1 := start(t, cfg)
	r2 := start(t, cfg)
	proxy := redistest.StartProxy(t, r2.conn.Target())
	conn, err := grpc.NewClient(proxy.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	const staleness = 2 * time.Second
	ts := tokenauthorityv1.NewTokenServiceClient(r1.conn)
	issuer := withKey(r1.devKey)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v, err := authn.NewLocal(ctx, conn, r2.devKey, authn.WithAudience("orders"), authn.WithStalenessBound(staleness),
		authn.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(v.Close)
	svc := serveProtected(t, v) // No WithIssuer: the verifier takes the one ListPublicKeys names.
	issue := func(subject string, scopes ...string) *tokenauthorityv1.IssueTokenResponse {
		return must(ts.IssueToken(issuer, &tokenauthorityv1.IssueTokenRequest{Subject: subject, Audience: []string{"orders"}, Scopes: scopes}))
	}

	t.Run("scopes and audiences", func(t *testing.T) {
		cases := []struct {
			name string
			tok  string
			want codes.Code
		}{
			{"good token", issue("alice", "orders:read").GetAccessToken(), codes.OK},
			{"missing scope", issue("alice", "orders:write").GetAccessToken(), codes.PermissionDenied},
			{"other audience", must(ts.IssueToken(issuer, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Audience: []string{"billing"},
				Scopes: []string{"orders:read"}})).GetAccessToken(), codes.PermissionDenied},
			{"refresh token as access token", issue("alice", "orders:read").GetRefreshToken(), codes.Unauthenticated},
			{"no token", "", codes.Unauthenticated},
		}
		for _, c := range cases {
			if got := svc.call(c.tok); got != c.want {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
			}
		}
	})

	t.Run("revocation on replica 1 reaches the interceptor watching replica 2", func(t *testing.T) {
		const n = 50
		lat := make([]time.Duration, 0, n)
		for i := range n {
			p := issue("bob", "orders:read")
			if got := svc.call(p.GetAccessToken()); got != codes.OK {
				t.Fatalf("fresh token: %v", got)
			}
			var target *tokenauthorityv1.RevokeTokenRequest
			if i%2 == 0 {
				target = &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: p.GetAccessToken()}}
			} else {
				target = &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: p.GetSessionId()}}
			}
			began := time.Now()
			must(ts.RevokeToken(issuer, target))
			svc.waitFor(t, p.GetAccessToken(), codes.Unauthenticated, 10*time.Second)
			lat = append(lat, time.Since(began))
		}
		slices.Sort(lat)
		t.Logf("revoke-to-reject (RevokeToken on replica 1 until the interceptor on replica 2's stream rejects), %d revocations: p50 %v, p99 %v, max %v",
			n, lat[n/2], lat[n*99/100], lat[n-1])
	})

	t.Run("subject cut-off", func(t *testing.T) {
		p := issue("carol", "orders:read")
		// A local verifier compares the cut-off with the token's iat_ms: the cut-off comes
		// strictly after the token, and the next token strictly after the cut-off.
		iatMS, err := payloadOf(t, p.GetAccessToken())["iat_ms"].(json.Number).Int64()
		if err != nil {
			t.Fatalf("iat_ms: %v", err)
		}
		waitPast(time.UnixMilli(iatMS))
		cut := must(ts.RevokeSessions(issuer, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "carol"}}))
		svc.waitFor(t, p.GetAccessToken(), codes.Unauthenticated, 10*time.Second)
		waitPast(cut.GetCutoffTime().AsTime())
		if got := svc.call(issue("carol", "orders:read").GetAccessToken()); got != codes.OK {
			t.Errorf("a token issued after the cut-off: %v", got)
		}
	})

	t.Run("stream cut: fails closed after the staleness bound, then catches up", func(t *testing.T) {
		kept := issue("dave", "orders:read")
		missed := issue("erin", "orders:read")
		proxy.Refuse()
		proxy.Cut()
		// Revoked while the interceptor cannot hear it.
		must(ts.RevokeToken(issuer, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: missed.GetSessionId()}}))
		failedAfter := svc.waitFor(t, kept.GetAccessToken(), codes.Unavailable, 10*staleness)
		// The bound runs from the last message received, a heartbeat up to a second before the cut.
		t.Logf("stream cut: the interceptor failed closed %v after the cut (staleness bound %v)", failedAfter, staleness)
		proxy.Accept()
		svc.waitFor(t, kept.GetAccessToken(), codes.OK, 30*time.Second)
		if got := svc.call(missed.GetAccessToken()); got != codes.Unauthenticated {
			t.Errorf("the token revoked while the stream was down: %v after the stream returned, want Unauthenticated", got)
		}
	})

	t.Run("key withdrawn", func(t *testing.T) {
		p := issue("frank", "orders:read")
		admin := tokenauthorityv1.NewAdminServiceClient(r1.conn)
		must(admin.WithdrawSigningKey(issuer, &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: kidOf(t, p.GetAccessToken())}))
		svc.waitFor(t, p.GetAccessToken(), codes.Unauthenticated, 10*time.Second)
		// The replacement key signs on replica 1 once its key cache refreshes; the interceptor
		// fetches it on first sight of its kid.
		deadline := time.Now().Add(15 * time.Second)
		for {
			fresh := issue("frank", "orders:read")
			if kidOf(t, fresh.GetAccessToken()) != kidOf(t, p.GetAccessToken()) {
				if got := svc.call(fresh.GetAccessToken()); got != codes.OK {
					t.Errorf("a token of the replacement key: %v", got)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("replica 1 still signs with the withdrawn key")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// waitPast returns once the clock is past the millisecond of at. The authority stamps tokens and
// cut-offs from the real clock, in whole milliseconds; this waits for that clock to tick (a
// millisecond at most), not for something to happen.
func waitPast(at time.Time) {
	for time.Now().UnixMilli() <= at.UnixMilli() {
		time.Sleep(100 * time.Microsecond)
	}
}
