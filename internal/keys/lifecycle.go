package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// DefaultRetention is how long a manager keeps a retired key published unless WithRetention says
// otherwise: an hour of access-token lifetime and a minute of leeway.
const DefaultRetention = time.Hour + time.Minute

// Option configures a Manager.
type Option func(*Manager)

// WithPrePublish makes Rotate publish a new key d before it starts signing, so that verifiers
// holding a cached JWKS have it before the first token it signs (default 0: it signs at once).
// NewManager rejects a negative d.
func WithPrePublish(d time.Duration) Option {
	return func(m *Manager) { m.prePublish = d }
}

// WithRetention sets how long a retired key stays published and verifies after its successor
// starts signing. It must cover the longest access-token lifetime plus the verification leeway,
// or rotation logs people out (default DefaultRetention). NewManager rejects a negative d.
func WithRetention(d time.Duration) Option {
	return func(m *Manager) { m.retention = d }
}

// WithAudit writes an audit event for each signing key rotated or withdrawn and each refresh-token
// key rotated, naming the keys by their kids. Without it no events are written.
func WithAudit(w *audit.Writer) Option {
	return func(m *Manager) { m.audit = w }
}

// MaxKeys bounds the keys of one tenant's set: keys that sign, wait to sign, or verify within the
// retention. It bounds the JWKS (and the work of every verifier that fetches it) whatever a
// tenant's admins do; routine rotation keeps a set at two or three keys.
const MaxKeys = 16

// ErrTooManyKeys reports a rotation refused because the tenant's set holds MaxKeys keys.
var ErrTooManyKeys = fmt.Errorf("a tenant's key set holds at most %d signing keys: withdraw one, "+
	"or wait until retired keys leave after the retention", MaxKeys)

