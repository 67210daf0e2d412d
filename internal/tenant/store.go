package tenant

import (
	"context"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Store keeps long-lived records (tenants, API keys, principals, encrypted key sets) as opaque bytes.
// Records never expire; ids are at most 200 bytes of printable ASCII.
type Store interface {
	// CreateRecord stores a record that must not exist yet (store.ErrExists otherwise).
	CreateRecord(ctx context.Context, kind, id string, value []byte) error
	// PutRecord stores a record, replacing any previous value.
	PutRecord(ctx context.Context, kind, id string, value []byte) error
	// GetRecord returns a record, or store.ErrNotFound.
	GetRecord(ctx context.Context, kind, id string) ([]byte, error)
	// DeleteRecord deletes a record and reports whether it existed.
	DeleteRecord(ctx context.Context, kind, id string) (bool, error)
	// ListRecords returns every record of kind whose id starts with prefix, ordered by id.
	ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error)
}
