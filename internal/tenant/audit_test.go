package tenant_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/audit/audittest"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// newAuditEnv is newEnv with the service writing its audit events to the returned log.
func newAuditEnv(t *testing.T) (*env, *audittest.Log) {
	t.Helper()
	clock := storetest.NewClock(t0)
	s := memory.New(clock.Now)
	w, log := audittest.New()
	e := &env{ctx: context.Background(), clock: clock, store: s, svc: tenant.NewService(s, "", clock.Now, tenant.WithAudit(w))}
	if err := e.svc.CreateTenant(e.ctx, validTenant()); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return e, log
}

// TestCredentialChangesAreAudited: every API key and principal created, rotated, given a secret
// or deleted writes one audit event naming the tenant and the key's id or the principal's
// identifier, and never the value or secret handed out.
func TestCredentialChangesAreAudited(t *testing.T) {
	e, buf := newAuditEnv(t)
	var keyID string
	steps := []struct {
		name string
		// run does the step and returns the credential it handed out ("" for none) and the
		// fields its event must have beyond log, tenant and level.
		run func(t *testing.T) (secret string, want map[string]any)
	}{
		{"create API key", func(t *testing.T) (string, map[string]any) {
			k, value, err := e.svc.CreateAPIKey(e.ctx, tenantID, "ci", []tenant.Role{tenant.RoleIssue})
			if err != nil {
				t.Fatal(err)
			}
			keyID = k.ID
			return value, map[string]any{"audit": "api_key_created", "key_id": k.ID}
		}},
		{"create exchange key", func(t *testing.T) (string, map[string]any) {
			p := &tenant.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b"}}
			k, value, err := e.svc.CreateAPIKeyWithPolicy(e.ctx, tenantID, "gateway", []tenant.Role{tenant.RoleExchange}, p)
			if err != nil {
				t.Fatal(err)
			}
			return value, map[string]any{"audit": "api_key_created", "key_id": k.ID, "actor": "gateway",
				"accept_audience": "svc-a", "target_audiences": []any{"svc-b"}}
		}},
		{"rotate API key", func(t *testing.T) (string, map[string]any) {
			_, value, err := e.svc.RotateAPIKey(e.ctx, tenantID, keyID, 0)
			if err != nil {
				t.Fatal(err)
			}
			return value, map[string]any{"audit": "api_key_rotated", "key_id": keyID}
		}},
		{"delete API key", func(t *testing.T) (string, map[string]any) {
			if err := e.svc.DeleteAPIKey(e.ctx, tenantID, keyID); err != nil {
				t.Fatal(err)
			}
			return "", map[string]any{"audit": "api_key_deleted", "key_id": keyID}
		}},
		{"create principal", func(t *testing.T) (string, map[string]any) {
			if err := e.svc.CreatePrincipal(e.ctx, validTenant(), &tenant.Principal{Identifier: "svc-billing"}); err != nil {
				t.Fatal(err)
			}
			return "", map[string]any{"audit": "principal_created", "principal": "svc-billing"}
		}},
		{"set principal secret", func(t *testing.T) (string, map[string]any) {
			secret, err := e.svc.SetPrincipalSecret(e.ctx, tenantID, "svc-billing")
			if err != nil {
				t.Fatal(err)
			}
			return secret, map[string]any{"audit": "principal_secret_set", "principal": "svc-billing"}
		}},
		{"delete principal", func(t *testing.T) (string, map[string]any) {
			if err := e.svc.DeletePrincipal(e.ctx, tenantID, "svc-billing"); err != nil {
				t.Fatal(err)
			}
			return "", map[string]any{"audit": "principal_deleted", "principal": "svc-billing"}
		}},
	}
	for _, st := range steps {
		buf.Reset()
		secret, want := st.run(t)
		recs := buf.Records(t)
		if len(recs) != 1 {
			t.Fatalf("%s: %d audit lines, want 1: %s", st.name, len(recs), buf)
		}
		want["log"], want["tenant"] = "audit", tenantID
		for k, v := range want {
			if !reflect.DeepEqual(recs[0][k], v) {
				t.Errorf("%s: %s = %v, want %v", st.name, k, recs[0][k], v)
			}
		}
		if secret != "" && strings.Contains(buf.String(), secret) {
			t.Errorf("%s: the credential handed out is in the audit log: %s", st.name, buf)
		}
		if strings.HasPrefix(secret, tenant.APIKeyPrefix) && strings.Contains(buf.String(), secret[secretStart:]) {
			t.Errorf("%s: the API key's secret half is in the audit log: %s", st.name, buf)
		}
	}
}

// TestRefusedCredentialChangesAreNotAudited: a change that did not happen writes no event.
func TestRefusedCredentialChangesAreNotAudited(t *testing.T) {
	e, buf := newAuditEnv(t)
	admin, _, err := e.svc.CreateAPIKey(e.ctx, tenantID, "admin", []tenant.Role{tenant.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CreatePrincipal(e.ctx, validTenant(), &tenant.Principal{Identifier: "svc-billing"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"exchange role without a policy", func() error {
			_, _, err := e.svc.CreateAPIKeyWithPolicy(e.ctx, tenantID, "gw", []tenant.Role{tenant.RoleExchange}, nil)
			return err
		}, tenant.ErrInvalid},
		{"rotate an unknown key", func() error {
			_, _, err := e.svc.RotateAPIKey(e.ctx, tenantID, "AAAAAAAAAAAAAAAA", 0)
			return err
		}, tenant.ErrKeyNotFound},
		{"delete the last admin key", func() error { return e.svc.DeleteAPIKey(e.ctx, tenantID, admin.ID) }, tenant.ErrLastAdminKey},
		{"create an existing principal", func() error {
			return e.svc.CreatePrincipal(e.ctx, validTenant(), &tenant.Principal{Identifier: "svc-billing"})
		}, store.ErrExists},
		{"secret of an unknown principal", func() error {
			_, err := e.svc.SetPrincipalSecret(e.ctx, tenantID, "nobody")
			return err
		}, tenant.ErrKeyNotFound},
		{"delete an unknown principal", func() error { return e.svc.DeletePrincipal(e.ctx, tenantID, "nobody") }, tenant.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf.Reset()
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("a refused change was audited: %s", buf)
			}
		})
	}
}
