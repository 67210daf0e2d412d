package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Manager creates, stores and serves tenants' key sets.
type Manager struct {
	store Store
	// kek seals and opens key sets; previous only open them; keks holds all of them by id.
	kek      *kek
	previous []*kek
	keks     map[[kekIDLen]byte]*kek
	// previousKEKs holds WithPreviousKEKs's keys until NewManager builds the ring.
	previousKEKs [][]byte
	// sealed is what the last Check or Reseal counted.
	sealed     atomic.Pointer[SealStats]
	now        func() time.Time
	prePublish time.Duration
	retention  time.Duration
	// refreshRetention is how long a retired refresh-token key keeps verifying (WithRefreshRetention).
	refreshRetention time.Duration
	// audit writes the events of Rotate, Withdraw and RotateRefreshKey (WithAudit).
	audit *audit.Writer

	// writes serializes this manager's read-modify-write updates (Rotate, Withdraw).
	writes chan struct{}
	// newKey generates a key (generate; tests count the calls).
	newKey func(alg Algorithm, now time.Time) (*Key, error)
	seq    atomic.Uint64

	mu   sync.RWMutex
	sets map[string]*keyset
}

// reloadInterval bounds how often an unknown kid makes a replica re-read a tenant's key set: a
// key that another replica just added (a replacement after a withdrawal signs at once) verifies
// here within it, while a flood of made-up kids costs at most one read of the set per interval.
const reloadInterval = 50 * time.Millisecond

// NewManager returns a manager that encrypts key sets under kek (32 bytes) and reads the time from
// now. The options set the pre-publish delay of Rotate (WithPrePublish) and how long retired keys
// keep verifying (WithRetention).
func NewManager(s Store, kek []byte, now func() time.Time, opts ...Option) (*Manager, error) {
	m := &Manager{store: s, now: now, retention: DefaultRetention, refreshRetention: DefaultRefreshRetention, writes: make(chan struct{}, 1), newKey: generate, sets: map[string]*keyset{}}
	for _, opt := range opts {
		opt(m)
	}
	if m.prePublish < 0 {
		return nil, fmt.Errorf("key pre-publish delay %v is negative", m.prePublish)
	}
	if m.refreshRetention < 0 {
		return nil, fmt.Errorf("refresh key retention %v is negative", m.refreshRetention)
	}
	if m.retention < 0 {
		return nil, fmt.Errorf("key retention %v is negative", m.retention)
	}
	if err := m.buildRing(kek); err != nil {
		return nil, err
	}
	return m, nil
}

// Ensure creates the tenant's key set, with one key of alg that signs at once, unless it exists.
// It loads an existing set, so that a wrong key-encryption key is reported here.
func (m *Manager) Ensure(ctx context.Context, tenant string, alg Algorithm) error {
	_, err := m.load(ctx, tenant)
	if !errors.Is(err, ErrNoKeys) {
		return err
	}
	now := m.now()
	k, err := m.newKey(alg, now)
	if err != nil {
		return err
	}
	k.PublishedAt, k.ActivatesAt = now, now
	// The first refresh-token key is a legacy one, which replicas of the version before refresh
	// keys rotated can open; the first rotation gives its successor an id.
	rk := make([]byte, 32)
	_, _ = rand.Read(rk)
	ks := &keyset{keys: []*Key{k}, refreshKeys: []*RefreshKey{{ID: LegacyRefreshKID, Secret: rk, CreatedAt: now}}}
	blob, err := m.seal(tenant, ks)
	if err != nil {
		return err
	}
	err = m.store.CreateRecord(ctx, store.KindKeyset, tenant, blob)
	switch {
	case err == nil:
		ks.normalize()
		ks.blob, ks.seq, ks.loadedAt = blob, m.seq.Add(1), m.now()
		m.install(tenant, ks, false)
		return nil
	case errors.Is(err, store.ErrExists):
		// Another replica created the set first: serve that one.
		_, err = m.load(ctx, tenant)
		return err
	default:
		return fmt.Errorf("store key set: %w", err)
	}
}

// SigningKey returns the key that signs the tenant's access tokens now: the newest whose
// ActivatesAt has come. A pre-published key thus starts signing on every replica when its time
// comes, without another write.
func (m *Manager) SigningKey(ctx context.Context, tenant string) (*Key, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return ks.signer(m.now()), nil
}

// VerificationKey returns the tenant's key kid, or ErrUnknownKey for a kid that is not in the set,
// was withdrawn, or was retired longer ago than the retention.
func (m *Manager) VerificationKey(ctx context.Context, tenant, kid string) (*Key, error) {
	return lookup(ctx, m, tenant, func(ks *keyset) (*Key, bool) { return m.verifier(ks, kid) })
}

// lookup finds a key of the tenant with find in the cached set and, when that set does not hold
// it and was loaded longer than reloadInterval ago, in a fresh read of the set: another replica
// may have added the key since (at most one read per reloadInterval per tenant, however many
// unknown kids are presented). Not found either way is ErrUnknownKey.
func lookup[K any](ctx context.Context, m *Manager, tenant string, find func(*keyset) (K, bool)) (K, error) {
	var none K
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return none, err
	}
	if k, ok := find(ks); ok {
		return k, nil
	}
	if m.now().Sub(ks.loadedAt) < reloadInterval {
		return none, ErrUnknownKey
	}
	if ks, err = m.load(ctx, tenant); err != nil {
		return none, err
	}
	if k, ok := find(ks); ok {
		return k, nil
	}
	return none, ErrUnknownKey
}

