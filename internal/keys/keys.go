package keys

import (
	"context"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Algorithm is a JWS algorithm name; the list and its rules are accesstoken's.
type Algorithm = accesstoken.Algorithm

// The supported algorithms.
const (
	EdDSA = accesstoken.EdDSA
	ES256 = accesstoken.ES256
	RS256 = accesstoken.RS256
	HS256 = accesstoken.HS256
)

var (
	// ErrUnknownKey reports a kid that is not a key of the tenant.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrNoKeys reports a tenant without a key set.
	ErrNoKeys = errors.New("tenant has no signing keys")
	// ErrWrongKEK reports stored keys that no configured key-encryption key opens. Its message
	// (wrapped) names the id of the key a record needs (KEKID), never a key.
	ErrWrongKEK = errors.New("no configured key-encryption key opens the stored signing keys")
	// ErrConflict reports a change to a key set that other writers kept overtaking (the store's
	// store.ErrConflict).
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
	// CreateRecord stores a record that must not exist yet (store.ErrExists otherwise).
	CreateRecord(ctx context.Context, kind, id string, value []byte) error
	// GetRecord returns a record, or store.ErrNotFound.
	GetRecord(ctx context.Context, kind, id string) ([]byte, error)
	// DeleteRecord deletes a record and reports whether it existed.
	DeleteRecord(ctx context.Context, kind, id string) (bool, error)
	// UpdateRecord is store.UpdateRecord: an atomic read-modify-write of one record.
	UpdateRecord(ctx context.Context, kind, id string, fn func(old []byte) ([]byte, error)) ([]byte, error)
}
