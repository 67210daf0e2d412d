package app

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// TestRateLimits: a tenant's limits bound each API key's IssueToken and RefreshToken calls
// separately, with ResourceExhausted; another key of the tenant has its own budget; a limit out of
// bounds is refused.
func TestRateLimits(t *testing.T) {
	r := start(t, testConfig(t, ""))
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	master := withKey(r.master)

	for _, bad := range []*tokenauthorityv1.RateLimit{{PerSecond: 0, Burst: 1}, {PerSecond: 1, Burst: 0}, {PerSecond: 1e6, Burst: 1}, {PerSecond: 1, Burst: 1e6}} {
		_, err := admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
			TenantId: "bad", Issuer: "https://bad.example", IssueRateLimit: bad}})
		wantCode(t, "limit out of bounds", err, codes.InvalidArgument)
	}

	// One call per 100 s sustained: the burst is all this test can spend.
	slow := &tokenauthorityv1.RateLimit{PerSecond: 0.01, Burst: 2}
	created := must(admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "limited", Issuer: "https://limited.example", IssueRateLimit: slow, RefreshRateLimit: slow}}))
	if got := created.GetTenant().GetIssueRateLimit(); got.GetPerSecond() != 0.01 || got.GetBurst() != 2 {
		t.Errorf("created tenant's issue limit = %v", got)
	}
	tenantAdmin := withKey(created.GetAdminApiKey())
	newKey := func() string {
		return must(admin.CreateApiKey(tenantAdmin, &tokenauthorityv1.CreateApiKeyRequest{Name: "svc",
			Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE}})).GetSecret()
	}
	k1, k2 := withKey(newKey()), withKey(newKey())

	p := must(ts.IssueToken(k1, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	must(ts.IssueToken(k1, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	_, err := ts.IssueToken(k1, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
	wantCode(t, "third issue within the burst of 2", err, codes.ResourceExhausted)

	// Refreshing has its own bucket; another key has its own budget.
	p2 := must(ts.RefreshToken(k1, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p.GetRefreshToken()}))
	must(ts.RefreshToken(k1, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p2.GetRefreshToken()}))
	_, err = ts.RefreshToken(k1, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p2.GetRefreshToken()})
	wantCode(t, "third refresh within the burst of 2", err, codes.ResourceExhausted)
	must(ts.IssueToken(k2, &tokenauthorityv1.IssueTokenRequest{Subject: "bob"}))

	// The default tenant's limits are far above a test's needs.
	for range 50 {
		must(ts.IssueToken(withKey(r.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "carol"}))
	}
}

// TestRevokeRateLimits: a tenant's revoke limit bounds each API key's RevokeToken calls, and apart
// its RevokeSessions calls, with ResourceExhausted and a retry hint, whatever the target (an
// unknown one included); another key has its own budget.
func TestRevokeRateLimits(t *testing.T) {
	r := start(t, testConfig(t, ""))
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	master := withKey(r.master)

	_, err := admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "bad", Issuer: "https://bad.example", RevokeRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 1e6, Burst: 1}}})
	wantCode(t, "revoke limit out of bounds", err, codes.InvalidArgument)

	slow := &tokenauthorityv1.RateLimit{PerSecond: 0.01, Burst: 2}
	created := must(admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "limited", Issuer: "https://limited.example", RevokeRateLimit: slow}}))
	if got := created.GetTenant().GetRevokeRateLimit(); got.GetPerSecond() != 0.01 || got.GetBurst() != 2 {
		t.Errorf("created tenant's revoke limit = %v", got)
	}
	tenantAdmin := withKey(created.GetAdminApiKey())
	if got := must(admin.GetTenant(tenantAdmin, &tokenauthorityv1.GetTenantRequest{TenantId: "limited"})).GetTenant().GetRevokeRateLimit(); got.GetBurst() != 2 {
		t.Errorf("read tenant's revoke limit = %v", got)
	}
	newKey := func() context.Context {
		return withKey(must(admin.CreateApiKey(tenantAdmin, &tokenauthorityv1.CreateApiKeyRequest{Name: "svc",
			Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_REVOKE}})).GetSecret())
	}
	k1, k2 := newKey(), newKey()
	p := must(ts.IssueToken(k1, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	revoke := func(ctx context.Context, sid string) error {
		_, err := ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: sid}})
		return err
	}
	wantCode(t, "first revocation", revoke(k1, "unknown"), codes.OK)
	wantCode(t, "second revocation", revoke(k1, p.GetSessionId()), codes.OK)
	err = revoke(k1, "unknown")
	wantCode(t, "third revocation within the burst of 2", err, codes.ResourceExhausted)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "retry in") {
		t.Errorf("message %q has no retry hint", msg)
	}

	cutoff := func(ctx context.Context) error {
		_, err := ts.RevokeSessions(ctx, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "alice"}})
		return err
	}
	// RevokeSessions has its own bucket: a key that spent its single revocations can still cut off.
	wantCode(t, "first cut-off", cutoff(k1), codes.OK)
	wantCode(t, "second cut-off", cutoff(k1), codes.OK)
	wantCode(t, "third cut-off within the burst of 2", cutoff(k1), codes.ResourceExhausted)
	wantCode(t, "another key's revocation", revoke(k2, "unknown"), codes.OK)
	wantCode(t, "another key's cut-off", cutoff(k2), codes.OK)
}
