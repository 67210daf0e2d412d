package app

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// must returns v, or fails the test on err (a panic, which the testing package reports with the
// stack of the failing call).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

// TestAdminLifecycle drives tenants, API keys and principals through the AdminService as an
// operator would, on Redis, and checks isolation between tenants.
func TestAdminLifecycle(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, testConfig(t, srv.URL()))
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	master := withKey(r.master)

	// The master credential creates a tenant and gets its first admin key, once.
	created := must(admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "acme", Issuer: "https://acme.example", AllowedScopes: []string{"orders.read", "orders.write"},
		MaxAccessTtl: durationpb.New(30 * 60 * 1e9),
	}}))
	acmeAdmin := withKey(created.GetAdminApiKey())
	_, err := admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "x"}})
	wantCode(t, "create twice", err, codes.AlreadyExists)
	_, err = admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "Bad_Id", Issuer: "x"}})
	wantCode(t, "bad tenant id", err, codes.InvalidArgument)
	list := must(admin.ListTenants(master, &tokenauthorityv1.ListTenantsRequest{}))
	if len(list.GetTenants()) != 2 {
		t.Fatalf("tenants: %v", list.GetTenants())
	}

	// The master credential manages tenants and nothing else; an admin key its own tenant only.
	_, err = admin.CreateApiKey(master, &tokenauthorityv1.CreateApiKeyRequest{TenantId: "acme", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE}})
	wantCode(t, "master creates an API key", err, codes.PermissionDenied)
	_, err = admin.CreateApiKey(acmeAdmin, &tokenauthorityv1.CreateApiKeyRequest{TenantId: "dev", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE}})
	wantCode(t, "admin key of acme acts on dev", err, codes.PermissionDenied)
	_, err = admin.CreateTenant(acmeAdmin, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "other", Issuer: "x"}})
	wantCode(t, "admin key creates a tenant", err, codes.PermissionDenied)
	_, err = ts.IssueToken(acmeAdmin, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
	wantCode(t, "admin key asserts a subject", err, codes.PermissionDenied)

	issuer := must(admin.CreateApiKey(acmeAdmin, &tokenauthorityv1.CreateApiKeyRequest{Name: "orders", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY}}))
	verifier := must(admin.CreateApiKey(acmeAdmin, &tokenauthorityv1.CreateApiKeyRequest{Name: "gateway", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}}))
	keys := must(admin.ListApiKeys(acmeAdmin, &tokenauthorityv1.ListApiKeysRequest{}))
	if len(keys.GetApiKeys()) != 3 {
		t.Fatalf("API keys: %v", keys.GetApiKeys())
	}
	for _, k := range keys.GetApiKeys() {
		if k.GetTenantId() != "acme" {
			t.Fatalf("listed a key of %q", k.GetTenantId())
		}
	}

	// Tenant policy bounds what is issued.
	acmeIssue := withKey(issuer.GetSecret())
	_, err = ts.IssueToken(acmeIssue, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Scopes: []string{"admin"}})
	wantCode(t, "scope outside the tenant's", err, codes.InvalidArgument)
	_, err = ts.IssueToken(acmeIssue, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", AccessTtl: durationpb.New(45 * 60 * 1e9)})
	wantCode(t, "TTL above the tenant's bound", err, codes.InvalidArgument)
	pair := must(ts.IssueToken(acmeIssue, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Scopes: []string{"orders.read"}}))

	// Isolation: acme's token is nothing to dev, even verified by dev's all-roles key.
	v := must(ts.VerifyToken(withKey(r.devKey), &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()}))
	if v.GetActive() {
		t.Fatal("a token of acme is active for dev")
	}
	v = must(ts.VerifyToken(withKey(verifier.GetSecret()), &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()}))
	if !v.GetActive() {
		t.Fatalf("acme's token inactive for acme: %v", v.GetReason())
	}

	// The principal grant: a verify-only key presents a principal's identifier and secret.
	must(admin.CreatePrincipal(acmeAdmin, &tokenauthorityv1.CreatePrincipalRequest{Principal: &tokenauthorityv1.Principal{
		Identifier: "svc-billing", Scopes: []string{"orders.read"},
	}}))
	secret := must(admin.SetPrincipalSecret(acmeAdmin, &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: "svc-billing"})).GetSecret()
	gw := withKey(verifier.GetSecret())
	grant := func(id, sec string, scopes ...string) (*tokenauthorityv1.IssueTokenResponse, error) {
		return ts.IssueToken(gw, &tokenauthorityv1.IssueTokenRequest{Scopes: scopes, Principal: &tokenauthorityv1.PrincipalCredentials{Identifier: id, Secret: sec}})
	}
	p := must(grant("svc-billing", secret))
	v = must(ts.VerifyToken(gw, &tokenauthorityv1.VerifyTokenRequest{Token: p.GetAccessToken(), RequiredScopes: []string{"orders.read"}}))
	if !v.GetActive() || v.GetClaims().GetSubject() != "svc-billing" {
		t.Fatalf("principal token: %v", v)
	}
	_, err = grant("svc-billing", secret+"x")
	wantCode(t, "wrong principal secret", err, codes.Unauthenticated)
	_, err = grant("nobody", secret)
	wantCode(t, "unknown principal", err, codes.Unauthenticated)
	_, err = grant("svc-billing", secret, "orders.write")
	wantCode(t, "scope not granted to the principal", err, codes.PermissionDenied)
	newSecret := must(admin.SetPrincipalSecret(acmeAdmin, &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: "svc-billing"})).GetSecret()
	_, err = grant("svc-billing", secret)
	wantCode(t, "reset principal secret", err, codes.Unauthenticated)
	must(grant("svc-billing", newSecret))

	// Rotating a key without overlap retires the old value at once; deleting a key too.
	rotated := must(admin.RotateApiKey(acmeAdmin, &tokenauthorityv1.RotateApiKeyRequest{KeyId: issuer.GetApiKey().GetKeyId()}))
	_, err = ts.IssueToken(acmeIssue, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
	wantCode(t, "rotated-out value", err, codes.Unauthenticated)
	must(ts.IssueToken(withKey(rotated.GetSecret()), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	withOverlap := must(admin.RotateApiKey(acmeAdmin, &tokenauthorityv1.RotateApiKeyRequest{KeyId: issuer.GetApiKey().GetKeyId(), Overlap: durationpb.New(3600 * 1e9)}))
	must(ts.IssueToken(withKey(rotated.GetSecret()), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	must(ts.IssueToken(withKey(withOverlap.GetSecret()), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	must(admin.DeleteApiKey(acmeAdmin, &tokenauthorityv1.DeleteApiKeyRequest{KeyId: verifier.GetApiKey().GetKeyId()}))
	_, err = ts.VerifyToken(gw, &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()})
	wantCode(t, "deleted key", err, codes.Unauthenticated)
	_, err = admin.DeleteApiKey(acmeAdmin, &tokenauthorityv1.DeleteApiKeyRequest{KeyId: "nope"})
	wantCode(t, "delete unknown key", err, codes.NotFound)

	// Deleting the tenant ends everything; creating it again revives nothing.
	must(admin.DeleteTenant(master, &tokenauthorityv1.DeleteTenantRequest{TenantId: "acme"}))
	_, err = ts.VerifyToken(acmeAdmin, &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()})
	wantCode(t, "key of a deleted tenant", err, codes.Unauthenticated)
	again := must(admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "https://acme.example"}}))
	fresh := must(admin.CreateApiKey(withKey(again.GetAdminApiKey()), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "all", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY},
	}))
	v = must(ts.VerifyToken(withKey(fresh.GetSecret()), &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()}))
	if v.GetActive() {
		t.Fatal("a token of the deleted tenant is active in the new one")
	}
	_, err = ts.RefreshToken(withKey(fresh.GetSecret()), &tokenauthorityv1.RefreshTokenRequest{RefreshToken: pair.GetRefreshToken()})
	wantCode(t, "refresh token of the deleted tenant", err, codes.Unauthenticated)
	assertNoSecretsLogged(t, r, created.GetAdminApiKey(), issuer.GetSecret(), secret, newSecret, pair.GetAccessToken(), pair.GetRefreshToken())
}
