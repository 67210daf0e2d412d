package keys_test

import (
	"context"
	"crypto/rand"
	"reflect"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

func TestSigningKeyAges(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	m, err := keys.NewManager(memory.New(clock.Now), kek, clock.Now, keys.WithPrePublish(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want map[keys.Algorithm]time.Duration) {
		t.Helper()
		if got := m.SigningKeyAges(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: SigningKeyAges() = %v, want %v", step, got, want)
		}
	}
	check("no tenant", map[keys.Algorithm]time.Duration{})
	for _, tenant := range []string{"old", "young"} {
		if err := m.Ensure(ctx, tenant, keys.EdDSA); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
	}
	if err := m.Ensure(ctx, "rsa", keys.RS256); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	check("three tenants", map[keys.Algorithm]time.Duration{keys.EdDSA: 2*time.Hour + time.Minute, keys.RS256: time.Minute})

	// A rotated key counts once it signs, after the pre-publish delay.
	if _, err := m.Rotate(ctx, "old", ""); err != nil {
		t.Fatal(err)
	}
	check("rotated, not signing yet", map[keys.Algorithm]time.Duration{keys.EdDSA: 2*time.Hour + time.Minute, keys.RS256: time.Minute})
	clock.Advance(5 * time.Minute)
	check("rotated key signing", map[keys.Algorithm]time.Duration{keys.EdDSA: time.Hour + 6*time.Minute, keys.RS256: 6 * time.Minute})
}
