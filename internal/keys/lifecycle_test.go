package keys_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

const (
	prePublish = 5 * time.Minute
	retention  = 30 * time.Minute
)

// newLifecycleEnv is newEnv with a manager configured by opts.
func newLifecycleEnv(t testing.TB, opts ...keys.Option) *env {
	t.Helper()
	clock := storetest.NewClock(t0)
	s := memory.New(clock.Now)
	return &env{ctx: context.Background(), clock: clock, store: s, m: newReplica(t, s, clock, opts...), opts: opts}
}

func newReplica(t testing.TB, s keys.Store, clock *storetest.Clock, opts ...keys.Option) *keys.Manager {
	t.Helper()
	m, err := keys.NewManager(s, kekA, clock.Now, opts...)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// replica returns another manager over e's store, configured as e.m is and then by opts.
func (e *env) replica(t testing.TB, opts ...keys.Option) *keys.Manager {
	t.Helper()
	return newReplica(t, e.store, e.clock, append(slices.Clone(e.opts), opts...)...)
}

func (e *env) rotate(t testing.TB, m *keys.Manager, tenant string, alg keys.Algorithm) *keys.Key {
	t.Helper()
	k, err := m.Rotate(e.ctx, tenant, alg)
	if err != nil {
		t.Fatalf("Rotate(%q, %q): %v", tenant, alg, err)
	}
	return k
}

func (e *env) withdraw(t testing.TB, m *keys.Manager, tenant, kid string) {
	t.Helper()
	if err := m.Withdraw(e.ctx, tenant, kid); err != nil {
		t.Fatalf("Withdraw(%q, %q): %v", tenant, kid, err)
	}
}

func (e *env) keyList(t testing.TB, m *keys.Manager, tenant string) []*keys.Key {
	t.Helper()
	ks, err := m.Keys(e.ctx, tenant)
	if err != nil {
		t.Fatalf("Keys(%q): %v", tenant, err)
	}
	return ks
}

// publicKids returns the kids of m's JWKS of tenant.
func (e *env) publicKids(t testing.TB, m *keys.Manager, tenant string) []string {
	t.Helper()
	pub, err := m.PublicKeys(e.ctx, tenant)
	if err != nil {
		t.Fatalf("PublicKeys(%q): %v", tenant, err)
	}
	var kids []string
	for _, j := range keys.ToJWKS(pub).Keys {
		kids = append(kids, j.Kid)
	}
	return kids
}

func kidsOf(ks []*keys.Key) []string {
	var kids []string
	for _, k := range ks {
		kids = append(kids, k.ID)
	}
	return kids
}

func keyByID(ks []*keys.Key, kid string) *keys.Key {
	for _, k := range ks {
		if k.ID == kid {
			return k
		}
	}
	return nil
}

// signed is a signature over message and the kid of the key that made it, as a token carries.
type signed struct {
	phase string
	kid   string
	sig   []byte
}

func (e *env) signNow(t testing.TB, m *keys.Manager, tenant, phase string) signed {
	t.Helper()
	k := e.signingKey(t, m, tenant)
	return signed{phase: phase, kid: k.ID, sig: sign(t, k)}
}

// verify verifies s through m's VerificationKey, as token verification does.
func (e *env) verify(m *keys.Manager, tenant string, s signed) error {
	k, err := m.VerificationKey(e.ctx, tenant, s.kid)
	if err != nil {
		return err
	}
	return k.Method.Verify(message, s.sig, k.VerifyKey)
}

func TestNewManagerRejectsNegativeDurations(t *testing.T) {
	for name, opt := range map[string]keys.Option{
		"pre-publish": keys.WithPrePublish(-time.Second),
		"retention":   keys.WithRetention(-time.Second),
	} {
		if _, err := keys.NewManager(memory.New(nil), kekA, time.Now, opt); err == nil {
			t.Errorf("NewManager with a negative %s succeeded", name)
		}
	}
}

func TestRotateTimeline(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithPrePublish(prePublish), keys.WithRetention(retention))
	e.ensure(t, "acme", keys.EdDSA)
	old := e.signingKey(t, e.m, "acme")

	e.clock.Advance(time.Minute)
	rotatedAt := e.clock.Now()
	nk := e.rotate(t, e.m, "acme", "")
	activation := rotatedAt.Add(prePublish)
	if nk.ID == old.ID || nk.Algorithm != keys.EdDSA {
		t.Fatalf("Rotate = %q (%s), want a new EdDSA key (the signer's algorithm)", nk.ID, nk.Algorithm)
	}
	if !nk.PublishedAt.Equal(rotatedAt) || !nk.ActivatesAt.Equal(activation) || !nk.RetiredAt.IsZero() {
		t.Errorf("Rotate = published %v, activates %v, retired %v; want %v, %v, zero",
			nk.PublishedAt, nk.ActivatesAt, nk.RetiredAt, rotatedAt, activation)
	}
	if nk.SignKey != nil {
		t.Error("Rotate's description carries the private key")
	}

	// Pre-publish window: the JWKS has both keys, the old key still signs, everywhere.
	if got, want := e.publicKids(t, e.m, "acme"), []string{old.ID, nk.ID}; !slices.Equal(got, want) {
		t.Errorf("JWKS during pre-publish = %q, want %q", got, want)
	}
	cached := e.replica(t)
	for name, m := range map[string]*keys.Manager{"rotating manager": e.m, "other replica": cached} {
		if got := e.signingKey(t, m, "acme"); got.ID != old.ID {
			t.Errorf("%s signs with %q during pre-publish, want the old %q", name, got.ID, old.ID)
		}
	}
	list := e.keyList(t, e.m, "acme")
	if got, want := kidsOf(list), []string{old.ID, nk.ID}; !slices.Equal(got, want) {
		t.Fatalf("Keys = %q, want %q", got, want)
	}
	if k := list[0]; !k.ActivatesAt.Equal(t0) || !k.RetiredAt.IsZero() {
		t.Errorf("old key during pre-publish: activates %v, retired %v; want %v, not yet retired", k.ActivatesAt, k.RetiredAt, t0)
	}
	rec := e.record(t, "acme")

	// Activation: the new key signs, by time alone, on every replica.
	e.clock.Advance(prePublish)
	for name, m := range map[string]*keys.Manager{"rotating manager": e.m, "replica cached before": cached, "fresh replica": e.replica(t)} {
		if got := e.signingKey(t, m, "acme"); got.ID != nk.ID {
			t.Errorf("%s signs with %q at activation, want the new %q", name, got.ID, nk.ID)
		}
	}
	if !bytes.Equal(e.record(t, "acme"), rec) {
		t.Error("activation rewrote the stored key set")
	}
	if k := keyByID(e.keyList(t, e.m, "acme"), old.ID); k == nil || !k.RetiredAt.Equal(activation) {
		t.Errorf("old key after activation = %+v, want retired at the new key's activation %v", k, activation)
	}

	// The old key stays published and verifies until the retention after activation has passed.
	oldSig := signed{kid: old.ID, sig: sign(t, old)}
	e.clock.Advance(retention)
	for name, m := range map[string]*keys.Manager{"rotating manager": e.m, "fresh replica": e.replica(t)} {
		if err := e.verify(m, "acme", oldSig); err != nil {
			t.Errorf("%s at the end of the retention: old key's signature: %v", name, err)
		}
		if got := e.publicKids(t, m, "acme"); !slices.Contains(got, old.ID) {
			t.Errorf("%s at the end of the retention: JWKS %q lacks the old key", name, got)
		}
	}
	e.clock.Advance(time.Second)
	for name, m := range map[string]*keys.Manager{"rotating manager": e.m, "fresh replica": e.replica(t)} {
		if err := e.verify(m, "acme", oldSig); !errors.Is(err, keys.ErrUnknownKey) {
			t.Errorf("%s after the retention: old key's signature: %v, want ErrUnknownKey", name, err)
		}
		if got, want := e.publicKids(t, m, "acme"), []string{nk.ID}; !slices.Equal(got, want) {
			t.Errorf("%s after the retention: JWKS = %q, want %q", name, got, want)
		}
		if got, want := kidsOf(e.keyList(t, m, "acme")), []string{nk.ID}; !slices.Equal(got, want) {
			t.Errorf("%s after the retention: Keys = %q, want %q", name, got, want)
		}
	}

	// The old key is still stored (a manager with a longer retention lists it) until the next
	// rotation drops it.
	long := e.replica(t, keys.WithRetention(100*time.Hour))
	if got := kidsOf(e.keyList(t, long, "acme")); !slices.Contains(got, old.ID) {
		t.Fatalf("before the next rotation, the stored set %q lacks the expired key", got)
	}
	third := e.rotate(t, e.m, "acme", "")
	if got, want := kidsOf(e.keyList(t, long, "acme")), []string{nk.ID, third.ID}; !slices.Equal(got, want) {
		t.Errorf("after the next rotation, the stored set = %q, want %q", got, want)
	}
}

