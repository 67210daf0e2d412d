// Package store holds what every storage backend shares: sentinel errors and the record kinds of
// long-lived configuration data. The interfaces themselves belong to the packages that use them
// (token.Store, tenant.Store, keys.Store); the backends in store/redis and store/memory satisfy all.
package store

import "errors"

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
