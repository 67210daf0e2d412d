package app

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// TestServiceOnCluster runs two replicas of the service on a Redis Cluster of three masters,
// configured by the cluster URL alone: the whole lifecycle works; a token issued on one replica
// verifies, refreshes and is revoked on the other; and a tenant revoke-all, whose cut-off lives in
// one slot, ends the sessions of subjects spread over every master, on both replicas.
func TestServiceOnCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	cfg := testConfig(t, cluster.URL())
	r1 := start(t, cfg)
	r2 := start(t, cfg)
	exerciseLifecycle(t, r1)

	ts1 := tokenauthorityv1.NewTokenServiceClient(r1.conn)
	ts2 := tokenauthorityv1.NewTokenServiceClient(r2.conn)
	ctx1, ctx2 := withKey(r1.devKey), withKey(r2.devKey)

	// Across replicas: issue on one, verify, refresh and revoke on the other.
	pair := must(ts1.IssueToken(ctx1, &tokenauthorityv1.IssueTokenRequest{Subject: "carol"}))
	if v := must(ts2.VerifyToken(ctx2, &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()})); !v.GetActive() {
		t.Fatalf("token of replica 1 on replica 2: %v", v.GetReason())
	}
	refreshed := must(ts2.RefreshToken(ctx2, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: pair.GetRefreshToken()}))
	if v := must(ts1.VerifyToken(ctx1, &tokenauthorityv1.VerifyTokenRequest{Token: refreshed.GetAccessToken()})); !v.GetActive() {
		t.Fatalf("token refreshed on replica 2, on replica 1: %v", v.GetReason())
	}
	must(ts2.RevokeToken(ctx2, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: refreshed.GetAccessToken()}}))
	v := must(ts1.VerifyToken(ctx1, &tokenauthorityv1.VerifyTokenRequest{Token: refreshed.GetAccessToken()}))
	if v.GetActive() || v.GetReason() != tokenauthorityv1.InactiveReason_INACTIVE_REASON_REVOKED {
		t.Fatalf("token revoked on replica 2, on replica 1: %v", v)
	}

	// Sessions of many subjects, spread over the masters by their subjects' hash tags.
	client := cluster.Client(t)
	type issuedOn struct {
		pair *tokenauthorityv1.IssueTokenResponse
		ts   tokenauthorityv1.TokenServiceClient
		ctx  context.Context
	}
	var sessions []issuedOn
	masters := make(map[string]int)
	for i := range 30 {
		ts, ctx := ts1, ctx1
		if i%2 == 1 {
			ts, ctx = ts2, ctx2
		}
		p := must(ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: fmt.Sprintf("user-%d", i)}))
		sessions = append(sessions, issuedOn{pair: p, ts: ts, ctx: ctx})
		tag, ok := store.SessionTag(p.GetSessionId())
		if !ok {
			t.Fatalf("malformed session id %q", p.GetSessionId())
		}
		// The slot of a key with this hash tag: where the session's keys live.
		m, err := client.MasterForKey(context.Background(), "{"+tag+"}")
		if err != nil {
			t.Fatalf("MasterForKey: %v", err)
		}
		masters[m.Options().Addr]++
	}
	if len(masters) != 3 {
		t.Fatalf("the sessions live on %d masters (%v), want all 3", len(masters), masters)
	}
	t.Logf("sessions per master before the tenant revoke-all: %v", masters)

	leaveMillisecond()
	must(ts2.RevokeSessions(ctx2, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}}))
	for i, s := range sessions {
		for _, r := range []struct {
			ts  tokenauthorityv1.TokenServiceClient
			ctx context.Context
		}{{ts1, ctx1}, {ts2, ctx2}} {
			v := must(r.ts.VerifyToken(r.ctx, &tokenauthorityv1.VerifyTokenRequest{Token: s.pair.GetAccessToken()}))
			if v.GetActive() || v.GetReason() != tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF {
				t.Fatalf("session %d after the tenant revoke-all: %v", i, v)
			}
		}
		_, err := s.ts.RefreshToken(s.ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: s.pair.GetRefreshToken()})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("refresh of session %d after the tenant revoke-all: %v, want Unauthenticated", i, err)
		}
	}
	// A session opened after the cut-off lives.
	leaveMillisecond()
	after := must(ts1.IssueToken(ctx1, &tokenauthorityv1.IssueTokenRequest{Subject: "user-0"}))
	if v := must(ts2.VerifyToken(ctx2, &tokenauthorityv1.VerifyTokenRequest{Token: after.GetAccessToken()})); !v.GetActive() {
		t.Fatalf("session opened after the tenant revoke-all: %v", v.GetReason())
	}
	assertNoSecretsLogged(t, r2, pair.GetAccessToken(), pair.GetRefreshToken(), refreshed.GetRefreshToken())
}