func TestRotateWithAnotherAlgorithm(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	nk := e.rotate(t, e.m, "acme", keys.ES256)
	if nk.Algorithm != keys.ES256 {
		t.Errorf("Rotate(ES256) = a %s key", nk.Algorithm)
	}
	if got := e.signingKey(t, e.m, "acme"); got.ID != nk.ID || got.Algorithm != keys.ES256 {
		t.Errorf("SigningKey = %q (%s), want the new ES256 key %q (no pre-publish by default)", got.ID, got.Algorithm, nk.ID)
	}
	// Empty alg now means ES256, the new signer's.
	if k := e.rotate(t, e.m, "acme", ""); k.Algorithm != keys.ES256 {
		t.Errorf("Rotate with no algorithm after ES256 = a %s key", k.Algorithm)
	}
}

func TestRotateErrors(t *testing.T) {
	e := newLifecycleEnv(t)
	if _, err := e.m.Rotate(e.ctx, "acme", keys.EdDSA); !errors.Is(err, keys.ErrNoKeys) {
		t.Errorf("Rotate of a tenant without keys: %v, want ErrNoKeys", err)
	}
	if _, err := e.store.GetRecord(e.ctx, store.KindKeyset, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rotate of a tenant without keys stored a set: %v", err)
	}
	e.ensure(t, "acme", keys.EdDSA)
	rec := e.record(t, "acme")
	if _, err := e.m.Rotate(e.ctx, "acme", "none"); err == nil {
		t.Error(`Rotate with algorithm "none" succeeded`)
	}
	if !bytes.Equal(e.record(t, "acme"), rec) {
		t.Error("a failed Rotate rewrote the stored key set")
	}
	if _, err := e.replica(t).Keys(e.ctx, "globex"); !errors.Is(err, keys.ErrNoKeys) {
		t.Errorf("Keys of a tenant without keys: %v, want ErrNoKeys", err)
	}
}

