package tenant_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

func TestCreateExchangeKey(t *testing.T) {
	e := newEnv(t, "")
	p := &tenant.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b"}}
	k, value, err := e.svc.CreateAPIKeyWithPolicy(e.ctx, tenantID, "svc-a", []tenant.Role{tenant.RoleExchange, tenant.RoleVerify}, p)
	if err != nil {
		t.Fatalf("CreateAPIKeyWithPolicy: %v", err)
	}
	c, err := e.svc.Authenticate(e.ctx, value)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyName != "svc-a" || !reflect.DeepEqual(c.Exchange, p) || !c.Has(tenant.RoleExchange) {
		t.Errorf("caller = %+v; want the key's name and policy", c)
	}
	// The actor stays the same across a rotation: the name and the policy are kept.
	if _, value, err = e.svc.RotateAPIKey(e.ctx, tenantID, k.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, err = e.svc.Authenticate(e.ctx, value); err != nil || c.KeyName != "svc-a" || !reflect.DeepEqual(c.Exchange, p) {
		t.Errorf("after rotation: %+v, %v", c, err)
	}
	ks, err := e.svc.ListAPIKeys(e.ctx, tenantID)
	if err != nil || len(ks) != 1 || !reflect.DeepEqual(ks[0].Exchange, p) {
		t.Errorf("ListAPIKeys = %+v, %v; want the policy", ks, err)
	}
}

func TestCreateExchangeKeyRefused(t *testing.T) {
	ok := func() *tenant.ExchangePolicy {
		return &tenant.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b"}}
	}
	exchange := []tenant.Role{tenant.RoleExchange}
	tests := []struct {
		name   string
		key    string
		roles  []tenant.Role
		policy *tenant.ExchangePolicy
		msg    string
	}{
		{"role without policy", "svc-a", exchange, nil, "needs an exchange_policy"},
		{"policy without role", "svc-a", []tenant.Role{tenant.RoleVerify}, ok(), "only for keys with role exchange"},
		{"no name", "", exchange, ok(), "needs a name"},
		{"name with a control character", "svc\n", exchange, ok(), "needs a name"},
		{"no accept audience", "svc-a", exchange, &tenant.ExchangePolicy{TargetAudiences: []string{"svc-b"}}, "accept_audience"},
		{"no target", "svc-a", exchange, &tenant.ExchangePolicy{AcceptAudience: "svc-a"}, "target_audiences needs"},
		{"empty target", "svc-a", exchange, &tenant.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{""}}, "target_audiences: each"},
		{"target the tenant does not allow", "svc-a", exchange, &tenant.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"elsewhere"}}, `"elsewhere" is not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			restricted := validTenant()
			restricted.ID, restricted.Issuer, restricted.AllowedAudiences = "restricted", "https://restricted.example", []string{"svc-a", "svc-b"}
			if err := e.svc.CreateTenant(e.ctx, restricted); err != nil {
				t.Fatal(err)
			}
			k, _, err := e.svc.CreateAPIKeyWithPolicy(e.ctx, "restricted", tt.key, tt.roles, tt.policy)
			if !errors.Is(err, tenant.ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("CreateAPIKeyWithPolicy = %+v, %v; want ErrInvalid containing %q", k, err, tt.msg)
			}
		})
	}
	// The development key registers with every role that needs no settings.
	e := newEnv(t, "")
	if _, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "dev", tenant.AllRoles, tenant.NewAPIKeyValue()); err != nil {
		t.Fatalf("RegisterAPIKey(AllRoles): %v", err)
	}
	if _, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "dev", exchange, tenant.NewAPIKeyValue()); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("RegisterAPIKey(exchange without a policy) = %v; want ErrInvalid", err)
	}
}
