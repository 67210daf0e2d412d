package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// keysFailingEnsure is a key manager whose Ensure fails, as when the store drops the write.
type keysFailingEnsure struct{ KeyAdmin }

func (keysFailingEnsure) Ensure(context.Context, string, keys.Algorithm) error {
	return fmt.Errorf("test: %w", store.ErrUnavailable)
}

// tenantsFailingAPIKey is a tenant service whose CreateAPIKey fails.
type tenantsFailingAPIKey struct{ TenantAdmin }

func (tenantsFailingAPIKey) CreateAPIKey(context.Context, string, string, []tenant.Role) (*tenant.APIKey, string, error) {
	return nil, "", fmt.Errorf("test: %w", store.ErrUnavailable)
}

// TestCreateTenantIsAllOrNothing: when the tenant's keys or its first admin key cannot be made,
// CreateTenant fails with Unavailable and leaves no tenant and no key behind, so the same call can be retried.
func TestCreateTenantIsAllOrNothing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		tweak func(*Config)
	}{
		{"keys fail", func(c *Config) { c.Keys = keysFailingEnsure{c.Keys} }},
		{"first API key fails", func(c *Config) { c.Tenants = tenantsFailingAPIKey{c.Tenants} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend()
			failing := b.replica(t, tt.tweak)
			healthy := b.replica(t, nil)
			req := &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:test:acme"}}
			master := withAPIKey(context.Background(), testMasterKey)
			_, err := tokenauthorityv1.NewAdminServiceClient(failing.conn).CreateTenant(master, req)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("CreateTenant with a failing step = %v, want Unavailable", err)
			}
			if _, err := healthy.tenants.Tenant(context.Background(), "acme"); !errors.Is(err, tenant.ErrNotFound) {
				t.Fatalf("after the failed CreateTenant, the tenant lookup = %v; want not found (nothing half-made)", err)
			}
			km, err := keys.NewManager(b.store, b.kek, b.clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			if left, err := km.Keys(context.Background(), "acme"); !errors.Is(err, keys.ErrNoKeys) {
				t.Fatalf("after the failed CreateTenant, the tenant's keys = %d, %v; want none", len(left), err)
			}
			created, err := tokenauthorityv1.NewAdminServiceClient(healthy.conn).CreateTenant(master, req)
			if err != nil || created.GetAdminApiKey() == "" {
				t.Fatalf("CreateTenant again = %v, %v; want the tenant and its admin key", created, err)
			}
		})
	}
}