func TestKeysDescribesWithoutSecrets(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newLifecycleEnv(t)
			e.ensure(t, "acme", alg)
			e.rotate(t, e.m, "acme", "")
			for _, k := range e.keyList(t, e.m, "acme") {
				if k.SignKey != nil {
					t.Errorf("key %q: the description carries SignKey", k.ID)
				}
				if (k.VerifyKey == nil) != (alg == keys.HS256) {
					t.Errorf("key %q: VerifyKey = %T, want the public half, or nothing for HS256", k.ID, k.VerifyKey)
				}
				if k.Method == nil || k.Algorithm != alg {
					t.Errorf("key %q: algorithm %s, method %v; want %s", k.ID, k.Algorithm, k.Method, alg)
				}
			}
			// The descriptions are copies: changing them changes nothing.
			list := e.keyList(t, e.m, "acme")
			list[0].ActivatesAt = time.Time{}
			if k := e.keyList(t, e.m, "acme")[0]; k.ActivatesAt.IsZero() {
				t.Error("changing a description changed the manager's key")
			}
		})
	}
}

// TestTokensSignedAcrossRotationVerifyUntilRetentionEnds signs under load, before, during and
// after a rotation, and verifies every signature so far after each phase, on the rotating replica
// and on one that cached the set before the rotation, until the retention ends.
func TestTokensSignedAcrossRotationVerifyUntilRetentionEnds(t *testing.T) {
	phases := []struct {
		name    string
		advance time.Duration // before the phase
		rotate  bool          // at the start of the phase
		wantNew bool          // whether the new key signs
	}{
		{"before", 0, false, false},
		{"just before rotation", 10 * time.Minute, false, false},
		{"pre-publish, first instant", 0, true, false},
		{"pre-publish, last second", prePublish - time.Second, false, false},
		{"activation", time.Second, false, true},
		{"after activation", 20 * time.Minute, false, true},
	}
	const perPhase = 3
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newLifecycleEnv(t, keys.WithPrePublish(prePublish), keys.WithRetention(retention))
			e.ensure(t, "acme", alg)
			old := e.signingKey(t, e.m, "acme")
			other := e.replica(t)
			var nk *keys.Key
			var tokens []signed
			for _, p := range phases {
				e.clock.Advance(p.advance)
				if p.rotate {
					nk = e.rotate(t, e.m, "acme", "")
				}
				for range perPhase {
					s := e.signNow(t, e.m, "acme", p.name)
					want := old.ID
					if p.wantNew {
						want = nk.ID
					}
					if s.kid != want {
						t.Fatalf("%s: signed by %q, want %q", p.name, s.kid, want)
					}
					tokens = append(tokens, s)
				}
				for _, s := range tokens {
					for name, m := range map[string]*keys.Manager{"rotating": e.m, "other": other} {
						if err := e.verify(m, "acme", s); err != nil {
							t.Errorf("at %q, a signature from %q on the %s replica: %v", p.name, s.phase, name, err)
						}
					}
				}
			}

			// To the last instant of the retention after activation: everything verifies.
			e.clock.Advance(retention - 20*time.Minute)
			for _, s := range tokens {
				if err := e.verify(other, "acme", s); err != nil {
					t.Errorf("at the end of the retention, a signature from %q: %v", s.phase, err)
				}
			}
			// Past it, the old key's signatures no longer do; the new key's still do.
			e.clock.Advance(time.Second)
			for _, s := range tokens {
				err := e.verify(other, "acme", s)
				if s.kid == old.ID && !errors.Is(err, keys.ErrUnknownKey) {
					t.Errorf("after the retention, a signature of the old key from %q: %v, want ErrUnknownKey", s.phase, err)
				}
				if s.kid == nk.ID && err != nil {
					t.Errorf("after the retention, a signature of the new key from %q: %v", s.phase, err)
				}
			}
		})
	}
}

