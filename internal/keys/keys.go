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
	"sync"
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
}

// Store is the part of the record store that keys needs.
type Store interface {
	CreateRecord(ctx context.Context, kind, id string, value []byte) error
	PutRecord(ctx context.Context, kind, id string, value []byte) error
	GetRecord(ctx context.Context, kind, id string) ([]byte, error)
	DeleteRecord(ctx context.Context, kind, id string) (bool, error)
}

// keyset is the decrypted form of a tenant's stored key set.
type keyset struct {
	keys       []*Key
	byID       map[string]*Key
	signer     *Key
	refreshKey []byte
	loadedAt   time.Time
}

// Manager creates, stores and serves tenants' key sets.
type Manager struct {
	store Store
	aead  cipher.AEAD
	now   func() time.Time

	mu   sync.RWMutex
	sets map[string]*keyset
}

// reloadInterval bounds how often an unknown kid makes a replica re-read a tenant's key set.
const reloadInterval = time.Second

// NewManager returns a manager that encrypts key sets under kek (32 bytes).
func NewManager(s Store, kek []byte, now func() time.Time) (*Manager, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("key-encryption key: %d bytes, want 32 (AES-256)", len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return &Manager{store: s, aead: aead, now: now, sets: map[string]*keyset{}}, nil
}

// Ensure creates the tenant's key set, with one key of alg that signs at once, unless it exists.
// It loads an existing set, so that a wrong key-encryption key is reported here.
func (m *Manager) Ensure(ctx context.Context, tenant string, alg Algorithm) error {
	_, err := m.load(ctx, tenant)
	if !errors.Is(err, ErrNoKeys) {
		return err
	}
	k, err := generate(alg, m.now())
	if err != nil {
		return err
	}
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

// SigningKey returns the key that signs the tenant's access tokens now.
func (m *Manager) SigningKey(ctx context.Context, tenant string) (*Key, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return ks.signer, nil
}

// VerificationKey returns the tenant's key kid, or ErrUnknownKey.
func (m *Manager) VerificationKey(ctx context.Context, tenant, kid string) (*Key, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if k, ok := ks.byID[kid]; ok {
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
	if k, ok := ks.byID[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// RefreshKey returns the tenant's server-only refresh-token key.
func (m *Manager) RefreshKey(ctx context.Context, tenant string) ([]byte, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return ks.refreshKey, nil
}

// PublicKeys returns the tenant's published keys (never HS256 keys, whose secret cannot be shown).
func (m *Manager) PublicKeys(ctx context.Context, tenant string) ([]*Key, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]*Key, 0, len(ks.keys))
	for _, k := range ks.keys {
		if k.Algorithm != HS256 {
			out = append(out, k)
		}
	}
	return out, nil
}

// Forget drops a tenant's cached key set.
func (m *Manager) forget(tenant string) {
	m.mu.Lock()
	delete(m.sets, tenant)
	m.mu.Unlock()
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

func (m *Manager) load(ctx context.Context, tenant string) (*keyset, error) {
	blob, err := m.store.GetRecord(ctx, store.KindKeyset, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoKeys
	}
	if err != nil {
		return nil, fmt.Errorf("load key set: %w", err)
	}
	ks, err := m.open(tenant, blob)
	if err != nil {
		return nil, err
	}
	ks.loadedAt = m.now()
	m.mu.Lock()
	m.sets[tenant] = ks
	m.mu.Unlock()
	return ks, nil
}

// storedKey is the at-rest form of a key, inside the encrypted envelope.
type storedKey struct {
	ID        string    `json:"kid"`
	Algorithm Algorithm `json:"alg"`
	Private   []byte    `json:"priv"` // PKCS#8 DER, or the raw HMAC secret
	CreatedAt time.Time `json:"created"`
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
		st.Keys = append(st.Keys, storedKey{ID: k.ID, Algorithm: k.Algorithm, Private: priv, CreatedAt: k.CreatedAt})
	}
	// The plaintext holds private keys by design: it is sealed on the next line and never leaves.
	plain, err := json.Marshal(st) //nolint:gosec // G117: encrypted below, never stored or logged in the clear
	if err != nil {
		return nil, fmt.Errorf("encode key set: %w", err)
	}
	nonce := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := append([]byte{sealVersion}, nonce...)
	return m.aead.Seal(out, nonce, plain, aad(tenant)), nil
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
	ks := &keyset{byID: map[string]*Key{}, refreshKey: st.RefreshKey}
	for _, sk := range st.Keys {
		k, err := fromStored(sk)
		if err != nil {
			return nil, fmt.Errorf("key set of tenant %q: %w", tenant, err)
		}
		ks.keys = append(ks.keys, k)
		ks.byID[k.ID] = k
	}
	if len(ks.keys) == 0 || len(ks.refreshKey) == 0 {
		return nil, fmt.Errorf("key set of tenant %q is empty", tenant)
	}
	// The newest key signs; older ones stay for verification.
	ks.signer = ks.keys[len(ks.keys)-1]
	return ks, nil
}

func fromStored(sk storedKey) (*Key, error) {
	k := &Key{ID: sk.ID, Algorithm: sk.Algorithm, Method: sk.Algorithm.Method(), CreatedAt: sk.CreatedAt}
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
	recs, err := s.ListRecords(ctx, store.KindKeyset, "")
	if err != nil {
		return fmt.Errorf("list key sets: %w", err)
	}
	for _, r := range recs {
		ks, err := m.open(r.ID, r.Value)
		if err != nil {
			return err
		}
		ks.loadedAt = m.now()
		m.mu.Lock()
		m.sets[r.ID] = ks
		m.mu.Unlock()
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
