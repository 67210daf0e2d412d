// Package store holds what every storage backend and the domain share: sentinel errors, the session
// record with its ids and list cursor, and the record kinds of long-lived configuration data. It is
// a leaf, so the backends import it and not the domain. The interfaces belong to the packages that
// use them (token.Store, tenant.Store, keys.Store); the backends in store/redis and store/memory
// satisfy all of them, which internal/app checks where it wires them.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

var (
	// ErrNotFound reports that a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists reports that a record to be created already exists.
	ErrExists = errors.New("already exists")
	// ErrUnavailable wraps every failure of the backend itself (timeouts, refused connections, ...).
	// Callers map it to codes.Unavailable and never treat it as an answer.
	ErrUnavailable = errors.New("store unavailable")
	// ErrLimit reports a record that was not created because its owner already lists the most
	// records of its kind that the caller allows.
	ErrLimit = errors.New("limit reached")
	// ErrInvalidArgument reports a request that can never succeed as sent: a page token that the
	// list did not return, a session id that is not of its subject. The token domain reports its own
	// refusals with the same sentinel (store.ErrInvalidArgument), so both map to one status.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConflict reports an update that other writers kept overtaking for maxUpdateAttempts
	// attempts in a row.
	ErrConflict = errors.New("the record kept changing during the update")
)

// Record kinds. Records are opaque bytes owned by the package that writes them; they have no TTL
// because they live until deleted (tenants, API keys, principals, encrypted signing keys).
const (
	KindTenant    = "tenant"
	KindAPIKey    = "apikey"
	KindPrincipal = "principal"
	KindKeyset    = "keyset"
	// KindBootstrap marks what the development bootstrap did in this store (internal/app).
	KindBootstrap = "bootstrap"
	// KindIssuer is an issuer's claim: which tenant (and incarnation of it) holds the issuer, so
	// that no two tenants share one, checked by one create-if-absent rather than a scan of every
	// tenant. Its id is derived from the issuer (internal/tenant), since an issuer is any
	// printable UTF-8 string and record ids are printable ASCII.
	KindIssuer = "issuer"
)

// Owned records: a record may be listed under an owner (a tenant's API keys under the tenant), so
// that the owner's records are read without reading every record of the kind. The list is kept
// with the record in one atomic step by the *OwnedRecord methods of the backends; a record listed
// under an owner must be deleted with DeleteOwnedRecord, or its entry stays behind (lists skip it,
// but it counts towards a creation's limit).

// Record is one long-lived record and its id.
type Record struct {
	ID    string
	Value []byte
}

// RecordSwapper is what UpdateRecord needs of a backend: a read, and a compare-and-swap.
type RecordSwapper interface {
	// GetRecord returns a record, or ErrNotFound.
	GetRecord(ctx context.Context, kind, id string) ([]byte, error)
	// SwapRecord replaces the record's value with value if it is still old, in one atomic step,
	// and reports whether it did. A record that does not exist is ErrNotFound: a swap never
	// brings back a deleted record.
	SwapRecord(ctx context.Context, kind, id string, old, value []byte) (bool, error)
}

// maxUpdateAttempts bounds the attempts of one UpdateRecord. Every failed swap means that another
// writer's succeeded, so the loop never spins without progress; the bound only stops one writer
// that keeps losing to a stream of others.
const maxUpdateAttempts = 100

// UpdateRecord applies fn to the record's current value and stores its result, as one atomic
// read-modify-write: fn gets the stored value, and its result is stored only if the record still
// holds that value; otherwise fn runs again on the new value. fn may thus run several times and
// must derive its result from old alone. When fn returns a value equal to old, nothing is written.
// UpdateRecord returns the value stored, fn's error as is, an error wrapping ErrNotFound when the
// record does not exist (or was deleted meanwhile), or ErrConflict after maxUpdateAttempts lost
// swaps.
func UpdateRecord(ctx context.Context, s RecordSwapper, kind, id string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	for range maxUpdateAttempts {
		old, err := s.GetRecord(ctx, kind, id)
		if err != nil {
			return nil, err
		}
		value, err := fn(old)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(value, old) {
			return old, nil
		}
		swapped, err := s.SwapRecord(ctx, kind, id, old, value)
		if err != nil {
			return nil, err
		}
		if swapped {
			return value, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("update %s record: %w", kind, ErrConflict)
}