func TestWithdrawKeyThatDoesNotSign(t *testing.T) {
	t.Run("retired", func(t *testing.T) {
		e := newLifecycleEnv(t)
		e.ensure(t, "acme", keys.EdDSA)
		old := e.signingKey(t, e.m, "acme")
		oldSig := e.signNow(t, e.m, "acme", "before")
		e.clock.Advance(time.Minute)
		nk := e.rotate(t, e.m, "acme", "")
		if err := e.verify(e.m, "acme", oldSig); err != nil {
			t.Fatalf("the old key's signature before the withdrawal: %v", err)
		}

		e.withdraw(t, e.m, "acme", old.ID)
		if err := e.verify(e.m, "acme", oldSig); !errors.Is(err, keys.ErrUnknownKey) {
			t.Errorf("the old key's signature right after the withdrawal: %v, want ErrUnknownKey", err)
		}
		e.clock.Advance(time.Minute) // past the reload interval: re-reading the store does not bring it back
		if err := e.verify(e.m, "acme", oldSig); !errors.Is(err, keys.ErrUnknownKey) {
			t.Errorf("the old key's signature a minute after the withdrawal: %v, want ErrUnknownKey", err)
		}
		if got := e.signingKey(t, e.m, "acme"); got.ID != nk.ID {
			t.Errorf("SigningKey after withdrawing a retired key = %q, want the unchanged %q", got.ID, nk.ID)
		}
		if got, want := e.publicKids(t, e.m, "acme"), []string{nk.ID}; !slices.Equal(got, want) {
			t.Errorf("JWKS after the withdrawal = %q, want %q", got, want)
		}
	})
	t.Run("pre-published", func(t *testing.T) {
		e := newLifecycleEnv(t, keys.WithPrePublish(prePublish))
		e.ensure(t, "acme", keys.EdDSA)
		old := e.signingKey(t, e.m, "acme")
		pending := e.rotate(t, e.m, "acme", "")

		e.withdraw(t, e.m, "acme", pending.ID)
		if got := e.signingKey(t, e.m, "acme"); got.ID != old.ID {
			t.Errorf("SigningKey after withdrawing the waiting key = %q, want the unchanged %q", got.ID, old.ID)
		}
		if got, want := e.publicKids(t, e.m, "acme"), []string{old.ID}; !slices.Equal(got, want) {
			t.Errorf("JWKS after the withdrawal = %q, want %q", got, want)
		}
		e.clock.Advance(prePublish)
		if got := e.signingKey(t, e.m, "acme"); got.ID != old.ID {
			t.Errorf("SigningKey when the withdrawn key would have activated = %q, want %q", got.ID, old.ID)
		}
		if k := keyByID(e.keyList(t, e.m, "acme"), old.ID); k == nil || !k.RetiredAt.IsZero() {
			t.Errorf("the signer after the withdrawal = %+v, want it not retired", k)
		}
	})
}

