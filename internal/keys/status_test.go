package keys_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
)

// TestKeyStatusesThroughTheLifecycle walks one tenant's keys through every state on an injected
// clock: a key pre-published by a rotation, the signer, the key it replaces retiring, a withdrawn
// key, and the moments each state ends. Every row is read by a second replica from the store.
func TestKeyStatusesThroughTheLifecycle(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithPrePublish(prePublish), keys.WithRetention(retention))
	if err := e.m.Ensure(e.ctx, "acme", keys.EdDSA); err != nil {
		t.Fatal(err)
	}
	first := e.signingKey(t, e.m, "acme")
	created := e.clock.Now()

	e.clock.Advance(time.Minute)
	rotatedAt := e.clock.Now()
	second := e.rotate(t, e.m, "acme", keys.ES256)
	activation := rotatedAt.Add(prePublish)

	// A third key, withdrawn while it waited to sign.
	third := e.rotate(t, e.m, "acme", keys.EdDSA)
	e.clock.Advance(time.Second)
	withdrawnAt := e.clock.Now()
	e.withdraw(t, e.m, "acme", third.ID)
	thirdActivation := rotatedAt.Add(prePublish)

	other := e.replica(t)
	type row struct {
		kid       string
		alg       keys.Algorithm
		state     keys.State
		activates time.Time
		retired   time.Time
		expires   time.Time
		withdrawn time.Time
	}
	firstRetiring := row{kid: first.ID, alg: keys.EdDSA, state: keys.StateRetiring, activates: created,
		retired: activation, expires: activation.Add(retention)}
	withdrawn := row{kid: third.ID, alg: keys.EdDSA, state: keys.StateWithdrawn, activates: thirdActivation, withdrawn: withdrawnAt}
	tests := []struct {
		name string
		at   time.Time
		want []row
	}{
		{
			name: "pre-published: the old key signs and retires at the new one's activation",
			at:   withdrawnAt,
			want: []row{
				{kid: first.ID, alg: keys.EdDSA, state: keys.StateActive, activates: created, retired: activation, expires: activation.Add(retention)},
				{kid: second.ID, alg: keys.ES256, state: keys.StatePublished, activates: activation},
				withdrawn,
			},
		},
		{
			name: "last second before the activation",
			at:   activation.Add(-time.Second),
			want: []row{
				{kid: first.ID, alg: keys.EdDSA, state: keys.StateActive, activates: created, retired: activation, expires: activation.Add(retention)},
				{kid: second.ID, alg: keys.ES256, state: keys.StatePublished, activates: activation},
				withdrawn,
			},
		},
		{
			name: "activated: the new key signs, the old one retires",
			at:   activation,
			want: []row{firstRetiring, {kid: second.ID, alg: keys.ES256, state: keys.StateActive, activates: activation}, withdrawn},
		},
		{
			name: "the withdrawal is listed for the retention",
			at:   withdrawnAt.Add(retention),
			want: []row{firstRetiring, {kid: second.ID, alg: keys.ES256, state: keys.StateActive, activates: activation}, withdrawn},
		},
		{
			name: "then forgotten",
			at:   withdrawnAt.Add(retention + time.Second),
			want: []row{firstRetiring, {kid: second.ID, alg: keys.ES256, state: keys.StateActive, activates: activation}},
		},
		{
			name: "retiring until its expiry",
			at:   activation.Add(retention),
			want: []row{firstRetiring, {kid: second.ID, alg: keys.ES256, state: keys.StateActive, activates: activation}},
		},
		{
			name: "then the retired key has left",
			at:   activation.Add(retention + time.Second),
			want: []row{{kid: second.ID, alg: keys.ES256, state: keys.StateActive, activates: activation}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.at.Sub(e.clock.Now()))
			got, err := other.KeyStatuses(e.ctx, "acme")
			if err != nil {
				t.Fatalf("KeyStatuses: %v", err)
			}
			var rows []row
			for _, s := range got {
				rows = append(rows, row{kid: s.ID, alg: s.Algorithm, state: s.State, activates: s.ActivatesAt,
					retired: s.RetiredAt, expires: s.ExpiresAt, withdrawn: s.WithdrawnAt})
				if s.CreatedAt.IsZero() || s.PublishedAt.IsZero() {
					t.Errorf("key %s: created %v, published %v; want both set", s.ID, s.CreatedAt, s.PublishedAt)
				}
			}
			if fmt.Sprint(rows) != fmt.Sprint(tt.want) {
				t.Errorf("at %v:\n got %v\nwant %v", tt.at.Sub(t0), rows, tt.want)
			}
		})
	}
}

// TestWithdrawnKeysAreRememberedWithoutKeyMaterial checks that a withdrawn key is listed without
// its secret and stays unusable, and that a write after the retention drops it.
func TestWithdrawnKeysAreRememberedWithoutKeyMaterial(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithPrePublish(0), keys.WithRetention(retention))
	if err := e.m.Ensure(e.ctx, "acme", keys.HS256); err != nil {
		t.Fatal(err)
	}
	old := e.signingKey(t, e.m, "acme")
	secret := old.SignKey.([]byte)
	e.withdraw(t, e.m, "acme", old.ID)

	st, err := e.m.KeyStatuses(e.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) || bytes.Contains(raw, []byte(b64(secret))) {
		t.Fatalf("a status holds the withdrawn key's secret: %s", raw)
	}
	if len(st) != 2 || st[1].ID != old.ID || st[1].State != keys.StateWithdrawn {
		t.Fatalf("statuses after the withdrawal = %+v", st)
	}
	if _, err := e.m.VerificationKey(e.ctx, "acme", old.ID); !errors.Is(err, keys.ErrUnknownKey) {
		t.Fatalf("VerificationKey of the withdrawn key = %v, want ErrUnknownKey", err)
	}

	// A write after the retention prunes the withdrawal; a withdrawal of it again is unknown.
	e.clock.Advance(retention + time.Second)
	e.rotate(t, e.m, "acme", "")
	st, err = e.m.KeyStatuses(e.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State == keys.StateWithdrawn {
			t.Errorf("withdrawal still listed after the retention: %+v", s)
		}
	}
	if err := e.m.Withdraw(e.ctx, "acme", old.ID); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("Withdraw of a withdrawn key = %v, want ErrUnknownKey", err)
	}
}

// TestWithdrawalsAreBounded withdraws more keys than MaxKeys: the set remembers the newest
// MaxKeys withdrawals, so that its size stays bounded whatever an admin does.
func TestWithdrawalsAreBounded(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithPrePublish(0), keys.WithRetention(retention))
	if err := e.m.Ensure(e.ctx, "acme", keys.HS256); err != nil {
		t.Fatal(err)
	}
	var last string
	for range keys.MaxKeys + 3 {
		k := e.signingKey(t, e.m, "acme")
		e.withdraw(t, e.m, "acme", k.ID)
		last = k.ID
	}
	st, err := e.m.KeyStatuses(e.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range st {
		if s.State == keys.StateWithdrawn {
			n++
		}
	}
	if n != keys.MaxKeys || st[len(st)-1].ID != last {
		t.Errorf("%d withdrawals listed, the last %s; want %d, the last %s", n, st[len(st)-1].ID, keys.MaxKeys, last)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
