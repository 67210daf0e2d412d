package keys_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit/audittest"
	"github.com/tokenauthority/tokenauthority/internal/keys"
)

// TestKeyChangesAreAudited: Rotate, Withdraw and RotateRefreshKey each write one audit event
// naming the tenant and the kids concerned; a refused change writes none.
func TestKeyChangesAreAudited(t *testing.T) {
	w, buf := audittest.New()
	e := newLifecycleEnv(t, keys.WithPrePublish(prePublish), keys.WithAudit(w))
	e.ensure(t, "acme", keys.EdDSA)
	var rotated string
	var firstRefresh string
	steps := []struct {
		name string
		// run does the step and returns the fields its event must have beyond log and tenant;
		// nil for a refused step, which must write nothing.
		run func(t *testing.T) map[string]any
	}{
		{"rotate", func(t *testing.T) map[string]any {
			k := e.rotate(t, e.m, "acme", "")
			rotated = k.ID
			return map[string]any{"audit": "key_rotated", "kid": k.ID, "activates_at": t0.Add(prePublish).Format(time.RFC3339)}
		}},
		{"withdraw", func(t *testing.T) map[string]any {
			e.withdraw(t, e.m, "acme", rotated)
			return map[string]any{"audit": "key_withdrawn", "kid": rotated}
		}},
		{"withdraw an unknown kid", func(t *testing.T) map[string]any {
			if err := e.m.Withdraw(e.ctx, "acme", "no-such-kid"); !errors.Is(err, keys.ErrUnknownKey) {
				t.Fatalf("Withdraw = %v, want ErrUnknownKey", err)
			}
			return nil
		}},
		{"routine refresh-key rotation", func(t *testing.T) map[string]any {
			r, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{})
			if err != nil {
				t.Fatal(err)
			}
			firstRefresh = r.Current.ID
			return map[string]any{"audit": "refresh_key_rotated", "kid": r.Current.ID, "emergency": false, "dropped_kids": nil}
		}},
		{"refresh-key rotation of a key no longer current", func(t *testing.T) map[string]any {
			_, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{IfCurrent: "rt-AAAAAAAAAAAAAAAA"})
			if !errors.Is(err, keys.ErrRefreshKeyChanged) {
				t.Fatalf("RotateRefreshKey = %v, want ErrRefreshKeyChanged", err)
			}
			return nil
		}},
		{"emergency refresh-key rotation", func(t *testing.T) map[string]any {
			r, err := e.m.RotateRefreshKey(e.ctx, "acme", keys.RefreshRotation{Emergency: true, IfCurrent: firstRefresh})
			if err != nil {
				t.Fatal(err)
			}
			dropped := make([]any, 0, len(r.Dropped))
			for _, id := range r.Dropped {
				dropped = append(dropped, id)
			}
			if len(dropped) != 2 {
				t.Fatalf("dropped %v, want the first refresh key and the one Ensure made", r.Dropped)
			}
			return map[string]any{"audit": "refresh_key_rotated", "kid": r.Current.ID, "emergency": true, "dropped_kids": dropped}
		}},
	}
	for _, st := range steps {
		buf.Reset()
		want := st.run(t)
		recs := buf.Records(t)
		if want == nil {
			if len(recs) != 0 {
				t.Errorf("%s: a refused change was audited: %s", st.name, buf)
			}
			continue
		}
		if len(recs) != 1 {
			t.Fatalf("%s: %d audit lines, want 1: %s", st.name, len(recs), buf)
		}
		want["log"], want["tenant"] = "audit", "acme"
		for k, v := range want {
			if !reflect.DeepEqual(recs[0][k], v) {
				t.Errorf("%s: %s = %#v, want %#v", st.name, k, recs[0][k], v)
			}
		}
	}
}