func TestWithdrawSigner(t *testing.T) {
	t.Run("newest remaining active key signs", func(t *testing.T) {
		e := newLifecycleEnv(t)
		e.ensure(t, "acme", keys.EdDSA)
		a := e.signingKey(t, e.m, "acme")
		e.clock.Advance(time.Minute)
		b := e.rotate(t, e.m, "acme", "")
		e.clock.Advance(time.Minute)
		c := e.rotate(t, e.m, "acme", "")
		cSig := e.signNow(t, e.m, "acme", "c")

		e.withdraw(t, e.m, "acme", c.ID)
		if got := e.signingKey(t, e.m, "acme"); got.ID != b.ID {
			t.Errorf("SigningKey after withdrawing the signer = %q, want the newest remaining %q", got.ID, b.ID)
		}
		if err := e.verify(e.m, "acme", cSig); !errors.Is(err, keys.ErrUnknownKey) {
			t.Errorf("the withdrawn signer's signature: %v, want ErrUnknownKey", err)
		}
		if got, want := e.publicKids(t, e.m, "acme"), []string{a.ID, b.ID}; !slices.Equal(got, want) {
			t.Errorf("JWKS after the withdrawal = %q, want %q", got, want)
		}
		if k := keyByID(e.keyList(t, e.m, "acme"), b.ID); k == nil || !k.RetiredAt.IsZero() {
			t.Errorf("the key signing again = %+v, want it not retired", k)
		}
	})
	for _, alg := range allAlgorithms {
		t.Run("replacement/"+string(alg), func(t *testing.T) {
			t.Parallel()
			// The replacement is an emergency: it signs at once despite the pre-publish delay.
			e := newLifecycleEnv(t, keys.WithPrePublish(prePublish))
			e.ensure(t, "acme", alg)
			a := e.signingKey(t, e.m, "acme")
			aSig := e.signNow(t, e.m, "acme", "a")
			e.clock.Advance(time.Minute)
			now := e.clock.Now()

			e.withdraw(t, e.m, "acme", a.ID)
			r := e.signingKey(t, e.m, "acme")
			if r.ID == a.ID || r.Algorithm != alg {
				t.Fatalf("SigningKey after withdrawing the only key = %q (%s), want a new %s key", r.ID, r.Algorithm, alg)
			}
			if !r.PublishedAt.Equal(now) || !r.ActivatesAt.Equal(now) {
				t.Errorf("replacement: published %v, activates %v; want both %v", r.PublishedAt, r.ActivatesAt, now)
			}
			if err := e.verify(e.m, "acme", e.signNow(t, e.m, "acme", "r")); err != nil {
				t.Errorf("the replacement's signature: %v", err)
			}
			if err := e.verify(e.m, "acme", aSig); !errors.Is(err, keys.ErrUnknownKey) {
				t.Errorf("the withdrawn key's signature: %v, want ErrUnknownKey", err)
			}
			want := []string{r.ID}
			if alg == keys.HS256 {
				want = nil
			}
			if got := e.publicKids(t, e.m, "acme"); !slices.Equal(got, want) {
				t.Errorf("JWKS after the withdrawal = %q, want %q", got, want)
			}
			if got := e.signingKey(t, e.replica(t), "acme"); got.ID != r.ID {
				t.Errorf("another replica signs with %q, want the replacement %q", got.ID, r.ID)
			}
		})
	}
	t.Run("replacement while a key waits", func(t *testing.T) {
		e := newLifecycleEnv(t, keys.WithPrePublish(prePublish))
		e.ensure(t, "acme", keys.ES256)
		a := e.signingKey(t, e.m, "acme")
		pending := e.rotate(t, e.m, "acme", "")

		e.withdraw(t, e.m, "acme", a.ID)
		r := e.signingKey(t, e.m, "acme")
		if r.ID == a.ID || r.ID == pending.ID || r.Algorithm != keys.ES256 {
			t.Fatalf("SigningKey = %q (%s), want a replacement, neither %q nor the waiting %q", r.ID, r.Algorithm, a.ID, pending.ID)
		}
		if got, want := e.publicKids(t, e.m, "acme"), []string{r.ID, pending.ID}; !slices.Equal(got, want) {
			t.Errorf("JWKS = %q, want %q", got, want)
		}
		e.clock.Advance(prePublish)
		if got := e.signingKey(t, e.m, "acme"); got.ID != pending.ID {
			t.Errorf("SigningKey at the waiting key's activation = %q, want %q", got.ID, pending.ID)
		}
	})
}

func TestWithdrawUnknownKey(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithRetention(retention))
	if err := e.m.Withdraw(e.ctx, "acme", "kid"); !errors.Is(err, keys.ErrNoKeys) {
		t.Errorf("Withdraw of a tenant without keys: %v, want ErrNoKeys", err)
	}
	e.ensure(t, "acme", keys.EdDSA)
	old := e.signingKey(t, e.m, "acme")
	e.rotate(t, e.m, "acme", "")
	e.clock.Advance(retention + time.Second)
	rec := e.record(t, "acme")
	for name, kid := range map[string]string{"an unknown kid": "no-such-kid", "a kid past its retention": old.ID} {
		if err := e.m.Withdraw(e.ctx, "acme", kid); !errors.Is(err, keys.ErrUnknownKey) {
			t.Errorf("Withdraw of %s: %v, want ErrUnknownKey", name, err)
		}
	}
	if !bytes.Equal(e.record(t, "acme"), rec) {
		t.Error("a failed Withdraw rewrote the stored key set")
	}
}

