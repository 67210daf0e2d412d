package grpcserver

import (
	"context"
	"errors"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/extauthz"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

func testExtAuthzPolicy(t testing.TB) *extauthz.Policy {
	t.Helper()
	p, err := extauthz.ParsePolicy([]byte(`{"routes":[
		{"path_prefix":"/api/","audience":"orders","scopes":["orders.read"]},
		{"path_prefix":"/admin/","audience":"orders","scopes":["orders.admin"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkRequest(path, tok string) *authv3.CheckRequest {
	h := map[string]string{}
	if tok != "" {
		h["authorization"] = "Bearer " + tok
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "orders", Path: path, Headers: h}}}}
}

// TestExtAuthzOnAuthority covers the strict placement: Check through the real interceptor chain,
// the caller authenticated by its API key, every answer from the store at that moment.
func TestExtAuthzOnAuthority(t *testing.T) {
	r := newBackend().replica(t, func(c *Config) { c.ExtAuthz = testExtAuthzPolicy(t) })
	k := newTenant(t, r, "acme")
	other := newTenant(t, r, "other")
	tokens := tokenauthorityv1.NewTokenServiceClient(r.conn)
	issue := func(k testKey, aud string, scopes ...string) *tokenauthorityv1.IssueTokenResponse {
		return must(tokens.IssueToken(k.ctx(), &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Audience: []string{aud}, Scopes: scopes}))
	}
	good := issue(k, "orders", "orders.read")
	revoked := issue(k, "orders", "orders.read")
	must(tokens.RevokeToken(k.ctx(), &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: revoked.GetAccessToken()}}))
	foreign := issue(other, "orders", "orders.read")
	billing := issue(k, "billing", "orders.read")
	verifyOnly := must(tokenauthorityv1.NewAdminServiceClient(r.conn).CreateApiKey(k.ctx(), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "verify", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}}))
	issueOnly := must(tokenauthorityv1.NewAdminServiceClient(r.conn).CreateApiKey(k.ctx(), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "issue", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE}}))
	client := authv3.NewAuthorizationClient(r.conn)

	tests := []struct {
		name     string
		ctx      context.Context
		req      *authv3.CheckRequest
		wantErr  codes.Code // the call fails with it; OK when the call succeeds
		wantCode codes.Code // the CheckResponse's status
		wantHTTP int
	}{
		{name: "active", ctx: withAPIKey(context.Background(), verifyOnly.GetSecret()), req: checkRequest("/api/o/1", good.GetAccessToken()), wantCode: codes.OK},
		{name: "no API key", ctx: context.Background(), req: checkRequest("/api/o/1", good.GetAccessToken()), wantErr: codes.Unauthenticated},
		{name: "key without role verify", ctx: withAPIKey(context.Background(), issueOnly.GetSecret()), req: checkRequest("/api/o/1", good.GetAccessToken()), wantErr: codes.PermissionDenied},
		{name: "revoked a moment ago", ctx: k.ctx(), req: checkRequest("/api/o/1", revoked.GetAccessToken()), wantCode: codes.Unauthenticated, wantHTTP: 401},
		{name: "token of another tenant", ctx: k.ctx(), req: checkRequest("/api/o/1", foreign.GetAccessToken()), wantCode: codes.Unauthenticated, wantHTTP: 401},
		{name: "wrong audience", ctx: k.ctx(), req: checkRequest("/api/o/1", billing.GetAccessToken()), wantCode: codes.Unauthenticated, wantHTTP: 401},
		{name: "insufficient scope", ctx: k.ctx(), req: checkRequest("/admin/x", good.GetAccessToken()), wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "missing token", ctx: k.ctx(), req: checkRequest("/api/o/1", ""), wantCode: codes.Unauthenticated, wantHTTP: 401},
		{name: "malformed token", ctx: k.ctx(), req: checkRequest("/api/o/1", "abc"), wantCode: codes.Unauthenticated, wantHTTP: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.Check(tt.ctx, tt.req)
			if status.Code(err) != tt.wantErr {
				t.Fatalf("Check: %v, want code %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if c := codes.Code(got.GetStatus().GetCode()); c != tt.wantCode {
				t.Fatalf("status %v (%s), want %v", c, got.GetStatus().GetMessage(), tt.wantCode)
			}
			if tt.wantHTTP != 0 && int(got.GetDeniedResponse().GetStatus().GetCode()) != tt.wantHTTP {
				t.Errorf("HTTP %d, want %d", got.GetDeniedResponse().GetStatus().GetCode(), tt.wantHTTP)
			}
		})
	}
}

// TestStrictVerifierReasons: every reason an inactive token can have maps to the authn error of
// its class, so the ext_authz answer of the authority matches the sidecar's.
func TestStrictVerifierReasons(t *testing.T) {
	for _, r := range token.Reasons() {
		e, ok := reasonErrors[r]
		if !ok {
			t.Errorf("reason %v has no authn error", r)
			continue
		}
		want := authn.ErrInvalidToken
		if r == token.ReasonWrongAudience || r == token.ReasonInsufficientScope {
			want = authn.ErrPermissionDenied
		}
		if !errors.Is(e, want) {
			t.Errorf("reason %v maps to %v, not of class %v", r, e, want)
		}
	}
}
