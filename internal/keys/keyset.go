package keys

import (
	"slices"
	"time"
)

// keyset is the decrypted form of a tenant's stored key set. Once cached it is never modified.
type keyset struct {
	// keys are in activation order (stable: of two keys activating together, the later added
	// comes last and wins).
	keys []*Key
	byID map[string]*Key
	// refreshKeys are the refresh-token keys, oldest first: the last one signs, every one verifies.
	refreshKeys []*RefreshKey
	// withdrawn are the keys withdrawn within the retention, oldest withdrawal first: what
	// KeyStatuses shows of them. They are not keys of the set.
	withdrawn []*withdrawnKey
	// blob is the sealed record the set was opened from or sealed to.
	blob []byte
	// seq orders the reads behind cached sets: a set read later replaces one read earlier, never
	// the reverse.
	seq uint64
	// loadedAt is when a lookup last read the set from the store; it rate-limits the re-reads
	// that unknown kids cause. Refresh keeps it.
	loadedAt time.Time
}

// active returns the key that signs at now: the last in activation order whose ActivatesAt has
// come, or nil when none has.
func (ks *keyset) active(now time.Time) *Key {
	for i := len(ks.keys) - 1; i >= 0; i-- {
		if !ks.keys[i].ActivatesAt.After(now) {
			return ks.keys[i]
		}
	}
	return nil
}

// signer returns the key that signs at now. When no key has activated yet, which only a replica
// whose clock lags the writer's sees, the first to activate signs rather than nothing.
func (ks *keyset) signer(now time.Time) *Key {
	if k := ks.active(now); k != nil {
		return k
	}
	return ks.keys[0]
}

// expired reports whether k's retention after retirement has passed at now: no token it signed
// is still live, so it neither verifies nor is published, and the next write drops it.
func expired(k *Key, now time.Time, retention time.Duration) bool {
	return !k.RetiredAt.IsZero() && k.RetiredAt.Add(retention).Before(now)
}

// normalize sorts ks.keys into activation order, indexes them, and sets each key's RetiredAt to
// the ActivatesAt of the key after it.
func (ks *keyset) normalize() {
	slices.SortStableFunc(ks.keys, func(a, b *Key) int { return a.ActivatesAt.Compare(b.ActivatesAt) })
	ks.byID = make(map[string]*Key, len(ks.keys))
	for i, k := range ks.keys {
		ks.byID[k.ID] = k
		k.RetiredAt = time.Time{}
		if i+1 < len(ks.keys) {
			k.RetiredAt = ks.keys[i+1].ActivatesAt
		}
	}
}

// prune drops the keys whose retention has passed at now, and the withdrawals older than it. The
// signer and keys that do not sign yet have not retired (their RetiredAt is zero or still to
// come), so they always stay.
func (m *Manager) prune(ks *keyset, now time.Time) {
	signer := ks.signer(now)
	kept := ks.keys[:0:0]
	for _, k := range ks.keys {
		if k == signer || k.ActivatesAt.After(now) || !expired(k, now, m.retention) {
			kept = append(kept, k)
		}
	}
	ks.keys = kept
	ks.withdrawn = slices.DeleteFunc(slices.Clone(ks.withdrawn), func(w *withdrawnKey) bool {
		return w.forgotten(now, m.retention)
	})
}

// index returns the position of key kid in ks.keys, or -1.
func (ks *keyset) index(kid string) int {
	for i, k := range ks.keys {
		if k.ID == kid {
			return i
		}
	}
	return -1
}
