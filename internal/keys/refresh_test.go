package keys_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
)

const refreshRetention = 24 * time.Hour

func refreshKids(t *testing.T, e *env, m *keys.Manager, tenant string) []string {
	t.Helper()
	rks, err := m.RefreshKeys(e.ctx, tenant)
	if err != nil {
		t.Fatalf("RefreshKeys: %v", err)
	}
	var ids []string
	for _, k := range rks {
		ids = append(ids, k.ID)
	}
	return ids
}

// TestRotateRefreshKey follows a tenant's refresh-token keys through rotations: the legacy key
// verifies until a rotation retires it and its retention passes; a routine rotation keeps the older
// keys verifying, an emergency one drops them at once; a replica sees the change at its refresh.
func TestRotateRefreshKey(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithRefreshRetention(refreshRetention))
	e.ensure(t, "acme", keys.EdDSA)
	other := e.replica(t)
	if got := refreshKids(t, e, other, "acme"); !slices.Equal(got, []string{keys.LegacyRefreshKID}) {
		t.Fatalf("a new tenant's refresh keys = %q, want the legacy key alone", got)
	}
	verifies := func(m *keys.Manager, kid string) bool {
		_, err := m.RefreshVerificationKey(e.ctx, "acme", kid)
		if err != nil && !errors.Is(err, keys.ErrUnknownKey) {
			t.Fatalf("RefreshVerificationKey(%q): %v", kid, err)
		}
		return err == nil
	}

	r1, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{})
	if err != nil {
		t.Fatalf("routine RotateRefreshKey: %v", err)
	}
	k1 := r1.Current.ID
	if !keys.ValidRefreshKID(k1) || k1 == keys.LegacyRefreshKID || len(r1.Current.Secret) != 0 {
		t.Errorf("new key %q (secret shown: %v); want an rt- id and no secret", k1, len(r1.Current.Secret) != 0)
	}
	if len(r1.Retired) != 1 || r1.Retired[0].ID != keys.LegacyRefreshKID || !r1.Retired[0].RetiredAt.Equal(t0) || r1.Dropped != nil {
		t.Errorf("routine rotation: retired %+v, dropped %q; want the legacy key retired now", r1.Retired, r1.Dropped)
	}
	if err := other.Refresh(e.ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	for _, m := range []*keys.Manager{e.m, other} {
		if got := refreshKids(t, e, m, "acme"); !slices.Equal(got, []string{keys.LegacyRefreshKID, k1}) {
			t.Errorf("refresh keys after a routine rotation = %q, want [rt %s]", got, k1)
		}
		if !verifies(m, keys.LegacyRefreshKID) {
			t.Error("the legacy key stopped verifying at a routine rotation")
		}
	}

	// The retired key verifies for the retention, not after.
	e.clock.Advance(refreshRetention)
	if !verifies(e.m, keys.LegacyRefreshKID) {
		t.Error("the retired key stopped verifying before its retention passed")
	}
	e.clock.Advance(time.Second)
	if verifies(e.m, keys.LegacyRefreshKID) {
		t.Error("the retired key verifies after its retention")
	}
	r2, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{IfCurrent: k1})
	if err != nil {
		t.Fatalf("RotateRefreshKey naming the current key: %v", err)
	}
	k2 := r2.Current.ID
	if got := refreshKids(t, e, e.m, "acme"); !slices.Equal(got, []string{k1, k2}) {
		t.Errorf("refresh keys = %q, want the expired legacy key gone: [%s %s]", got, k1, k2)
	}

	// A precondition that no longer holds changes nothing.
	if _, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{Emergency: true, IfCurrent: k1}); !errors.Is(err, keys.ErrRefreshKeyChanged) {
		t.Errorf("RotateRefreshKey naming a replaced key: %v, want ErrRefreshKeyChanged", err)
	}
	// An emergency drops every older key at once, here and at the other replica's refresh.
	r3, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{Emergency: true})
	if err != nil {
		t.Fatalf("emergency RotateRefreshKey: %v", err)
	}
	if !slices.Equal(r3.Dropped, []string{k1, k2}) || len(r3.Retired) != 0 {
		t.Errorf("emergency rotation: dropped %q, retired %+v; want [%s %s] dropped, none retired", r3.Dropped, r3.Retired, k1, k2)
	}
	if err := other.Refresh(e.ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	for _, m := range []*keys.Manager{e.m, other} {
		for _, kid := range []string{k1, k2} {
			if verifies(m, kid) {
				t.Errorf("key %s dropped by an emergency rotation still verifies", kid)
			}
		}
		if got := refreshKids(t, e, m, "acme"); !slices.Equal(got, []string{r3.Current.ID}) {
			t.Errorf("refresh keys after an emergency = %q, want [%s]", got, r3.Current.ID)
		}
	}
	// The signing keys were not touched.
	if n := len(e.keyList(t, e.m, "acme")); n != 1 {
		t.Errorf("%d signing keys after refresh-key rotations, want 1", n)
	}
}

// TestRotateRefreshKeyRaces: two rotations naming the same current key race; one wins and the
// other sees the new state. Without a precondition both apply.
func TestRotateRefreshKeyRaces(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	run := func(r keys.RefreshRotation) (ok, changed int) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			m := e.replica(t)
			wg.Go(func() { _, errs[i] = m.RotateRefreshKey(e.ctx, "acme", r) })
		}
		wg.Wait()
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, keys.ErrRefreshKeyChanged):
				changed++
			default:
				t.Errorf("RotateRefreshKey: %v", err)
			}
		}
		return ok, changed
	}
	if ok, changed := run(keys.RefreshRotation{IfCurrent: keys.LegacyRefreshKID}); ok != 1 || changed != 1 {
		t.Errorf("two rotations naming the same key: %d succeeded, %d saw the change; want 1 and 1", ok, changed)
	}
	if got := len(refreshKids(t, e, e.replica(t), "acme")); got != 2 {
		t.Errorf("%d refresh keys, want 2: the legacy key and the winner's", got)
	}
	if ok, _ := run(keys.RefreshRotation{}); ok != 2 {
		t.Errorf("two rotations without a precondition: %d succeeded, want both", ok)
	}
	if got := len(refreshKids(t, e, e.replica(t), "acme")); got != 4 {
		t.Errorf("%d refresh keys, want 4: no rotation lost", got)
	}
}

// TestRotateRefreshKeyBound: routine rotations stop at MaxRefreshKeys; an emergency one makes room.
func TestRotateRefreshKeyBound(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	for range keys.MaxRefreshKeys - 1 {
		if _, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{}); err != nil {
			t.Fatalf("RotateRefreshKey: %v", err)
		}
	}
	if _, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{}); !errors.Is(err, keys.ErrTooManyRefreshKeys) {
		t.Fatalf("routine rotation of a full set: %v, want ErrTooManyRefreshKeys", err)
	}
	if _, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{Emergency: true}); err != nil {
		t.Errorf("emergency rotation of a full set: %v", err)
	}
}
