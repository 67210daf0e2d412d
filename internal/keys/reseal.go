package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// RecordLister lists the records of a kind (the store's ListRecords).
type RecordLister interface {
	ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error)
}

// SealStats counts stored key sets by the key-encryption key that seals them.
type SealStats struct {
	// Current counts the sets sealed under the current key.
	Current int
	// Previous counts the sets that a previous key opens (or that were sealed before records
	// named their key): Reseal moves them to the current key.
	Previous int
	// Unknown counts the sets that no configured key opens, such as those sealed under a newer key
	// by a replica that is further along a key rotation.
	Unknown int
	// Resealed counts the sets this pass moved to the current key.
	Resealed int
}

// SealedRecords returns what the last Check or Reseal counted, and false before either has run.
// It reads no store: metrics call it at every scrape.
func (m *Manager) SealedRecords() (SealStats, bool) {
	if st := m.sealed.Load(); st != nil {
		return *st, true
	}
	return SealStats{}, false
}

// Reseal moves every stored key set that is not sealed under the current key-encryption key to
// it, one set per atomic update (Store.UpdateRecord): a set is decrypted with the key that sealed
// it and encrypted again, its content unchanged. Several replicas may reseal at once, and an
// interrupted pass leaves every set whole, under the old key or the new; the next pass resumes.
//
// It returns the counts after the pass, which SealedRecords reports until the next. A set that no
// configured key opens is counted as Unknown and reported in the error; a store failure ends the
// pass (the sets not yet visited are counted by their header) and is returned as well.
func (m *Manager) Reseal(ctx context.Context, s RecordLister) (SealStats, error) {
	recs, err := s.ListRecords(ctx, store.KindKeyset, "")
	if err != nil {
		return SealStats{}, fmt.Errorf("list key sets: %w", err)
	}
	var st SealStats
	var errs []error
	var storeErr error
	for _, r := range recs {
		if m.sealedUnderCurrent(r.Value) {
			st.Current++
			continue
		}
		if storeErr != nil {
			m.classify(&st, r.ID, r.Value)
			continue
		}
		resealed := false
		_, err := m.store.UpdateRecord(ctx, store.KindKeyset, r.ID, func(old []byte) ([]byte, error) {
			resealed = false
			if m.sealedUnderCurrent(old) {
				return old, nil
			}
			plain, _, err := m.openPlain(r.ID, old)
			if err != nil {
				return nil, err
			}
			resealed = true
			return m.sealPlain(r.ID, plain), nil
		})
		switch {
		case err == nil:
			st.Current++
			if resealed {
				st.Resealed++
			}
		case errors.Is(err, store.ErrNotFound):
			// Deleted meanwhile: nothing left to move.
		case errors.Is(err, ErrWrongKEK):
			st.Unknown++
			errs = append(errs, err)
		default:
			storeErr = fmt.Errorf("reseal key set of tenant %q: %w", r.ID, err)
			m.classify(&st, r.ID, r.Value)
		}
	}
	m.sealed.Store(&st)
	return st, errors.Join(append(errs, storeErr)...)
}

// classify counts blob, a tenant's sealed set not sealed under the current key (Reseal counts
// those first), as Previous when a configured key opens it and as Unknown otherwise.
func (m *Manager) classify(st *SealStats, tenant string, blob []byte) {
	if _, _, err := m.openPlain(tenant, blob); err != nil {
		st.Unknown++
		return
	}
	st.Previous++
}
