package keys

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Algorithm is a JWS algorithm name as it appears in a token's `alg` header.
type Algorithm string

// The supported algorithms.
const (
	EdDSA Algorithm = "EdDSA"
	ES256 Algorithm = "ES256"
	RS256 Algorithm = "RS256"
	HS256 Algorithm = "HS256"
)

// ParseAlgorithm returns the algorithm named s, or false.
func ParseAlgorithm(s string) (Algorithm, bool) {
	switch a := Algorithm(s); a {
	case EdDSA, ES256, RS256, HS256:
		return a, true
	}
	return "", false
}

// Method returns the golang-jwt signing method of a.
func (a Algorithm) Method() jwt.SigningMethod {
	switch a {
	case EdDSA:
		return jwt.SigningMethodEdDSA
	case ES256:
		return jwt.SigningMethodES256
	case RS256:
		return jwt.SigningMethodRS256
	case HS256:
		return jwt.SigningMethodHS256
	}
	return nil
}

var (
	// ErrUnknownKey reports a kid that is not a key of the tenant.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrNoKeys reports a tenant without a key set.
	ErrNoKeys = errors.New("tenant has no signing keys")
	// ErrWrongKEK reports stored keys that the key-encryption key cannot open.
	ErrWrongKEK = errors.New("the key-encryption key does not open the stored signing keys")
	// ErrConflict reports a change to a key set that other writers kept overwriting.
	ErrConflict = errors.New("the key set kept changing during the update")
)

// Key is one signing key of a tenant.
type Key struct {
	ID        string
	Algorithm Algorithm
	// Method is Algorithm's golang-jwt signing method.
	Method jwt.SigningMethod
	// SignKey is what Method.Sign takes; VerifyKey what Method.Verify takes.
	SignKey   any
	VerifyKey any
	CreatedAt time.Time
	// PublishedAt is when the key entered the JWKS.
	PublishedAt time.Time
	// ActivatesAt is when the key starts (or started) signing: the signer is the newest key whose
	// ActivatesAt has come.
	ActivatesAt time.Time
	// RetiredAt is when the key stops (or stopped) signing: the ActivatesAt of its successor, zero
	// while it has none. The key keeps verifying for the manager's retention after it. In the
	// descriptions that Keys and Rotate return, it stays zero until that time has come.
	RetiredAt time.Time
}

// Store is the part of the record store that keys needs.
type Store interface {
	CreateRecord(ctx context.Context, kind, id string, value []byte) error
	PutRecord(ctx context.Context, kind, id string, value []byte) error
	GetRecord(ctx context.Context, kind, id string) ([]byte, error)
	DeleteRecord(ctx context.Context, kind, id string) (bool, error)
}

