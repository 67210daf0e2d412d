package grpcserver

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// exchangeEnv is a tenant on two replicas, with alice's token for svc-a and the exchange key of
// service A (accepts svc-a, may ask for svc-b).
type exchangeEnv struct {
	here, there *replica
	all, svcA   testKey
	alice       *tokenauthorityv1.IssueTokenResponse
}

func newExchangeEnv(t *testing.T, tenantLimit *tokenauthorityv1.RateLimit) *exchangeEnv {
	t.Helper()
	b := newBackend()
	e := &exchangeEnv{here: b.replica(t, nil), there: b.replica(t, nil)}
	admin := tokenauthorityv1.NewAdminServiceClient(e.here.conn)
	created := must(admin.CreateTenant(withAPIKey(context.Background(), testMasterKey), &tokenauthorityv1.CreateTenantRequest{
		Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:test:acme", ExchangeRateLimit: tenantLimit}}))
	if got := created.GetTenant().GetExchangeRateLimit(); !reflect.DeepEqual(got.GetBurst(), tenantLimit.GetBurst()) {
		t.Fatalf("exchange_rate_limit = %v; want %v", got, tenantLimit)
	}
	adminCtx := withAPIKey(context.Background(), created.GetAdminApiKey())
	all := must(admin.CreateApiKey(adminCtx, &tokenauthorityv1.CreateApiKeyRequest{Name: "all", Roles: []tokenauthorityv1.Role{
		tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY, tokenauthorityv1.Role_ROLE_REVOKE}}))
	e.all = testKey{id: all.GetApiKey().GetKeyId(), value: all.GetSecret()}
	policy := &tokenauthorityv1.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b"}}
	a := must(admin.CreateApiKey(adminCtx, &tokenauthorityv1.CreateApiKeyRequest{Name: "svc-a",
		Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_EXCHANGE}, ExchangePolicy: policy}))
	e.svcA = testKey{id: a.GetApiKey().GetKeyId(), value: a.GetSecret()}
	listed := must(admin.ListApiKeys(adminCtx, &tokenauthorityv1.ListApiKeysRequest{}))
	found := false
	for _, k := range listed.GetApiKeys() {
		if k.GetKeyId() == e.svcA.id {
			found = reflect.DeepEqual(k.GetExchangePolicy().GetTargetAudiences(), policy.GetTargetAudiences()) &&
				k.GetExchangePolicy().GetAcceptAudience() == "svc-a" &&
				reflect.DeepEqual(k.GetRoles(), []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_EXCHANGE})
		}
	}
	if !found {
		t.Fatalf("ListApiKeys does not show the exchange key's role and policy: %v", listed)
	}
	e.alice = must(tokenauthorityv1.NewTokenServiceClient(e.here.conn).IssueToken(e.all.ctx(), &tokenauthorityv1.IssueTokenRequest{
		Subject: "alice", Audience: []string{"svc-a"}, Scopes: []string{"read", "write"}}))
	return e
}

func TestExchangeTokenRPC(t *testing.T) {
	e := newExchangeEnv(t, nil)
	client := tokenauthorityv1.NewTokenServiceClient(e.here.conn)
	resp, err := client.ExchangeToken(e.svcA.ctx(), &tokenauthorityv1.ExchangeTokenRequest{
		SubjectToken: e.alice.GetAccessToken(), Audience: []string{"svc-b"}, Scopes: []string{"read"},
		AccessTtl: durationpb.New(60_000_000_000)})
	if err != nil {
		t.Fatalf("ExchangeToken: %v", err)
	}
	if resp.GetTokenType() != "Bearer" || resp.GetAccessToken() == "" || !resp.GetAccessExpiresAt().AsTime().Before(e.alice.GetAccessExpiresAt().AsTime()) {
		// Never the token itself in the test's output.
		t.Errorf("response: token_type %q, access token present %v, expires %v (subject token's: %v)", resp.GetTokenType(),
			resp.GetAccessToken() != "", resp.GetAccessExpiresAt().AsTime(), e.alice.GetAccessExpiresAt().AsTime())
	}
	// Another replica verifies it and sees the chain.
	v := must(tokenauthorityv1.NewTokenServiceClient(e.there.conn).VerifyToken(e.all.ctx(), &tokenauthorityv1.VerifyTokenRequest{
		Token: resp.GetAccessToken(), Audience: "svc-b"}))
	c := v.GetClaims()
	if !v.GetActive() || c.GetSubject() != "alice" || c.GetSessionId() != e.alice.GetSessionId() || len(c.GetActor()) != 1 ||
		c.GetActor()[0].GetSubject() != "svc-a" || !reflect.DeepEqual(c.GetScopes(), []string{"read"}) {
		t.Fatalf("VerifyToken = %v", v)
	}
	// alice's own token has no actor.
	v = must(client.VerifyToken(e.all.ctx(), &tokenauthorityv1.VerifyTokenRequest{Token: e.alice.GetAccessToken()}))
	if len(v.GetClaims().GetActor()) != 0 {
		t.Errorf("a token that was not exchanged shows actors %v", v.GetClaims().GetActor())
	}
}

// TestExchangeTokenRefusals: each refusal's status at the RPC boundary; no message echoes a token.
func TestExchangeTokenRefusals(t *testing.T) {
	e := newExchangeEnv(t, nil)
	client := tokenauthorityv1.NewTokenServiceClient(e.here.conn)
	ok := func() *tokenauthorityv1.ExchangeTokenRequest {
		return &tokenauthorityv1.ExchangeTokenRequest{SubjectToken: e.alice.GetAccessToken(), Audience: []string{"svc-b"}, Scopes: []string{"read"}}
	}
	tests := []struct {
		name string
		key  testKey
		mod  func(*tokenauthorityv1.ExchangeTokenRequest)
		code codes.Code
		msg  string
	}{
		{"a key without role exchange", e.all, nil, codes.PermissionDenied, ""},
		{"no subject token", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) { r.SubjectToken = "" }, codes.InvalidArgument, "subject_token is required"},
		{"refresh token", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) { r.SubjectToken = e.alice.GetRefreshToken() }, codes.InvalidArgument, "not an active access token"},
		{"no audience", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) { r.Audience = nil }, codes.InvalidArgument, "audience is required"},
		{"target outside the policy", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) { r.Audience = []string{"svc-c"} }, codes.PermissionDenied, "exchange target audiences"},
		{"wider scopes", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) { r.Scopes = []string{"read", "admin"} }, codes.PermissionDenied, "only narrows"},
		{"invalid duration", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) {
			r.AccessTtl = &durationpb.Duration{Seconds: 1, Nanos: -1}
		}, codes.InvalidArgument, "valid duration"},
		{"ttl above the bound", e.svcA, func(r *tokenauthorityv1.ExchangeTokenRequest) { r.AccessTtl = durationpb.New(2 * 3600e9) }, codes.InvalidArgument, "exceeds the bound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok()
			if tt.mod != nil {
				tt.mod(req)
			}
			_, err := client.ExchangeToken(tt.key.ctx(), req)
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Fatalf("ExchangeToken = %v; want %v containing %q", err, tt.code, tt.msg)
			}
			if strings.Contains(st.Message(), e.alice.GetAccessToken()) || strings.Contains(st.Message(), e.alice.GetRefreshToken()) {
				t.Fatal("the status echoes a token")
			}
		})
	}
}

