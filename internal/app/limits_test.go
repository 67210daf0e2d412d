package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	redisstore "github.com/tokenauthority/tokenauthority/internal/store/redis"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TestAdminCaps: a tenant's admins cannot create more than tenant.MaxAPIKeys API keys or hold more
// than keys.MaxKeys signing keys; beyond them the calls fail with FailedPrecondition saying why
// (issue 20, item 7).
func TestAdminCaps(t *testing.T) {
	r := start(t, testConfig(t, ""))
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	created := must(admin.CreateTenant(withKey(r.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "acme", Issuer: "https://acme.example"}}))
	acme := withKey(created.GetAdminApiKey())

	// The admin write limit allows far fewer calls than the cap: fill all but one directly.
	for i := range tenant.MaxAPIKeys - 2 {
		if _, _, err := r.app.tenants.CreateAPIKey(context.Background(), "acme", fmt.Sprint(i), []tenant.Role{tenant.RoleVerify}); err != nil {
			t.Fatalf("CreateAPIKey #%d: %v", i+2, err)
		}
	}
	newKey := &tokenauthorityv1.CreateApiKeyRequest{Name: "svc", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}}
	must(admin.CreateApiKey(acme, newKey))
	_, err := admin.CreateApiKey(acme, newKey)
	wantCode(t, "CreateApiKey beyond the cap", err, codes.FailedPrecondition)
	if want := fmt.Sprintf("at most %d API keys", tenant.MaxAPIKeys); !strings.Contains(status.Convert(err).Message(), want) {
		t.Errorf("message %q does not say %q", status.Convert(err).Message(), want)
	}

	for range keys.MaxKeys - 1 {
		must(admin.RotateSigningKey(acme, &tokenauthorityv1.RotateSigningKeyRequest{}))
	}
	_, err = admin.RotateSigningKey(acme, &tokenauthorityv1.RotateSigningKeyRequest{})
	wantCode(t, "RotateSigningKey beyond the cap", err, codes.FailedPrecondition)
	if want := fmt.Sprintf("at most %d signing keys", keys.MaxKeys); !strings.Contains(status.Convert(err).Message(), want) {
		t.Errorf("message %q does not say %q", status.Convert(err).Message(), want)
	}
	if n := len(must(admin.ListApiKeys(acme, &tokenauthorityv1.ListApiKeysRequest{})).GetApiKeys()); n != tenant.MaxAPIKeys {
		t.Errorf("ListApiKeys = %d keys, want %d", n, tenant.MaxAPIKeys)
	}
}

// TestAPIKeysStoredBeforePerTenantListsAreListedAtStart: a server started on a Redis whose API
// keys were stored without per-tenant lists lists them under their tenants, so that ListApiKeys
// and DeleteTenant find them.
func TestAPIKeysStoredBeforePerTenantListsAreListedAtStart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := redisstore.New(srv.Client(t))
	if err := tenant.NewService(s, "", time.Now).CreateTenant(ctx, &tenant.Tenant{ID: "acme", Issuer: "https://acme.example"}); err != nil {
		t.Fatal(err)
	}
	// As the previous version stored an API key: a plain record.
	value := tenant.NewAPIKeyValue()
	k, err := tenant.NewService(memory.New(nil), "", time.Now).RegisterAPIKey(ctx, "acme", "old", []tenant.Role{tenant.RoleAdmin}, value)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(ctx, store.KindAPIKey, k.ID, raw); err != nil {
		t.Fatal(err)
	}

	r := start(t, testConfig(t, srv.URL()))
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	deadline := time.Now().Add(15 * time.Second)
	for {
		list := must(admin.ListApiKeys(withKey(value), &tokenauthorityv1.ListApiKeysRequest{}))
		if len(list.GetApiKeys()) == 1 && list.GetApiKeys()[0].GetKeyId() == k.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored key was never listed: %v", list.GetApiKeys())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(r.logs.String(), "listed stored API keys under their tenants") {
		t.Error("the start-up did not log that it listed stored keys")
	}
}