func TestWithdrawReachesOtherReplicaAtRefresh(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	a := e.signingKey(t, e.m, "acme")
	e.clock.Advance(time.Minute)
	b := e.rotate(t, e.m, "acme", "")

	other := e.replica(t)
	bSig := e.signNow(t, other, "acme", "b")
	if bSig.kid != b.ID {
		t.Fatalf("the other replica signs with %q, want %q", bSig.kid, b.ID)
	}

	e.withdraw(t, e.m, "acme", b.ID)
	// Until it refreshes, the other replica answers from its cache, however long: a known kid
	// never makes it re-read the store.
	e.clock.Advance(time.Minute)
	if err := e.verify(other, "acme", bSig); err != nil {
		t.Errorf("before Refresh, the other replica rejects the withdrawn key's signature: %v (want its cached answer)", err)
	}
	if got := e.signingKey(t, other, "acme"); got.ID != b.ID {
		t.Errorf("before Refresh, the other replica signs with %q, want its cached %q", got.ID, b.ID)
	}

	if err := other.Refresh(e.ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if err := e.verify(other, "acme", bSig); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("after Refresh, the withdrawn key's signature: %v, want ErrUnknownKey", err)
	}
	if got := e.signingKey(t, other, "acme"); got.ID != a.ID {
		t.Errorf("after Refresh, the other replica signs with %q, want %q", got.ID, a.ID)
	}
	if got, want := e.publicKids(t, other, "acme"), []string{a.ID}; !slices.Equal(got, want) {
		t.Errorf("after Refresh, the other replica's JWKS = %q, want %q", got, want)
	}
}

