package keys

import (
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
