package app

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// exchangeCluster is two replicas on one real Redis, with the exchange key of service A (it
// accepts tokens meant for "svc-a" and exchanges them for "orders"), and service "orders"
// protected by the interceptor in local mode (fed by replica 2) and in remote mode (asking
// replica 2, without a cache).
type exchangeCluster struct {
	r1, r2        *running
	ts1, ts2      tokenauthorityv1.TokenServiceClient
	svcA          string
	local, remote *protected
}

func startExchangeCluster(t *testing.T) *exchangeCluster {
	t.Helper()
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	c := &exchangeCluster{r1: start(t, cfg), r2: start(t, cfg)}
	c.ts1, c.ts2 = tokenauthorityv1.NewTokenServiceClient(c.r1.conn), tokenauthorityv1.NewTokenServiceClient(c.r2.conn)
	k := must(tokenauthorityv1.NewAdminServiceClient(c.r1.conn).CreateApiKey(withKey(c.r1.devKey), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "svc-a", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_EXCHANGE},
		ExchangePolicy: &tokenauthorityv1.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"orders"}}}))
	c.svcA = k.GetSecret()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lv, err := authn.NewLocal(ctx, c.r2.conn, c.r2.devKey, authn.WithAudience("orders"), authn.WithStalenessBound(5*time.Second))
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(lv.Close)
	rv, err := authn.NewRemote(c.r2.conn, c.r2.devKey, authn.WithAudience("orders"), authn.WithCacheSize(0))
	if err != nil {
		t.Fatalf("NewRemote: %v", err)
	}
	t.Cleanup(rv.Close)
	c.local, c.remote = serveProtected(t, lv), serveProtected(t, rv)
	return c
}

// login issues subject's token for service A, through replica 1.
func (c *exchangeCluster) login(t *testing.T, subject string) *tokenauthorityv1.IssueTokenResponse {
	t.Helper()
	return must(c.ts1.IssueToken(withKey(c.r1.devKey), &tokenauthorityv1.IssueTokenRequest{
		Subject: subject, Audience: []string{"svc-a"}, Scopes: []string{"orders:read", "orders:write"}}))
}

// exchange has service A exchange subjectToken for a token for "orders", through ts.
func (c *exchangeCluster) exchange(ts tokenauthorityv1.TokenServiceClient, subjectToken string) (*tokenauthorityv1.ExchangeTokenResponse, error) {
	return ts.ExchangeToken(withKey(c.svcA), &tokenauthorityv1.ExchangeTokenRequest{
		SubjectToken: subjectToken, Audience: []string{"orders"}, Scopes: []string{"orders:read"}})
}

// active asks replica 2 whether tok is active.
func (c *exchangeCluster) active(t *testing.T, tok string) bool {
	t.Helper()
	return must(c.ts2.VerifyToken(withKey(c.r2.devKey), &tokenauthorityv1.VerifyTokenRequest{Token: tok})).GetActive()
}