func TestRefreshForgetsDeletedKeySet(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	e.ensure(t, "globex", keys.EdDSA)
	other := e.replica(t)
	e.signingKey(t, other, "acme")
	globex := e.signingKey(t, other, "globex")

	if err := e.m.Delete(e.ctx, "acme"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := other.SigningKey(e.ctx, "acme"); err != nil {
		t.Errorf("before Refresh, the other replica's cached SigningKey: %v", err)
	}
	if err := other.Refresh(e.ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if _, err := other.SigningKey(e.ctx, "acme"); !errors.Is(err, keys.ErrNoKeys) {
		t.Errorf("after Refresh, SigningKey of the deleted set: %v, want ErrNoKeys", err)
	}
	if got := e.signingKey(t, other, "globex"); got.ID != globex.ID {
		t.Errorf("after Refresh, another tenant signs with %q, want %q", got.ID, globex.ID)
	}
}

// TestRefreshDoesNotDelayNewKeys shows that a key published on another replica is found at once
// by VerificationKey even right after a Refresh: Refresh does not count as the re-read that an
// unknown kid is rate-limited against.
func TestRefreshDoesNotDelayNewKeys(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	other := e.replica(t)
	e.signingKey(t, other, "acme")
	e.clock.Advance(time.Minute)

	first := e.rotate(t, e.m, "acme", "")
	if err := other.Refresh(e.ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if got := e.signingKey(t, other, "acme"); got.ID != first.ID {
		t.Fatalf("after Refresh, the other replica signs with %q, want %q", got.ID, first.ID)
	}
	second := e.rotate(t, e.m, "acme", "")
	s := e.signNow(t, e.m, "acme", "second")
	if s.kid != second.ID {
		t.Fatalf("the rotating replica signs with %q, want %q", s.kid, second.ID)
	}
	if err := e.verify(other, "acme", s); err != nil {
		t.Errorf("the other replica, right after a Refresh, rejects a key published since: %v", err)
	}
}

// flakyStore fails reads while fail is set.
type flakyStore struct {
	*memory.Store
	fail atomic.Bool
}

var errBroken = errors.New("broken store")

func (s *flakyStore) GetRecord(ctx context.Context, kind, id string) ([]byte, error) {
	if s.fail.Load() {
		return nil, errBroken
	}
	return s.Store.GetRecord(ctx, kind, id)
}

func TestRefreshKeepsCacheWhenStoreFails(t *testing.T) {
	clock := storetest.NewClock(t0)
	s := &flakyStore{Store: memory.New(clock.Now)}
	m := newReplica(t, s, clock)
	ctx := context.Background()
	if err := m.Ensure(ctx, "acme", keys.EdDSA); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	want, err := m.SigningKey(ctx, "acme")
	if err != nil {
		t.Fatalf("SigningKey: %v", err)
	}
	s.fail.Store(true)
	if err := m.Refresh(ctx); !errors.Is(err, errBroken) {
		t.Errorf("Refresh over a failing store: %v, want the store's error", err)
	}
	if got, err := m.SigningKey(ctx, "acme"); err != nil || got.ID != want.ID {
		t.Errorf("SigningKey after a failed Refresh = %v, %v; want the cached %q", got, err, want.ID)
	}
}

// interferingStore runs beforeSwap before each compare-and-swap of a record, as another writer
// acting between an update's read and its write would.
type interferingStore struct {
	*memory.Store
	swaps      atomic.Int32
	beforeSwap func(n int)
}

func (s *interferingStore) SwapRecord(ctx context.Context, kind, id string, old, value []byte) (bool, error) {
	n := int(s.swaps.Add(1))
	if s.beforeSwap != nil {
		s.beforeSwap(n)
	}
	return s.Store.SwapRecord(ctx, kind, id, old, value)
}

// UpdateRecord runs the store's update loop over s, so that its swaps go through SwapRecord above.
func (s *interferingStore) UpdateRecord(ctx context.Context, kind, id string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	return store.UpdateRecord(ctx, s, kind, id, fn)
}

// TestUpdateReportsErrConflictWhenAlwaysOvertaken: a writer that changes the set before every
// swap makes Rotate and Withdraw give up with ErrConflict, having changed nothing.
func TestUpdateReportsErrConflictWhenAlwaysOvertaken(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	first := e.record(t, "acme")
	inBoth := e.signingKey(t, e.m, "acme").ID
	e.rotate(t, e.replica(t), "acme", "")
	second := e.record(t, "acme")
	s := &interferingStore{Store: e.store}
	// Another writer flips the record between two sets before every swap.
	s.beforeSwap = func(int) {
		next := first
		if bytes.Equal(e.record(t, "acme"), first) {
			next = second
		}
		if err := e.store.PutRecord(e.ctx, store.KindKeyset, "acme", next); err != nil {
			t.Errorf("PutRecord: %v", err)
		}
	}
	m := newReplica(t, s, e.clock)
	if k, err := m.Rotate(e.ctx, "acme", ""); !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("Rotate that is always overtaken = %v, %v; want ErrConflict", k, err)
	}
	if err := m.Withdraw(e.ctx, "acme", inBoth); !errors.Is(err, keys.ErrConflict) {
		t.Errorf("Withdraw that is always overtaken: %v, want ErrConflict", err)
	}
	if got := len(e.keyList(t, e.replica(t), "acme")); got > 2 {
		t.Errorf("the stored set has %d keys, want one of the other writer's sets", got)
	}
}

// TestRacingUpdatesBothApply: another replica writes between an update's read and its write; the
// update is applied again on what that replica stored, so both changes are in the set. A withdrawal
// that wins against a rotation stays withdrawn, and a rotation that wins against a withdrawal is
// kept.
func TestRacingUpdatesBothApply(t *testing.T) {
	tests := []struct {
		name string
		// first runs on the replica that reads first; second on the other, in between.
		first, second string
	}{
		{"RotationOvertakenByWithdrawal", "rotate", "withdraw"},
		{"WithdrawalOvertakenByRotation", "withdraw", "rotate"},
		{"RotationOvertakenByRotation", "rotate", "rotate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLifecycleEnv(t)
			e.ensure(t, "acme", keys.EdDSA)
			old := e.signingKey(t, e.m, "acme")
			e.rotate(t, e.m, "acme", "") // two keys, so that withdrawing the old one needs no replacement
			s := &interferingStore{Store: e.store}
			other := e.replica(t) // writes to the store directly, not through s
			var added []string
			run := func(m *keys.Manager, op string) {
				if op == "withdraw" {
					e.withdraw(t, m, "acme", old.ID)
					return
				}
				added = append(added, e.rotate(t, m, "acme", "").ID)
			}
			s.beforeSwap = func(n int) {
				if n == 1 {
					run(other, tt.second)
				}
			}
			run(newReplica(t, s, e.clock), tt.first)
			if got := s.swaps.Load(); got != 2 {
				t.Errorf("%d swaps, want 2: one lost to the other replica, one on its result", got)
			}
			stored := kidsOf(e.keyList(t, e.replica(t), "acme"))
			withdrew := tt.first == "withdraw" || tt.second == "withdraw"
			if withdrew && slices.Contains(stored, old.ID) {
				t.Errorf("the withdrawn key %q is back in the stored set %q", old.ID, stored)
			}
			for _, kid := range added {
				if !slices.Contains(stored, kid) {
					t.Errorf("rotated key %q is missing from the stored set %q", kid, stored)
				}
			}
		})
	}
}

func TestConcurrentRotateOnOneReplica(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	const n = 8
	rotated := make([]*keys.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { rotated[i], errs[i] = e.m.Rotate(e.ctx, "acme", "") })
	}
	wg.Wait()
	checkRotations(t, e, rotated, errs)
}

// TestConcurrentRotateAcrossReplicas rotates from 8 replicas at once: every rotation succeeds and
// every new key is in the stored set.
func TestConcurrentRotateAcrossReplicas(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	const n = 8
	ms := make([]*keys.Manager, n)
	for i := range ms {
		ms[i] = e.replica(t)
	}
	rotated := make([]*keys.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { rotated[i], errs[i] = m.Rotate(e.ctx, "acme", "") })
	}
	wg.Wait()
	checkRotations(t, e, rotated, errs)
}

