package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// kekIDLen is the length of a key-encryption key's id in a sealed record, in bytes.
const kekIDLen = 8

// kekIDContext separates the id hash from any other use of the key.
const kekIDContext = "tokenauthority/kek-id/v1\x00"

// KEKID returns the id under which a sealed record names the key-encryption key kek: the first 8
// bytes of a SHA-256 of the key, in hex. It is not secret: the key is 32 random bytes, which the
// hash does not reveal, so it may be logged, shown in errors and compared across replicas.
func KEKID(kek []byte) string {
	id := kekIDOf(kek)
	return hex.EncodeToString(id[:])
}

func kekIDOf(kek []byte) [kekIDLen]byte {
	sum := sha256.Sum256(append([]byte(kekIDContext), kek...))
	var id [kekIDLen]byte
	copy(id[:], sum[:])
	return id
}

// kek is one key-encryption key of a manager's ring.
type kek struct {
	id   [kekIDLen]byte
	aead cipher.AEAD
}

func (k *kek) String() string { return hex.EncodeToString(k.id[:]) }

func newKEK(key []byte) (*kek, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%d bytes, want 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &kek{id: kekIDOf(key), aead: aead}, nil
}

// WithPreviousKEKs gives the manager key-encryption keys that still open key sets but never seal
// one: the keys being rotated away from. Reseal moves every set sealed under one of them to the
// current key. NewManager rejects a key that is not 32 bytes, a duplicate, and the current key.
func WithPreviousKEKs(keys ...[]byte) Option {
	return func(m *Manager) { m.previousKEKs = append(m.previousKEKs, keys...) }
}

// buildRing sets the manager's current key-encryption key and its previous ones.
func (m *Manager) buildRing(current []byte) error {
	cur, err := newKEK(current)
	if err != nil {
		return fmt.Errorf("key-encryption key: %w", err)
	}
	m.kek = cur
	m.keks = map[[kekIDLen]byte]*kek{cur.id: cur}
	var errs []error
	for i, key := range m.previousKEKs {
		k, err := newKEK(key)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("previous key-encryption key #%d: %w", i+1, err))
		case bytes.Equal(key, current):
			errs = append(errs, fmt.Errorf("previous key-encryption key #%d is the current key", i+1))
		case m.keks[k.id] != nil:
			errs = append(errs, fmt.Errorf("previous key-encryption key #%d is listed twice", i+1))
		default:
			m.keks[k.id] = k
			m.previous = append(m.previous, k)
		}
	}
	m.previousKEKs = nil
	return errors.Join(errs...)
}

// HasPreviousKEKs reports whether the manager was given previous key-encryption keys, whose key
// sets Reseal moves to the current key.
func (m *Manager) HasPreviousKEKs() bool { return len(m.previous) > 0 }

// CurrentKEKID returns the id of the key-encryption key that seals (KEKID).
func (m *Manager) CurrentKEKID() string { return m.kek.String() }
