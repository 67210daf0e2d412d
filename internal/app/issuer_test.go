package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TestBootstrapClaimsLegacyIssuers: tenants stored before issuers were claimed get their claims
// before the service answers, on either store, so that no tenant is then created under one of
// their issuers; two of them under one issuer do not stop the start, and are logged as an error
// naming both.
func TestBootstrapClaimsLegacyIssuers(t *testing.T) {
	const shared, own = "https://legacy.example", "https://legacy-own.example"
	backends := map[string]func(t *testing.T) string{
		"Memory": func(*testing.T) string { return "" },
		"Redis":  func(t *testing.T) string { return redistest.Start(t).URL() },
	}
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, url(t))
			r, _ := startWith(t, cfg, nil, func(log *slog.Logger) (*App, error) {
				a, err := New(cfg, log)
				if err != nil {
					return nil, err
				}
				// As the code before issuer claims stored them: the tenant records alone.
				for id, iss := range map[string]string{"legacy-a": shared, "legacy-b": shared, "legacy-c": own} {
					raw, err := json.Marshal(&tenant.Tenant{ID: id, Issuer: iss, Algorithm: "EdDSA", CreatedAt: time.Unix(1e9, 0)})
					if err != nil {
						return nil, err
					}
					if err := a.store.CreateRecord(context.Background(), store.KindTenant, id, raw); err != nil {
						return nil, err
					}
				}
				return a, nil
			})
			ctx := context.Background()
			for iss, holder := range map[string]string{shared: "legacy-a", own: "legacy-c"} {
				err := r.app.tenants.CreateTenant(ctx, &tenant.Tenant{ID: "newcomer", Issuer: iss})
				if !errors.Is(err, tenant.ErrInvalid) || !strings.Contains(err.Error(), holder) {
					t.Errorf("CreateTenant under %s's issuer after the start: %v, want ErrInvalid naming it", holder, err)
				}
			}
			var logged bool
			for _, line := range strings.Split(r.logs.String(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "legacy-a") && strings.Contains(line, "legacy-b") {
					logged = true
				}
			}
			if !logged {
				t.Errorf("no error logged naming legacy-a and legacy-b, which share an issuer; logs:\n%s", r.logs.String())
			}
		})
	}
}
