package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
)

// LegacyRefreshKID is the id of the refresh-token key of key sets written before refresh keys
// rotated: every refresh token of that time carries it, and it keeps verifying them until a
// rotation retires it.
const LegacyRefreshKID = "rt"

// refreshKIDPrefix starts the id of every rotated refresh-token key.
const refreshKIDPrefix = "rt-"

// DefaultRefreshRetention is how long a retired refresh-token key keeps verifying unless
// WithRefreshRetention says otherwise: the default longest session and a minute.
const DefaultRefreshRetention = 720*time.Hour + time.Minute

// MaxRefreshKeys bounds a tenant's refresh-token keys: the current one and the retired ones still
// verifying.
const MaxRefreshKeys = 8

var (
	// ErrTooManyRefreshKeys reports a routine rotation refused because the tenant holds
	// MaxRefreshKeys refresh-token keys.
	ErrTooManyRefreshKeys = fmt.Errorf("a tenant holds at most %d refresh-token keys: rotate in an emergency "+
		"(which drops the older ones), or wait until retired keys leave", MaxRefreshKeys)
	// ErrRefreshKeyChanged reports a rotation whose caller named a current refresh-token key that
	// is no longer the current one: another rotation came first.
	ErrRefreshKeyChanged = errors.New("the current refresh-token key is no longer the one named: another rotation came first")
)

// RefreshKey is one of a tenant's server-only refresh-token keys (HMAC-SHA256).
type RefreshKey struct {
	// ID is the kid of the refresh tokens it signs: LegacyRefreshKID or "rt-" and 16 characters.
	ID string
	// Secret is the HMAC key; empty in the descriptions that RotateRefreshKey returns.
	Secret    []byte
	CreatedAt time.Time
	// RetiredAt is when a newer key took over signing, zero for the current key. A retired key
	// verifies for the refresh retention after it.
	RetiredAt time.Time
}

// WithRefreshRetention sets how long a retired refresh-token key keeps verifying the refresh
// tokens it signed after a routine rotation. It must cover the longest session, or a routine
// rotation logs people out (default DefaultRefreshRetention). NewManager rejects a negative d.
func WithRefreshRetention(d time.Duration) Option {
	return func(m *Manager) { m.refreshRetention = d }
}

// ValidRefreshKID reports whether kid has the form of a refresh-token key's id, so that a kid read
// from a presented token may be looked up and logged. A kid of another form is not looked up, and
// not logged.
func ValidRefreshKID(kid string) bool {
	if kid == LegacyRefreshKID {
		return true
	}
	rest, ok := strings.CutPrefix(kid, refreshKIDPrefix)
	if !ok || len(rest) != 16 {
		return false
	}
	for _, c := range []byte(rest) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// refreshExpired reports whether the retired refresh key k has stopped verifying at now.
func (m *Manager) refreshExpired(k *RefreshKey, now time.Time) bool {
	return !k.RetiredAt.IsZero() && k.RetiredAt.Add(m.refreshRetention).Before(now)
}

// RefreshKeys returns the tenant's refresh-token keys that verify now, oldest first; the last one
// signs.
func (m *Manager) RefreshKeys(ctx context.Context, tenant string) ([]*RefreshKey, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := m.now()
	out := make([]*RefreshKey, 0, len(ks.refreshKeys))
	for _, k := range ks.refreshKeys {
		if !m.refreshExpired(k, now) {
			out = append(out, k)
		}
	}
	return out, nil
}

// RefreshVerificationKey returns the tenant's refresh-token key kid, or an error wrapping
// ErrUnknownKey for a kid that the tenant does not hold: never held, dropped by an emergency
// rotation, or retired longer ago than the refresh retention. An unknown kid makes the replica
// re-read the set, at most once per reloadInterval per tenant, so that a key rotated on another replica is
// found at once.
func (m *Manager) RefreshVerificationKey(ctx context.Context, tenant, kid string) (*RefreshKey, error) {
	if !ValidRefreshKID(kid) {
		return nil, ErrUnknownKey
	}
	return lookup(ctx, m, tenant, func(ks *keyset) (*RefreshKey, bool) { return m.refreshVerifier(ks, kid) })
}

// refreshVerifier returns ks's refresh-token key kid unless the refresh retention has passed.
func (m *Manager) refreshVerifier(ks *keyset, kid string) (*RefreshKey, bool) {
	now := m.now()
	for _, k := range ks.refreshKeys {
		if k.ID == kid && !m.refreshExpired(k, now) {
			return k, true
		}
	}
	return nil, false
}

// RefreshRotation is a request to rotate a tenant's refresh-token key.
type RefreshRotation struct {
	// Emergency drops every older key at once: the refresh tokens they signed are refused from
	// then on. Otherwise they keep verifying for the refresh retention.
	Emergency bool
	// IfCurrent, when set, is the id of the key the caller believes current; if another rotation
	// has replaced it, nothing changes and the error wraps ErrRefreshKeyChanged.
	IfCurrent string
}

// RefreshRotated describes a refresh-token rotation, without secrets.
type RefreshRotated struct {
	// Current is the new key, which signs every refresh token from now on.
	Current RefreshKey
	// Retired are the older keys still verifying, each until RetiredAt plus Retention.
	Retired []RefreshKey
	// Dropped are the ids of the keys that stopped verifying with this rotation (an emergency).
	Dropped []string
	// Retention is how long a retired key verifies after its RetiredAt.
	Retention time.Duration
}

// RotateRefreshKey gives the tenant a new refresh-token key, which signs every refresh token from
// now on, in one atomic update of the key set. Routinely the older keys keep verifying the tokens
// they signed until the refresh retention has passed after their retirement, and then leave the
// set; in an emergency they leave at once. Two rotations racing each other both apply, one after
// the other, unless IfCurrent names a key that the first replaced.
func (m *Manager) RotateRefreshKey(ctx context.Context, tenant string, r RefreshRotation) (*RefreshRotated, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	id := refreshKIDPrefix + newKID()
	var out *RefreshRotated
	_, err := m.update(ctx, tenant, func(ks *keyset, now time.Time) error {
		cur := ks.refreshKeys[len(ks.refreshKeys)-1]
		if r.IfCurrent != "" && r.IfCurrent != cur.ID {
			return fmt.Errorf("%w (current: %s)", ErrRefreshKeyChanged, cur.ID)
		}
		out = &RefreshRotated{Retention: m.refreshRetention}
		var kept []*RefreshKey
		for _, k := range ks.refreshKeys {
			if r.Emergency || m.refreshExpired(k, now) {
				if !m.refreshExpired(k, now) {
					out.Dropped = append(out.Dropped, k.ID)
				}
				continue
			}
			rk := *k
			if rk.RetiredAt.IsZero() {
				rk.RetiredAt = now
			}
			kept = append(kept, &rk)
			out.Retired = append(out.Retired, RefreshKey{ID: rk.ID, CreatedAt: rk.CreatedAt, RetiredAt: rk.RetiredAt})
		}
		if len(kept) >= MaxRefreshKeys {
			return ErrTooManyRefreshKeys
		}
		nk := &RefreshKey{ID: id, Secret: secret, CreatedAt: now}
		kept = append(kept, nk)
		ks.refreshKeys = kept
		out.Current = RefreshKey{ID: nk.ID, CreatedAt: now}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate refresh-token key of tenant %q: %w", tenant, err)
	}
	m.audit.Emit(ctx, audit.Event{Kind: audit.RefreshKeyRotated, Tenant: tenant, Kid: out.Current.ID, Emergency: r.Emergency,
		DroppedKids: out.Dropped})
	return out, nil
}
