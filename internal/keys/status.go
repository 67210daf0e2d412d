package keys

import (
	"context"
	"slices"
	"time"
)

// State is where a signing key is in its lifecycle.
type State string

// The states of a signing key.
const (
	// StatePublished is a key in the JWKS that does not sign yet: it signs from its ActivatesAt.
	StatePublished State = "published"
	// StateActive is the key that signs.
	StateActive State = "active"
	// StateRetiring is a key that no longer signs and still verifies what it signed, until
	// its ExpiresAt.
	StateRetiring State = "retiring"
	// StateWithdrawn is a withdrawn key: it neither signs nor verifies.
	StateWithdrawn State = "withdrawn"
)

// KeyStatus describes one of a tenant's signing keys for operators: its state and times, never
// any key material.
type KeyStatus struct {
	ID        string
	Algorithm Algorithm
	State     State
	CreatedAt time.Time
	// PublishedAt and ActivatesAt are the key's (Key).
	PublishedAt time.Time
	ActivatesAt time.Time
	// RetiredAt is when the key stops (or stopped) signing: its successor's ActivatesAt, also
	// while that is still to come. Zero while the key has no successor, and for a withdrawn key.
	RetiredAt time.Time
	// ExpiresAt is when the key stops verifying and leaves the set: RetiredAt and the retention.
	// Zero with RetiredAt.
	ExpiresAt time.Time
	// WithdrawnAt is when a withdrawn key was withdrawn; zero for the others.
	WithdrawnAt time.Time
}

// withdrawnKey is what a key set keeps of a withdrawn key, so that operators see the withdrawal:
// its description, never its key material. It is kept for the retention after the withdrawal,
// by when every token the key could have signed has expired anyway, and for at most MaxKeys
// withdrawals. Replicas of versions before it drop it when they write the set, which only shortens
// what KeyStatuses shows.
type withdrawnKey struct {
	ID          string    `json:"kid"`
	Algorithm   Algorithm `json:"alg"`
	CreatedAt   time.Time `json:"created"`
	PublishedAt time.Time `json:"published"`
	ActivatesAt time.Time `json:"activates"`
	WithdrawnAt time.Time `json:"withdrawn"`
}

// forgotten reports whether the withdrawal w is older than the retention at now.
func (w *withdrawnKey) forgotten(now time.Time, retention time.Duration) bool {
	return w.WithdrawnAt.Add(retention).Before(now)
}

// recordWithdrawal adds k, withdrawn at now, to the set's withdrawals, keeping the newest MaxKeys.
func (ks *keyset) recordWithdrawal(k *Key, now time.Time) {
	ks.withdrawn = append(ks.withdrawn, &withdrawnKey{
		ID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt, PublishedAt: k.PublishedAt,
		ActivatesAt: k.ActivatesAt, WithdrawnAt: now,
	})
	if n := len(ks.withdrawn); n > MaxKeys {
		ks.withdrawn = slices.Clone(ks.withdrawn[n-MaxKeys:])
	}
}

// KeyStatuses describes the tenant's signing keys as the store holds them now: every key that
// signs, waits to sign or still verifies, in activation order, then the keys withdrawn within the
// retention, in the order of their withdrawal. It returns ErrNoKeys for a tenant without keys.
func (m *Manager) KeyStatuses(ctx context.Context, tenant string) ([]KeyStatus, error) {
	ks, err := m.load(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := m.now()
	signer := ks.signer(now)
	out := make([]KeyStatus, 0, len(ks.keys)+len(ks.withdrawn))
	for _, k := range ks.keys {
		if expired(k, now, m.retention) {
			continue
		}
		st := KeyStatus{
			ID: k.ID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt, PublishedAt: k.PublishedAt,
			ActivatesAt: k.ActivatesAt, RetiredAt: k.RetiredAt,
		}
		if !k.RetiredAt.IsZero() {
			st.ExpiresAt = k.RetiredAt.Add(m.retention)
		}
		switch {
		case k == signer:
			// Also a key whose ActivatesAt is still to come, when none has activated on this
			// replica's clock: SigningKey signs with it.
			st.State = StateActive
		case k.ActivatesAt.After(now):
			st.State = StatePublished
		default:
			st.State = StateRetiring
		}
		out = append(out, st)
	}
	for _, w := range ks.withdrawn {
		if w.forgotten(now, m.retention) {
			continue
		}
		out = append(out, KeyStatus{
			ID: w.ID, Algorithm: w.Algorithm, State: StateWithdrawn, CreatedAt: w.CreatedAt,
			PublishedAt: w.PublishedAt, ActivatesAt: w.ActivatesAt, WithdrawnAt: w.WithdrawnAt,
		})
	}
	return out, nil
}
