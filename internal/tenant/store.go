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
	// SwapRecord replaces the record's value with value if it is still old, in one atomic step,
	// and reports whether it did; a missing record is store.ErrNotFound.
	SwapRecord(ctx context.Context, kind, id string, old, value []byte) (bool, error)
	// DeleteRecordIf deletes the record if it still holds value, in one atomic step, and reports
	// whether it did (false for a missing record).
	DeleteRecordIf(ctx context.Context, kind, id string, value []byte) (bool, error)
	// ListRecords returns every record of kind whose id starts with prefix, ordered by id.
	ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error)
	// ListRecordsPage returns up to limit (at least 1) records of kind whose id starts with
	// prefix and sorts after after, ordered by id, and the after of the next page ("" on the
	// last). It reads the page's records only, however many others there are.
	ListRecordsPage(ctx context.Context, kind, prefix, after string, limit int) ([]store.Record, string, error)

	// CreateOwnedRecord is CreateRecord for a record that owner lists, in one atomic step. When
	// limit > 0 and owner already lists limit records of kind, nothing is stored and the error
	// wraps store.ErrLimit.
	CreateOwnedRecord(ctx context.Context, kind, owner, id string, value []byte, limit int) error
	// PutOwnedRecord is PutRecord for a record that owner lists, in one atomic step.
	PutOwnedRecord(ctx context.Context, kind, owner, id string, value []byte) error
	// DeleteOwnedRecord deletes a record and owner's entry of it in one atomic step, and reports
	// whether the record existed.
	DeleteOwnedRecord(ctx context.Context, kind, owner, id string) (bool, error)
	// ListOwnedRecords returns the records of kind that owner lists, ordered by id. It reads those
	// records only, however many other owners have.
	ListOwnedRecords(ctx context.Context, kind, owner string) ([]store.Record, error)
	// OwnRecords lists under owner those of the records kind/ids that exist, for records stored
	// before owners had lists, and returns how many it added. A record deleted meanwhile is not
	// listed.
	OwnRecords(ctx context.Context, kind, owner string, ids []string) (int, error)
}
