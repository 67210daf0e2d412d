package keys

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"time"
)

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

// storedKeyset is the plaintext of a sealed key set. A set whose one refresh-token key is the
// legacy one (LegacyRefreshKID, never rotated) keeps it in rk, as sets were written before refresh
// keys rotated, so that replicas of that version still open it; once rotated, every refresh key is
// in rks.
type storedKeyset struct {
	Keys        []storedKey        `json:"keys"`
	RefreshKey  []byte             `json:"rk,omitempty"`
	RefreshKeys []storedRefreshKey `json:"rks,omitempty"`
	// Withdrawn describes recently withdrawn keys, without key material (withdrawnKey).
	Withdrawn []withdrawnKey `json:"withdrawn,omitempty"`
}

type storedRefreshKey struct {
	ID        string    `json:"kid"`
	Secret    []byte    `json:"k"`
	CreatedAt time.Time `json:"created,omitzero"`
	RetiredAt time.Time `json:"retired,omitzero"`
}

// Sealed record formats. A version 2 record names the key-encryption key that sealed it, so that
// the right key opens it without trial decryption; version 1 records, written before there could be
// more than one key, are opened by trying each configured key.
const (
	sealV1 = 1 // 1 || nonce || AES-GCM ciphertext
	sealV2 = 2 // 2 || key-encryption key id (8 bytes, KEKID) || nonce || AES-GCM ciphertext
)

func aad(tenant string) []byte { return []byte("tokenauthority/keyset/v1/" + tenant) }

func (m *Manager) seal(tenant string, ks *keyset) ([]byte, error) {
	var st storedKeyset
	if rks := ks.refreshKeys; len(rks) == 1 && rks[0].ID == LegacyRefreshKID && rks[0].RetiredAt.IsZero() {
		st.RefreshKey = rks[0].Secret
	} else {
		for _, rk := range rks {
			st.RefreshKeys = append(st.RefreshKeys, storedRefreshKey(*rk))
		}
	}
	for _, w := range ks.withdrawn {
		st.Withdrawn = append(st.Withdrawn, *w)
	}
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

// sealPlain encrypts the JSON plaintext of a tenant's key set under the current key-encryption
// key, in format version 2.
func (m *Manager) sealPlain(tenant string, plain []byte) []byte {
	nonce := make([]byte, m.kek.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := make([]byte, 0, 1+kekIDLen+len(nonce)+len(plain)+m.kek.aead.Overhead())
	out = append(out, sealV2)
	out = append(out, m.kek.id[:]...)
	out = append(out, nonce...)
	return m.kek.aead.Seal(out, nonce, plain, aad(tenant))
}

// sealedUnderCurrent reports whether blob is a version 2 record of the current key-encryption key.
func (m *Manager) sealedUnderCurrent(blob []byte) bool {
	return len(blob) > kekIDLen && blob[0] == sealV2 && bytes.Equal(blob[1:1+kekIDLen], m.kek.id[:])
}

// openPlain decrypts a tenant's sealed key set and returns its plaintext and the key that opened
// it. Its errors name the tenant and the id of the key a record needs, never a key.
func (m *Manager) openPlain(tenant string, blob []byte) ([]byte, *kek, error) {
	ns := m.kek.aead.NonceSize()
	switch {
	case len(blob) >= 1+kekIDLen+ns && blob[0] == sealV2:
		var id [kekIDLen]byte
		copy(id[:], blob[1:])
		k := m.keks[id]
		if k == nil {
			return nil, nil, fmt.Errorf("key set of tenant %q is sealed under key-encryption key %x, which is not configured: %w",
				tenant, id, ErrWrongKEK)
		}
		rest := blob[1+kekIDLen:]
		plain, err := k.aead.Open(nil, rest[:ns], rest[ns:], aad(tenant))
		if err != nil {
			return nil, nil, fmt.Errorf("key set of tenant %q does not open under key-encryption key %s, which sealed it (damaged or moved): %w",
				tenant, k, ErrWrongKEK)
		}
		return plain, k, nil
	case len(blob) >= 1+ns && blob[0] == sealV1:
		for _, k := range append([]*kek{m.kek}, m.previous...) {
			if plain, err := k.aead.Open(nil, blob[1:1+ns], blob[1+ns:], aad(tenant)); err == nil {
				return plain, k, nil
			}
		}
		return nil, nil, fmt.Errorf("key set of tenant %q was sealed before records named their key-encryption key, "+
			"and none of the %d configured keys opens it: %w", tenant, 1+len(m.previous), ErrWrongKEK)
	}
	return nil, nil, fmt.Errorf("key set of tenant %q: unknown format", tenant)
}

func (m *Manager) open(tenant string, blob []byte) (*keyset, error) {
	plain, _, err := m.openPlain(tenant, blob)
	if err != nil {
		return nil, err
	}
	var st storedKeyset
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, fmt.Errorf("key set of tenant %q: %w", tenant, err)
	}
	ks := &keyset{blob: blob}
	switch {
	case len(st.RefreshKeys) > 0:
		for _, rk := range st.RefreshKeys {
			if len(rk.Secret) == 0 || !ValidRefreshKID(rk.ID) {
				return nil, fmt.Errorf("key set of tenant %q: malformed refresh-token key", tenant)
			}
			k := RefreshKey(rk)
			ks.refreshKeys = append(ks.refreshKeys, &k)
		}
	case len(st.RefreshKey) > 0:
		ks.refreshKeys = []*RefreshKey{{ID: LegacyRefreshKID, Secret: st.RefreshKey}}
	}
	for _, w := range st.Withdrawn {
		ks.withdrawn = append(ks.withdrawn, &w)
	}
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
	if len(ks.keys) == 0 || len(ks.refreshKeys) == 0 {
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
