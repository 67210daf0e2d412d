package app

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/extauthz"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// offsetClock is the real clock moved forward by what a test adds: the staleness bound is crossed
// by the test, not by waiting.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

func sidecarCheck(t *testing.T, sc *extauthz.Sidecar, tok string) codes.Code {
	t.Helper()
	resp, err := sc.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Host: "orders.internal", Path: "/orders/1", Headers: map[string]string{"authorization": "Bearer " + tok}}}}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return codes.Code(resp.GetStatus().GetCode())
}

// waitCheck polls until the sidecar answers want, and returns how long it took.
func waitCheck(t *testing.T, sc *extauthz.Sidecar, tok string, want codes.Code, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		got := sidecarCheck(t, sc, tok)
		if got == want {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("the sidecar still answers %v after %v, want %v", got, within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestExtAuthzSidecar runs the node-local placement against a running authority reached through a
// proxy that the test can cut: a revocation reaches it within the interceptors' bound, and with the
// authority gone it answers from what it has until its staleness bound, then fails closed.
func TestExtAuthzSidecar(t *testing.T) {
	r := start(t, testConfig(t, ""))
	proxy := redistest.StartProxy(t, r.conn.Target())
	conn, err := grpc.NewClient(proxy.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	policy, err := extauthz.ParsePolicy([]byte(`{"routes":[{"host":"orders.internal","path_prefix":"/orders/","audience":"orders","scopes":["orders.read"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	const staleness = 3 * time.Second
	clock := &offsetClock{}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sc, err := extauthz.NewSidecar(ctx, extauthz.SidecarConfig{Conn: conn, APIKey: r.devKey, Policy: policy,
		Options: []authn.Option{authn.WithStalenessBound(staleness), authn.WithClock(clock.Now),
			authn.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond)}})
	if err != nil {
		t.Fatalf("NewSidecar: %v", err)
	}
	t.Cleanup(sc.Close)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	issue := func(subject string) *tokenauthorityv1.IssueTokenResponse {
		return must(ts.IssueToken(withKey(r.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: subject, Audience: []string{"orders"}, Scopes: []string{"orders.read"}}))
	}
	revoke := func(sid string) {
		must(ts.RevokeToken(withKey(r.devKey), &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: sid}}))
	}

	t.Run("revocation reaches the sidecar within the staleness bound", func(t *testing.T) {
		for range 10 {
			p := issue("alice")
			if got := sidecarCheck(t, sc, p.GetAccessToken()); got != codes.OK {
				t.Fatalf("fresh token: %v", got)
			}
			began := time.Now()
			revoke(p.GetSessionId())
			// The bound is a correctness limit, not a timing assertion: the poll gives up at it.
			waitCheck(t, sc, p.GetAccessToken(), codes.Unauthenticated, staleness)
			t.Logf("revoke-to-401: %v", time.Since(began))
		}
	})

	t.Run("authority down: answers until the staleness bound, then fails closed", func(t *testing.T) {
		kept := issue("bob")
		missed := issue("carol")
		if got := sidecarCheck(t, sc, kept.GetAccessToken()); got != codes.OK {
			t.Fatalf("before the cut: %v", got)
		}
		proxy.Refuse()
		proxy.Cut()
		revoke(missed.GetSessionId()) // the sidecar cannot hear it
		// Within the bound (by the sidecar's clock), it answers from its keys and revocations.
		clock.Advance(staleness / 2)
		for _, tok := range []string{kept.GetAccessToken(), missed.GetAccessToken()} {
			if got := sidecarCheck(t, sc, tok); got != codes.OK {
				t.Fatalf("within the staleness bound: %v, want OK (answered from memory)", got)
			}
		}
		if got := sidecarCheck(t, sc, "not.a.token"); got != codes.Unauthenticated {
			t.Errorf("a malformed token within the bound: %v", got)
		}
		// Past it, nothing is allowed: 503, Unavailable.
		clock.Advance(staleness)
		for _, tok := range []string{kept.GetAccessToken(), missed.GetAccessToken()} {
			if got := sidecarCheck(t, sc, tok); got != codes.Unavailable {
				t.Fatalf("past the staleness bound: %v, want Unavailable", got)
			}
		}
		if sc.Live() {
			t.Error("Live past the staleness bound")
		}
		proxy.Accept()
		waitCheck(t, sc, kept.GetAccessToken(), codes.OK, 30*time.Second)
		if got := sidecarCheck(t, sc, missed.GetAccessToken()); got != codes.Unauthenticated {
			t.Errorf("the token revoked while the authority was unreachable: %v after it returned, want Unauthenticated", got)
		}
	})
}
