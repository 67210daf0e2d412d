package tenant_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TestRotatedOutKeyEndsWithItsOverlap: after a rotation with an overlap, the old value
// authenticates until the overlap ends and never after, on this replica's cache and on a fresh
// one; the new value authenticates throughout. Without an overlap the old value ends at once.
func TestRotatedOutKeyEndsWithItsOverlap(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	st := memory.New(clock.Now)
	svc := tenant.NewService(st, "", clock.Now)
	if err := svc.CreateTenant(ctx, &tenant.Tenant{ID: "acme", Issuer: "https://acme.example"}); err != nil {
		t.Fatal(err)
	}
	k, old, err := svc.CreateAPIKey(ctx, "acme", "issuer", []tenant.Role{tenant.RoleIssue})
	if err != nil {
		t.Fatal(err)
	}
	authenticates := func(svc *tenant.Service, value string) bool {
		t.Helper()
		_, err := svc.Authenticate(ctx, value)
		if err != nil && !errors.Is(err, tenant.ErrUnauthenticated) {
			t.Fatalf("Authenticate: %v", err)
		}
		return err == nil
	}
	if !authenticates(svc, old) { // caches the key on this replica
		t.Fatal("new key refused")
	}
	const overlap = time.Hour
	_, next, err := svc.RotateAPIKey(ctx, "acme", k.ID, overlap)
	if err != nil {
		t.Fatal(err)
	}
	rotated := clock.Now()
	for _, step := range []struct {
		at      time.Duration
		oldGood bool
	}{
		{0, true},
		{overlap - time.Second, true},
		{overlap, false},
		{overlap + time.Minute, false},
	} {
		clock.Advance(rotated.Add(step.at).Sub(clock.Now()))
		fresh := tenant.NewService(st, "", clock.Now)
		for name, s := range map[string]*tenant.Service{"this replica": svc, "a fresh replica": fresh} {
			if got := authenticates(s, old); got != step.oldGood {
				t.Errorf("%v after the rotation, %s: old value authenticates = %v, want %v", step.at, name, got, step.oldGood)
			}
			if !authenticates(s, next) {
				t.Errorf("%v after the rotation, %s: new value refused", step.at, name)
			}
		}
	}
	// No overlap: the value before this rotation (next) ends at once, on a fresh replica too.
	_, last, err := svc.RotateAPIKey(ctx, "acme", k.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if authenticates(tenant.NewService(st, "", clock.Now), next) {
		t.Error("value rotated out without an overlap still authenticates")
	}
	if !authenticates(svc, last) {
		t.Error("newest value refused")
	}
}