// keyset is the decrypted form of a tenant's stored key set. Once cached it is never modified.
type keyset struct {
	// keys are in activation order (stable: of two keys activating together, the later added
	// comes last and wins).
	keys       []*Key
	byID       map[string]*Key
	refreshKey []byte
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

// Manager creates, stores and serves tenants' key sets.
type Manager struct {
	store      Store
	aead       cipher.AEAD
	now        func() time.Time
	prePublish time.Duration
	retention  time.Duration

	// writes serializes this manager's read-modify-write updates (Rotate, Withdraw).
	writes chan struct{}
	// newKey generates a key (generate; tests count the calls).
	newKey func(alg Algorithm, now time.Time) (*Key, error)
	seq    atomic.Uint64

	mu   sync.RWMutex
	sets map[string]*keyset
}

// reloadInterval bounds how often an unknown kid makes a replica re-read a tenant's key set.
const reloadInterval = time.Second

// NewManager returns a manager that encrypts key sets under kek (32 bytes) and reads the time from
// now. The options set the pre-publish delay of Rotate (WithPrePublish) and how long retired keys
// keep verifying (WithRetention).
func NewManager(s Store, kek []byte, now func() time.Time, opts ...Option) (*Manager, error) {
	m := &Manager{store: s, now: now, retention: DefaultRetention, writes: make(chan struct{}, 1), newKey: generate, sets: map[string]*keyset{}}
	for _, opt := range opts {
		opt(m)
	}
	if m.prePublish < 0 {
		return nil, fmt.Errorf("key pre-publish delay %v is negative", m.prePublish)
	}
	if m.retention < 0 {
		return nil, fmt.Errorf("key retention %v is negative", m.retention)
	}
	if len(kek) != 32 {
		return nil, fmt.Errorf("key-encryption key: %d bytes, want 32 (AES-256)", len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	m.aead, err = cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
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
	rk := make([]byte, 32)
	_, _ = rand.Read(rk)
	ks := &keyset{keys: []*Key{k}, refreshKey: rk}
	blob, err := m.seal(tenant, ks)
	if err != nil {
		return err
	}
	if err := m.store.CreateRecord(ctx, store.KindKeyset, tenant, blob); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("store key set: %w", err)
	}
	// Another replica may have won the race: read back what is stored.
	m.forget(tenant)
	_, err = m.load(ctx, tenant)
	return err
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
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if k, ok := m.verifier(ks, kid); ok {
		return k, nil
	}
	// A key may have been added by another replica since the set was cached.
	if m.now().Sub(ks.loadedAt) < reloadInterval {
		return nil, ErrUnknownKey
	}
	ks, err = m.load(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if k, ok := m.verifier(ks, kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// verifier returns ks's key kid unless its retention has passed.
func (m *Manager) verifier(ks *keyset, kid string) (*Key, bool) {
	k, ok := ks.byID[kid]
	if !ok || expired(k, m.now(), m.retention) {
		return nil, false
	}
	return k, true
}

// RefreshKey returns the tenant's server-only refresh-token key.
func (m *Manager) RefreshKey(ctx context.Context, tenant string) ([]byte, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return ks.refreshKey, nil
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

// storedKey is the at-rest form of a key, inside the encrypted envelope. The lifecycle times came
// later than the format's version 1: a set without them opens with every key published and active
// since its CreatedAt.
type storedKey struct {
	ID          string    `json:"kid"`
	Algorithm   Algorithm `json:"alg"`
	Private     []byte    `json:"priv"` // PKCS#8 DER, or the raw HMAC secret
	CreatedAt   time.Time `json:"created"`
	PublishedAt time.Time `json:"published,omitzero"`
	ActivatesAt time.Time `json:"activates,omitzero"`
	RetiredAt   time.Time `json:"retired,omitzero"`
}

type storedKeyset struct {
	Keys       []storedKey `json:"keys"`
	RefreshKey []byte      `json:"rk"`
}

const sealVersion = 1

func aad(tenant string) []byte { return []byte("tokenauthority/keyset/v1/" + tenant) }

func (m *Manager) seal(tenant string, ks *keyset) ([]byte, error) {
	st := storedKeyset{RefreshKey: ks.refreshKey}
	for _, k := range ks.keys {
		var priv []byte
		if k.Algorithm == HS256 {
			priv = k.SignKey.([]byte)
		} else {
			der, err := x509.MarshalPKCS8PrivateKey(k.SignKey)
			if err != nil {
				return nil, fmt.Errorf("encode key: %w", err)
			}
			priv = der
		}
		st.Keys = append(st.Keys, storedKey{
			ID: k.ID, Algorithm: k.Algorithm, Private: priv, CreatedAt: k.CreatedAt,
			PublishedAt: k.PublishedAt, ActivatesAt: k.ActivatesAt, RetiredAt: k.RetiredAt,
		})
	}
	// The plaintext holds private keys by design: it is sealed on the next line and never leaves.
	plain, err := json.Marshal(st) //nolint:gosec // G117: encrypted below, never stored or logged in the clear
	if err != nil {
		return nil, fmt.Errorf("encode key set: %w", err)
	}
	return m.sealPlain(tenant, plain), nil
}

// sealPlain encrypts the JSON plaintext of a tenant's key set.
func (m *Manager) sealPlain(tenant string, plain []byte) []byte {
	nonce := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := append([]byte{sealVersion}, nonce...)
	return m.aead.Seal(out, nonce, plain, aad(tenant))
}

func (m *Manager) open(tenant string, blob []byte) (*keyset, error) {
	ns := m.aead.NonceSize()
	if len(blob) < 1+ns || blob[0] != sealVersion {
		return nil, fmt.Errorf("key set of tenant %q: unknown format", tenant)
	}
	plain, err := m.aead.Open(nil, blob[1:1+ns], blob[1+ns:], aad(tenant))
	if err != nil {
		return nil, fmt.Errorf("key set of tenant %q: %w", tenant, ErrWrongKEK)
	}
	var st storedKeyset
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, fmt.Errorf("key set of tenant %q: %w", tenant, err)
	}
	ks := &keyset{refreshKey: st.RefreshKey, blob: blob}
	seen := make(map[string]bool, len(st.Keys))
	for _, sk := range st.Keys {
		k, err := fromStored(sk)
		if err != nil {
			return nil, fmt.Errorf("key set of tenant %q: %w", tenant, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("key set of tenant %q: key %q appears twice", tenant, k.ID)
		}
		seen[k.ID] = true
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 || len(ks.refreshKey) == 0 {
		return nil, fmt.Errorf("key set of tenant %q is empty", tenant)
	}
	ks.normalize()
	return ks, nil
}

func fromStored(sk storedKey) (*Key, error) {
	k := &Key{
		ID: sk.ID, Algorithm: sk.Algorithm, Method: sk.Algorithm.Method(), CreatedAt: sk.CreatedAt,
		PublishedAt: sk.PublishedAt, ActivatesAt: sk.ActivatesAt,
	}
	// A key stored before the lifecycle times existed has been published and active since its
	// creation. RetiredAt follows from the order of activation (normalize).
	if k.PublishedAt.IsZero() {
		k.PublishedAt = k.CreatedAt
	}
	if k.ActivatesAt.IsZero() {
		k.ActivatesAt = k.CreatedAt
	}
	if k.Method == nil {
		return nil, fmt.Errorf("key %q: unsupported algorithm", sk.ID)
	}
	if sk.Algorithm == HS256 {
		k.SignKey, k.VerifyKey = sk.Private, sk.Private
		return k, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(sk.Private)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", sk.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %q: not a signing key", sk.ID)
	}
	k.SignKey, k.VerifyKey = priv, signer.Public()
	return k, nil
}

func generate(alg Algorithm, now time.Time) (*Key, error) {
	k := &Key{ID: newKID(), Algorithm: alg, Method: alg.Method(), CreatedAt: now}
	var err error
	switch alg {
	case EdDSA:
		var priv ed25519.PrivateKey
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		k.SignKey, k.VerifyKey = priv, priv.Public()
	case ES256:
		var priv *ecdsa.PrivateKey
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err == nil {
			k.SignKey, k.VerifyKey = priv, priv.Public()
		}
	case RS256:
		var priv *rsa.PrivateKey
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			k.SignKey, k.VerifyKey = priv, priv.Public()
		}
	case HS256:
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		k.SignKey, k.VerifyKey = secret, secret
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return k, nil
}

func newKID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

// Check opens every stored key set, so that a wrong key-encryption key is found at start-up
// rather than at the first token. It returns an error wrapping ErrWrongKEK then.
func (m *Manager) Check(ctx context.Context, s interface {
	ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error)
}) error {
	seq := m.seq.Add(1)
	recs, err := s.ListRecords(ctx, store.KindKeyset, "")
	if err != nil {
		return fmt.Errorf("list key sets: %w", err)
	}
	for _, r := range recs {
		ks, err := m.open(r.ID, r.Value)
		if err != nil {
			return err
		}
		ks.seq, ks.loadedAt = seq, m.now()
		m.install(r.ID, ks, false)
	}
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