// TestExchangeCascadeAcrossReplicas: a token exchanged on replica 1 is accepted by "orders" in
// both modes and shows its actor; each revocation made on replica 1 ends it on replica 2 in
// VerifyToken and in both interceptors, without extra bookkeeping; revoking it by jti leaves the
// user's session.
func TestExchangeCascadeAcrossReplicas(t *testing.T) {
	c := startExchangeCluster(t)
	dev := withKey(c.r1.devKey)
	cases := []struct {
		name        string
		revoke      func(t *testing.T, user *tokenauthorityv1.IssueTokenResponse, jti string)
		userSurvive bool
	}{
		{"exchanged token by jti", func(t *testing.T, _ *tokenauthorityv1.IssueTokenResponse, jti string) {
			must(c.ts1.RevokeToken(dev, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: jti}}))
		}, true},
		{"session", func(t *testing.T, user *tokenauthorityv1.IssueTokenResponse, _ string) {
			must(c.ts1.RevokeToken(dev, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: user.GetSessionId()}}))
		}, false},
		{"user's refresh token", func(t *testing.T, user *tokenauthorityv1.IssueTokenResponse, _ string) {
			must(c.ts1.RevokeToken(dev, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: user.GetRefreshToken()}}))
		}, false},
		{"subject", func(t *testing.T, _ *tokenauthorityv1.IssueTokenResponse, _ string) {
			must(c.ts1.RevokeSessions(dev, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "subject-case"}}))
		}, false},
		// Last: it ends every session of the tenant.
		{"tenant", func(t *testing.T, _ *tokenauthorityv1.IssueTokenResponse, _ string) {
			must(c.ts1.RevokeSessions(dev, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}}))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := "alice-" + fmt.Sprint(time.Now().UnixNano())
			if tc.name == "subject" {
				subject = "subject-case"
			}
			user := c.login(t, subject)
			ex := must(c.exchange(c.ts1, user.GetAccessToken()))
			v := must(c.ts2.VerifyToken(withKey(c.r2.devKey), &tokenauthorityv1.VerifyTokenRequest{Token: ex.GetAccessToken(), Audience: "orders"}))
			if !v.GetActive() || len(v.GetClaims().GetActor()) != 1 || v.GetClaims().GetActor()[0].GetSubject() != "svc-a" ||
				v.GetClaims().GetSubject() != subject || v.GetClaims().GetSessionId() != user.GetSessionId() {
				t.Fatalf("VerifyToken on replica 2 = %v", v)
			}
			for name, p := range map[string]*protected{"local": c.local, "remote": c.remote} {
				if got := p.call(ex.GetAccessToken()); got != codes.OK {
					t.Fatalf("%s mode before the revocation: %v", name, got)
				}
			}
			tc.revoke(t, user, v.GetClaims().GetJti())
			if c.active(t, ex.GetAccessToken()) {
				t.Error("the exchanged token is active on replica 2 after the revocation")
			}
			if got := c.remote.call(ex.GetAccessToken()); got != codes.Unauthenticated {
				t.Errorf("remote mode after the revocation: %v", got)
			}
			c.local.waitFor(t, ex.GetAccessToken(), codes.Unauthenticated, 5*time.Second)
			if got := c.active(t, user.GetAccessToken()); got != tc.userSurvive {
				t.Errorf("the user's own token active = %v; want %v", got, tc.userSurvive)
			}
			if tc.userSurvive {
				// The session goes on: the user's token can be exchanged again.
				if _, err := c.exchange(c.ts2, user.GetAccessToken()); err != nil {
					t.Errorf("exchange after revoking an exchanged token: %v", err)
				}
			}
		})
	}
}

// TestExchangeRacingRevocation: exchanges run on both replicas while the user's session (or all
// of the subject's sessions) is revoked: every exchange either fails or yields a token that is
// dead once the revocation is done, in VerifyToken and in the local-mode interceptor. No
// exchanged token outlives the revocation.
func TestExchangeRacingRevocation(t *testing.T) {
	c := startExchangeCluster(t)
	for _, kind := range []string{"session", "subject"} {
		t.Run(kind, func(t *testing.T) {
			subject := "racer-" + kind
			user := c.login(t, subject)
			var (
				mu       sync.Mutex
				tokens   []string
				wg       sync.WaitGroup
				attempts atomic.Int64
			)
			stop := make(chan struct{})
			for w := range 4 {
				ts := []tokenauthorityv1.TokenServiceClient{c.ts1, c.ts2}[w%2]
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						ex, err := c.exchange(ts, user.GetAccessToken())
						attempts.Add(1)
						if err == nil {
							mu.Lock()
							tokens = append(tokens, ex.GetAccessToken())
							mu.Unlock()
						}
					}
				})
			}
			// Let exchanges succeed for a while, then revoke in the middle of them.
			for {
				mu.Lock()
				n := len(tokens)
				mu.Unlock()
				if n >= 20 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			dev := withKey(c.r2.devKey)
			if kind == "session" {
				must(c.ts2.RevokeToken(dev, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: user.GetSessionId()}}))
			} else {
				must(c.ts2.RevokeSessions(dev, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: subject}}))
			}
			// Exchanges keep running after the revocation, a few on each worker: all of them
			// must fail.
			mu.Lock()
			before := len(tokens)
			mu.Unlock()
			waitUntil(t, "exchanges after the revocation", time.Minute, callsPast(&attempts, 20))
			close(stop)
			wg.Wait()
			t.Logf("%d tokens exchanged before the revocation returned, %d in all", before, len(tokens))
			// Once the local verifier has the revocation (its first refusal), it refuses every token.
			c.local.waitFor(t, tokens[0], codes.Unauthenticated, 5*time.Second)
			for i, tok := range tokens {
				if c.active(t, tok) {
					t.Errorf("token %d is active on replica 2 after the revocation", i)
				}
				if got := c.local.call(tok); got != codes.Unauthenticated {
					t.Errorf("token %d: local mode answers %v after the revocation", i, got)
				}
			}
			if _, err := c.exchange(c.ts1, user.GetAccessToken()); err == nil {
				t.Error("an exchange after the revocation succeeded")
			}
		})
	}
}