// Rotate adds a new key of alg to the tenant's set (the current signer's algorithm when alg is
// empty). The key is published at once and starts signing after the pre-publish delay; the key it
// replaces then retires and verifies for the retention. Keys retired longer ago than the retention
// leave the set. Rotate returns a description of the new key (see Keys), an error wrapping
// ErrNoKeys for a tenant without keys, ErrTooManyKeys when the set holds MaxKeys keys, or one
// wrapping ErrConflict when concurrent writers kept overtaking it (store.ErrConflict).
func (m *Manager) Rotate(ctx context.Context, tenant string, alg Algorithm) (*Key, error) {
	// Generated under the update's lock, once the limit is checked, and once for every attempt:
	// concurrent rotations take turns instead of generating RSA keys in parallel, and a refused
	// one generates nothing.
	var nk *Key
	updated, err := m.update(ctx, tenant, func(ks *keyset, now time.Time) error {
		m.prune(ks, now)
		if len(ks.keys) >= MaxKeys {
			return ErrTooManyKeys
		}
		a := alg
		if a == "" {
			a = ks.signer(now).Algorithm
		}
		if nk == nil || nk.Algorithm != a {
			var err error
			if nk, err = m.newKey(a, now); err != nil {
				return err
			}
		}
		k := *nk
		k.PublishedAt, k.ActivatesAt = now, now.Add(m.prePublish)
		ks.keys = append(ks.keys, &k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate signing key of tenant %q: %w", tenant, err)
	}
	k := describe(updated.byID[nk.ID], m.now())
	m.audit.Emit(ctx, audit.Event{Kind: audit.SigningKeyRotated, Tenant: tenant, Kid: k.ID, ActivatesAt: k.ActivatesAt})
	return k, nil
}

// Withdraw removes the tenant's key kid at once: every token it signed stops verifying, on this
// replica now and on the others at their next Refresh. When no remaining key has started signing,
// a new key of the withdrawn key's algorithm is published and signs at once, without the
// pre-publish delay. Otherwise the newest remaining active key signs. KeyStatuses lists the
// withdrawn key, without its key material, for the retention. It returns an error wrapping
// ErrUnknownKey for a kid that is not in the set (or whose retention has passed), ErrNoKeys for a
// tenant without keys, or ErrConflict as Rotate does.
func (m *Manager) Withdraw(ctx context.Context, tenant, kid string) error {
	var replacement *Key
	_, err := m.update(ctx, tenant, func(ks *keyset, now time.Time) error {
		m.prune(ks, now)
		i := ks.index(kid)
		if i < 0 {
			return fmt.Errorf("key %q: %w", kid, ErrUnknownKey)
		}
		withdrawn := ks.keys[i]
		ks.keys = append(ks.keys[:i:i], ks.keys[i+1:]...)
		ks.recordWithdrawal(withdrawn, now)
		if ks.active(now) != nil {
			return nil
		}
		if replacement == nil || replacement.Algorithm != withdrawn.Algorithm {
			var err error
			if replacement, err = m.newKey(withdrawn.Algorithm, now); err != nil {
				return err
			}
		}
		k := *replacement
		k.PublishedAt, k.ActivatesAt = now, now
		ks.keys = append(ks.keys, &k)
		return nil
	})
	if err != nil {
		return fmt.Errorf("withdraw signing key of tenant %q: %w", tenant, err)
	}
	m.audit.Emit(ctx, audit.Event{Kind: audit.SigningKeyWithdrawn, Tenant: tenant, Kid: kid})
	return nil
}

// Keys describes the tenant's keys, in activation order, as the store holds them now: every key
// that signs, waits to sign, or verifies within the retention. The descriptions are copies that
// carry the ID, the algorithm, the lifecycle times and, for asymmetric keys, the public half;
// never SignKey, and no VerifyKey for HS256 keys (whose verification key is the secret).
func (m *Manager) Keys(ctx context.Context, tenant string) ([]*Key, error) {
	ks, err := m.load(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := m.now()
	out := make([]*Key, 0, len(ks.keys))
	for _, k := range ks.keys {
		if !expired(k, now, m.retention) {
			out = append(out, describe(k, now))
		}
	}
	return out, nil
}

// Refresh re-reads the key set of every tenant this manager has cached, with one store read each,
// replacing the cached set, or forgetting it when the record is gone. Calling it every second
// makes a withdrawal or rotation on another replica take effect here within about a second. A
// tenant whose set cannot be read or opened keeps its cached set; Refresh reports every such
// failure in one error.
func (m *Manager) Refresh(ctx context.Context) error {
	m.mu.RLock()
	tenants := make([]string, 0, len(m.sets))
	for t := range m.sets {
		tenants = append(tenants, t)
	}
	m.mu.RUnlock()

	var errs []error
	for _, t := range tenants {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.RefreshTenant(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RefreshTenant re-reads one tenant's key set from the store, if this replica holds it, and
// installs it when it changed. The service calls it for every tenant each second, and at once for
// a tenant whose revocation log grew (a key withdrawn or published on another replica), so that a
// withdrawal takes effect on every replica within milliseconds rather than a second.
func (m *Manager) RefreshTenant(ctx context.Context, t string) error {
	m.mu.RLock()
	_, held := m.sets[t]
	m.mu.RUnlock()
	if !held {
		return nil
	}
	seq := m.seq.Add(1)
	blob, err := m.readBlob(ctx, t)
	if errors.Is(err, ErrNoKeys) {
		m.drop(t, seq)
		return nil
	}
	if err != nil {
		return fmt.Errorf("refresh key set of tenant %q: %w", t, err)
	}
	m.mu.RLock()
	cur := m.sets[t]
	m.mu.RUnlock()
	if cur != nil && bytes.Equal(cur.blob, blob) {
		return nil
	}
	ks, err := m.open(t, blob)
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	ks.seq = seq
	m.install(t, ks, true)
	return nil
}

// update applies apply to the tenant's stored key set as one atomic update of the record
// (Store.UpdateRecord): apply gets the set freshly opened from the record, and its result is
// stored only if nobody wrote the record meanwhile; otherwise apply runs again on what the other
// writer stored. No change is ever lost, so a withdrawn key never comes back. The stored set is
// cached and returned.
func (m *Manager) update(ctx context.Context, tenant string, apply func(ks *keyset, now time.Time) error) (*keyset, error) {
	// Serialized per replica so that concurrent rotations take turns generating keys rather than
	// generating RSA keys in parallel; replicas race through the store's compare-and-swap.
	select {
	case m.writes <- struct{}{}:
		defer func() { <-m.writes }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var ks *keyset
	blob, err := m.store.UpdateRecord(ctx, store.KindKeyset, tenant, func(old []byte) ([]byte, error) {
		var err error
		if ks, err = m.open(tenant, old); err != nil {
			return nil, err
		}
		if err := apply(ks, m.now()); err != nil {
			return nil, err
		}
		ks.normalize()
		return m.seal(tenant, ks)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrNoKeys
	case errors.Is(err, store.ErrConflict):
		return nil, fmt.Errorf("%w: %w", ErrConflict, err)
	case err != nil:
		return nil, err
	}
	// Numbered after the write: a set read from now on is this one or newer.
	ks.blob, ks.seq, ks.loadedAt = blob, m.seq.Add(1), m.now()
	m.install(tenant, ks, false)
	return ks, nil
}

// describe returns a copy of k without its secret: no SignKey, and no VerifyKey for HS256. Its
// RetiredAt is zero until that time has come at now.
func describe(k *Key, now time.Time) *Key {
	d := &Key{
		ID: k.ID, Algorithm: k.Algorithm, Method: k.Method, CreatedAt: k.CreatedAt,
		PublishedAt: k.PublishedAt, ActivatesAt: k.ActivatesAt,
	}
	if k.Algorithm != HS256 {
		d.VerifyKey = k.VerifyKey
	}
	if !k.RetiredAt.After(now) {
		d.RetiredAt = k.RetiredAt
	}
	return d
}