// verifier returns ks's key kid unless its retention has passed.
func (m *Manager) verifier(ks *keyset, kid string) (*Key, bool) {
	k, ok := ks.byID[kid]
	if !ok || expired(k, m.now(), m.retention) {
		return nil, false
	}
	return k, true
}

// PublicKeys returns the tenant's published keys, in activation order: those whose PublishedAt has
// come, including keys that do not sign yet and retired keys within the retention, and always the
// current signer. It never returns HS256 keys, whose secret cannot be shown.
func (m *Manager) PublicKeys(ctx context.Context, tenant string) ([]*Key, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return m.published(ks), nil
}

// CurrentPublicKeys is PublicKeys read from the store rather than the cache, which may be up to a
// refresh interval old: for a verifier that has just been told that the keys changed.
func (m *Manager) CurrentPublicKeys(ctx context.Context, tenant string) ([]*Key, error) {
	ks, err := m.load(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return m.published(ks), nil
}

func (m *Manager) published(ks *keyset) []*Key {
	now := m.now()
	signer := ks.signer(now)
	out := make([]*Key, 0, len(ks.keys))
	for _, k := range ks.keys {
		published := !k.PublishedAt.After(now) || k == signer
		if k.Algorithm != HS256 && published && !expired(k, now, m.retention) {
			out = append(out, k)
		}
	}
	return out
}

// forget drops a tenant's cached key set.
func (m *Manager) forget(tenant string) {
	m.mu.Lock()
	delete(m.sets, tenant)
	m.mu.Unlock()
}

// install caches ks, read from the store as number ks.seq, unless the cache holds a set read
// later, and returns the set cached. With refresh, it only replaces a cached set, keeping its
// loadedAt, and returns nil when there is none.
func (m *Manager) install(tenant string, ks *keyset, refresh bool) *keyset {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.sets[tenant]
	if cur != nil && cur.seq > ks.seq {
		return cur
	}
	if refresh {
		if cur == nil {
			return nil
		}
		ks.loadedAt = cur.loadedAt
	}
	m.sets[tenant] = ks
	return ks
}

// drop forgets the tenant's cached set unless it was read after read number seq.
func (m *Manager) drop(tenant string, seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.sets[tenant]; cur != nil && cur.seq < seq {
		delete(m.sets, tenant)
	}
}

func (m *Manager) cached(ctx context.Context, tenant string) (*keyset, error) {
	m.mu.RLock()
	ks := m.sets[tenant]
	m.mu.RUnlock()
	if ks != nil {
		return ks, nil
	}
	return m.load(ctx, tenant)
}

// load reads the tenant's key set from the store and caches it.
func (m *Manager) load(ctx context.Context, tenant string) (*keyset, error) {
	seq := m.seq.Add(1)
	ks, err := m.read(ctx, tenant)
	if errors.Is(err, ErrNoKeys) {
		m.drop(tenant, seq)
	}
	if err != nil {
		return nil, err
	}
	ks.seq, ks.loadedAt = seq, m.now()
	return m.install(tenant, ks, false), nil
}

// read reads and opens the tenant's key set without caching it.
func (m *Manager) read(ctx context.Context, tenant string) (*keyset, error) {
	blob, err := m.readBlob(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return m.open(tenant, blob)
}

// readBlob reads the tenant's sealed key set, or reports ErrNoKeys.
func (m *Manager) readBlob(ctx context.Context, tenant string) ([]byte, error) {
	blob, err := m.store.GetRecord(ctx, store.KindKeyset, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoKeys
	}
	if err != nil {
		return nil, fmt.Errorf("load key set: %w", err)
	}
	return blob, nil
}

// Check opens every stored key set, so that a key set that no configured key-encryption key opens
// is found at start-up rather than at the first token, and caches them. It returns an error
// wrapping ErrWrongKEK then, naming the id of the key the set needs (KEKID), and counts the sets
// for SealedRecords.
func (m *Manager) Check(ctx context.Context, s RecordLister) error {
	seq := m.seq.Add(1)
	recs, err := s.ListRecords(ctx, store.KindKeyset, "")
	if err != nil {
		return fmt.Errorf("list key sets: %w", err)
	}
	var st SealStats
	for _, r := range recs {
		ks, err := m.open(r.ID, r.Value)
		if err != nil {
			return err
		}
		if m.sealedUnderCurrent(r.Value) {
			st.Current++
		} else {
			st.Previous++
		}
		ks.seq, ks.loadedAt = seq, m.now()
		m.install(r.ID, ks, false)
	}
	m.sealed.Store(&st)
	return nil
}

// Delete removes the tenant's key set: every token it signed becomes unverifiable.
func (m *Manager) Delete(ctx context.Context, tenant string) error {
	if _, err := m.store.DeleteRecord(ctx, store.KindKeyset, tenant); err != nil {
		return fmt.Errorf("delete key set: %w", err)
	}
	m.forget(tenant)
	return nil
}