// checkRotations checks that every one of the concurrent rotations succeeded and that the stored
// set holds the first key and each rotation's key.
func checkRotations(t *testing.T, e *env, rotated []*keys.Key, errs []error) {
	t.Helper()
	fresh := e.replica(t)
	stored := kidsOf(e.keyList(t, fresh, "acme"))
	if len(stored) != len(rotated)+1 {
		t.Errorf("the stored set has %d keys, want %d", len(stored), len(rotated)+1)
	}
	for i := range rotated {
		if errs[i] != nil {
			t.Errorf("Rotate %d: %v", i, errs[i])
			continue
		}
		if !slices.Contains(stored, rotated[i].ID) {
			t.Errorf("Rotate %d returned %q, which is not in the stored set %q", i, rotated[i].ID, stored)
		}
	}
	if signer := e.signingKey(t, fresh, "acme"); !slices.Contains(stored, signer.ID) {
		t.Errorf("SigningKey = %q, not in the stored set", signer.ID)
	}
}

// TestConcurrentWithdrawalsAndRotationsAcrossReplicas: replicas rotate while others withdraw keys,
// all at once; no withdrawn key is in the final set and every rotation's key that nobody withdrew
// is.
func TestConcurrentWithdrawalsAndRotationsAcrossReplicas(t *testing.T) {
	e := newLifecycleEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	var victims []string
	for range 4 {
		victims = append(victims, e.rotate(t, e.m, "acme", "").ID)
	}
	const rotators = 4
	rotated := make([]*keys.Key, rotators)
	errs := make([]error, rotators+len(victims))
	var wg sync.WaitGroup
	for i := range rotators {
		m := e.replica(t)
		wg.Go(func() { rotated[i], errs[i] = m.Rotate(e.ctx, "acme", "") })
	}
	for i, kid := range victims {
		m := e.replica(t)
		wg.Go(func() { errs[rotators+i] = m.Withdraw(e.ctx, "acme", kid) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("operation %d: %v", i, err)
		}
	}
	stored := kidsOf(e.keyList(t, e.replica(t), "acme"))
	for _, kid := range victims {
		if slices.Contains(stored, kid) {
			t.Errorf("withdrawn key %q is in the stored set %q", kid, stored)
		}
	}
	for _, k := range rotated {
		if k != nil && !slices.Contains(stored, k.ID) {
			t.Errorf("rotated key %q is missing from the stored set %q", k.ID, stored)
		}
	}
}

// TestRotateRefusesBeyondMaxKeys: a set holds at most MaxKeys keys; a refused rotation changes
// nothing, and a withdrawal or the end of a retired key's retention makes room again.
func TestRotateRefusesBeyondMaxKeys(t *testing.T) {
	e := newLifecycleEnv(t, keys.WithRetention(retention))
	e.ensure(t, "acme", keys.EdDSA)
	for range keys.MaxKeys - 1 {
		e.rotate(t, e.m, "acme", "")
		e.clock.Advance(time.Second)
	}
	full := e.keyList(t, e.m, "acme")
	if len(full) != keys.MaxKeys {
		t.Fatalf("%d keys after %d rotations, want %d", len(full), keys.MaxKeys-1, keys.MaxKeys)
	}
	rec := e.record(t, "acme")
	if _, err := e.m.Rotate(e.ctx, "acme", ""); !errors.Is(err, keys.ErrTooManyKeys) {
		t.Fatalf("Rotate of a full set: %v, want ErrTooManyKeys", err)
	}
	if !bytes.Equal(e.record(t, "acme"), rec) {
		t.Error("a refused Rotate rewrote the stored key set")
	}
	if _, err := e.m.Rotate(e.ctx, "acme", keys.RS256); !errors.Is(err, keys.ErrTooManyKeys) {
		t.Errorf("Rotate of a full set to another algorithm: %v, want ErrTooManyKeys", err)
	}
	if _, err := e.m.Rotate(e.ctx, "acme", "none"); !errors.Is(err, keys.ErrTooManyKeys) {
		t.Errorf("Rotate of a full set with a bad algorithm: %v, want ErrTooManyKeys", err)
	}

	e.withdraw(t, e.m, "acme", full[0].ID)
	e.rotate(t, e.m, "acme", "")
	if _, err := e.m.Rotate(e.ctx, "acme", ""); !errors.Is(err, keys.ErrTooManyKeys) {
		t.Fatalf("Rotate of a set filled again: %v, want ErrTooManyKeys", err)
	}
	// Once the retention has passed, every key but the signer and the pending ones leaves.
	e.clock.Advance(prePublish + retention + time.Minute)
	e.rotate(t, e.m, "acme", "")
	if n := len(e.keyList(t, e.m, "acme")); n > 3 {
		t.Errorf("%d keys after the retention passed, want the signer and its successors", n)
	}
}