func TestCreateApiKeyExchangePolicyRefused(t *testing.T) {
	r := newBackend().replica(t, nil)
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	created := must(admin.CreateTenant(withAPIKey(context.Background(), testMasterKey), &tokenauthorityv1.CreateTenantRequest{
		Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:test:acme"}}))
	ctx := withAPIKey(context.Background(), created.GetAdminApiKey())
	exchange := []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_EXCHANGE}
	policy := &tokenauthorityv1.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b"}}
	for _, req := range []*tokenauthorityv1.CreateApiKeyRequest{
		{Name: "svc-a", Roles: exchange},
		{Name: "", Roles: exchange, ExchangePolicy: policy},
		{Name: "svc-a", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}, ExchangePolicy: policy},
		{Name: "svc-a", Roles: exchange, ExchangePolicy: &tokenauthorityv1.ExchangePolicy{AcceptAudience: "svc-a"}},
	} {
		if _, err := admin.CreateApiKey(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("CreateApiKey(%v) = %v; want InvalidArgument", req, err)
		}
	}
}

// TestExchangeTokenRateLimit: ExchangeToken takes from the key's own bucket, sized by the tenant's
// exchange_rate_limit.
func TestExchangeTokenRateLimit(t *testing.T) {
	e := newExchangeEnv(t, &tokenauthorityv1.RateLimit{PerSecond: 0.01, Burst: 2})
	client := tokenauthorityv1.NewTokenServiceClient(e.here.conn)
	req := &tokenauthorityv1.ExchangeTokenRequest{SubjectToken: e.alice.GetAccessToken(), Audience: []string{"svc-b"}}
	for i := range 2 {
		if _, err := client.ExchangeToken(e.svcA.ctx(), req); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := client.ExchangeToken(e.svcA.ctx(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third call = %v; want ResourceExhausted", err)
	}
	// Issuing is another bucket.
	if _, err := client.IssueToken(e.all.ctx(), &tokenauthorityv1.IssueTokenRequest{Subject: "bob"}); err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
}

// TestExchangeTokenCascadeAcrossReplicas: revocations made on one replica end the exchanged token
// in VerifyToken on the other (remote mode); revoking the exchanged token by jti leaves alice's.
func TestExchangeTokenCascadeAcrossReplicas(t *testing.T) {
	tests := []struct {
		name      string
		revoke    func(c tokenauthorityv1.TokenServiceClient, ctx context.Context, e *exchangeEnv, jti string) error
		aliceLive bool
	}{
		{"session", func(c tokenauthorityv1.TokenServiceClient, ctx context.Context, e *exchangeEnv, _ string) error {
			_, err := c.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: e.alice.GetSessionId()}})
			return err
		}, false},
		{"subject", func(c tokenauthorityv1.TokenServiceClient, ctx context.Context, _ *exchangeEnv, _ string) error {
			_, err := c.RevokeSessions(ctx, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "alice"}})
			return err
		}, false},
		{"tenant", func(c tokenauthorityv1.TokenServiceClient, ctx context.Context, _ *exchangeEnv, _ string) error {
			_, err := c.RevokeSessions(ctx, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}})
			return err
		}, false},
		{"exchanged jti", func(c tokenauthorityv1.TokenServiceClient, ctx context.Context, _ *exchangeEnv, jti string) error {
			_, err := c.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: jti}})
			return err
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newExchangeEnv(t, nil)
			here, there := tokenauthorityv1.NewTokenServiceClient(e.here.conn), tokenauthorityv1.NewTokenServiceClient(e.there.conn)
			ex := must(here.ExchangeToken(e.svcA.ctx(), &tokenauthorityv1.ExchangeTokenRequest{
				SubjectToken: e.alice.GetAccessToken(), Audience: []string{"svc-b"}}))
			v := must(there.VerifyToken(e.all.ctx(), &tokenauthorityv1.VerifyTokenRequest{Token: ex.GetAccessToken()}))
			if !v.GetActive() {
				t.Fatalf("exchanged token inactive before the revocation: %v", v)
			}
			if err := tt.revoke(here, e.all.ctx(), e, v.GetClaims().GetJti()); err != nil {
				t.Fatal(err)
			}
			if v := must(there.VerifyToken(e.all.ctx(), &tokenauthorityv1.VerifyTokenRequest{Token: ex.GetAccessToken()})); v.GetActive() {
				t.Error("the exchanged token is active on the other replica after the revocation")
			}
			if v := must(there.VerifyToken(e.all.ctx(), &tokenauthorityv1.VerifyTokenRequest{Token: e.alice.GetAccessToken()})); v.GetActive() != tt.aliceLive {
				t.Errorf("alice's token active = %v; want %v", v.GetActive(), tt.aliceLive)
			}
		})
	}
}
