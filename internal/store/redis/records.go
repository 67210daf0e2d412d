package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// mgetBatch bounds the keys of one MGET of ListRecords.
const mgetBatch = 256

// CreateRecord stores a record that must not exist yet, and indexes it, in one script call.
func (s *Store) CreateRecord(ctx context.Context, kind, id string, value []byte) error {
	n, err := recordCreateScript.Run(ctx, s.client, []string{recordKey(kind, id), recordIndexKey(kind)}, id, value).Int()
	if err != nil {
		return unavailable("create record", err)
	}
	if n == 0 {
		return fmt.Errorf("redis store: create %s record: %w", kind, store.ErrExists)
	}
	return nil
}

// PutRecord stores a record, replacing any previous value, and indexes it in one transaction.
func (s *Store) PutRecord(ctx context.Context, kind, id string, value []byte) error {
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, recordKey(kind, id), value, 0)
		p.ZAdd(ctx, recordIndexKey(kind), goredis.Z{Member: id})
		return nil
	})
	if err != nil {
		return unavailable("put record", err)
	}
	return nil
}

// GetRecord returns a record, or store.ErrNotFound.
func (s *Store) GetRecord(ctx context.Context, kind, id string) ([]byte, error) {
	v, err := s.client.Get(ctx, recordKey(kind, id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis store: get %s record: %w", kind, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get record", err)
	}
	return v, nil
}

// SwapRecord replaces a record's value with value if it is still old, in one script call, and
// reports whether it did; a missing record is store.ErrNotFound.
func (s *Store) SwapRecord(ctx context.Context, kind, id string, old, value []byte) (bool, error) {
	n, err := recordSwapScript.Run(ctx, s.client, []string{recordKey(kind, id)}, old, value).Int()
	if err != nil {
		return false, unavailable("swap record", err)
	}
	if n < 0 {
		return false, fmt.Errorf("redis store: swap %s record: %w", kind, store.ErrNotFound)
	}
	return n == 1, nil
}

// UpdateRecord is store.UpdateRecord on s: a GET, then fn, then a compare-and-set script, again
// until the script finds the value that fn started from.
func (s *Store) UpdateRecord(ctx context.Context, kind, id string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	return store.UpdateRecord(ctx, s, kind, id, fn)
}

// DeleteRecord deletes a record and its index entry in one script call.
func (s *Store) DeleteRecord(ctx context.Context, kind, id string) (bool, error) {
	n, err := recordDeleteScript.Run(ctx, s.client, []string{recordKey(kind, id), recordIndexKey(kind)}, id).Int()
	if err != nil {
		return false, unavailable("delete record", err)
	}
	return n == 1, nil
}

// DeleteRecordIf deletes a record and its index entry if the record still holds value, in one
// script call, and reports whether it did.
func (s *Store) DeleteRecordIf(ctx context.Context, kind, id string, value []byte) (bool, error) {
	n, err := recordDeleteIfScript.Run(ctx, s.client, []string{recordKey(kind, id), recordIndexKey(kind)}, id, value).Int()
	if err != nil {
		return false, unavailable("delete record", err)
	}
	return n == 1, nil
}

// ListRecords returns the records of kind whose id starts with prefix, ordered by id: the ids come
// from the kind's index (ZRANGEBYLEX), the values from MGETs on the same slot. A record deleted
// between the two is left out.
func (s *Store) ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error) {
	ids, err := s.client.ZRangeByLex(ctx, recordIndexKey(kind), prefixRange(prefix)).Result()
	if err != nil {
		return nil, unavailable("list records", err)
	}
	return s.readRecords(ctx, kind, ids)
}

// prefixRange is the lexicographic range of the ids that start with prefix (every id when empty).
// Ids are printable ASCII, so every id with the prefix sorts below prefix+"\xff".
func prefixRange(prefix string) *goredis.ZRangeBy {
	if prefix == "" {
		return &goredis.ZRangeBy{Min: "-", Max: "+"}
	}
	return &goredis.ZRangeBy{Min: "[" + prefix, Max: "(" + prefix + "\xff"}
}

// ListRecordsPage returns up to limit records of kind whose id starts with prefix and sorts after
// after, ordered by id, and the after of the next page ("" on the last): the ids from one
// ZRANGEBYLEX with a LIMIT of the kind's index, so that a page reads its own records only, the
// values from MGETs. A record deleted between the two is left out; the next page still starts
// after it.
func (s *Store) ListRecordsPage(ctx context.Context, kind, prefix, after string, limit int) ([]store.Record, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("redis store: list %s records: page limit %d is not positive", kind, limit)
	}
	rng := prefixRange(prefix)
	rng.Count = int64(limit) + 1
	if after != "" && after >= prefix {
		rng.Min = "(" + after
	}
	ids, err := s.client.ZRangeByLex(ctx, recordIndexKey(kind), rng).Result()
	if err != nil {
		return nil, "", unavailable("list records", err)
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	recs, err := s.readRecords(ctx, kind, ids)
	if err != nil {
		return nil, "", err
	}
	return recs, next, nil
}

// readRecords returns the records kind/ids that exist, in the order of ids, with MGETs on the
// kind's slot.
func (s *Store) readRecords(ctx context.Context, kind string, ids []string) ([]store.Record, error) {
	var out []store.Record
	for len(ids) > 0 {
		n := min(len(ids), mgetBatch)
		batch := ids[:n]
		ids = ids[n:]
		keys := make([]string, len(batch))
		for i, id := range batch {
			keys[i] = recordKey(kind, id)
		}
		vals, err := s.client.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, unavailable("list records", err)
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				out = append(out, store.Record{ID: batch[i], Value: []byte(str)})
			}
		}
	}
	return out, nil
}

// CreateOwnedRecord stores a record that must not exist yet and lists it under owner, unless
// owner lists limit records of kind already (limit > 0), in one script call.
func (s *Store) CreateOwnedRecord(ctx context.Context, kind, owner, id string, value []byte, limit int) error {
	keys := []string{recordKey(kind, id), recordIndexKey(kind), ownerIndexKey(kind, owner)}
	n, err := recordCreateOwnedScript.Run(ctx, s.client, keys, id, value, max(limit, 0)).Int()
	if err != nil {
		return unavailable("create record", err)
	}
	switch n {
	case 0:
		return fmt.Errorf("redis store: create %s record: %w", kind, store.ErrExists)
	case -1:
		return fmt.Errorf("redis store: create %s record: %d listed: %w", kind, limit, store.ErrLimit)
	}
	return nil
}

// PutOwnedRecord stores a record, replacing any previous value, and lists it under owner in one
// transaction.
func (s *Store) PutOwnedRecord(ctx context.Context, kind, owner, id string, value []byte) error {
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, recordKey(kind, id), value, 0)
		p.ZAdd(ctx, recordIndexKey(kind), goredis.Z{Member: id})
		p.ZAdd(ctx, ownerIndexKey(kind, owner), goredis.Z{Member: id})
		return nil
	})
	if err != nil {
		return unavailable("put record", err)
	}
	return nil
}

// DeleteOwnedRecord deletes a record and its entries in the kind's index and owner's list in one
// script call.
func (s *Store) DeleteOwnedRecord(ctx context.Context, kind, owner, id string) (bool, error) {
	keys := []string{recordKey(kind, id), recordIndexKey(kind), ownerIndexKey(kind, owner)}
	n, err := recordDeleteOwnedScript.Run(ctx, s.client, keys, id).Int()
	if err != nil {
		return false, unavailable("delete record", err)
	}
	return n == 1, nil
}

// ListOwnedRecords returns the records of kind that owner lists, ordered by id: the ids from
// owner's list, the values from MGETs on the same slot. A record deleted between the two is left
// out.
func (s *Store) ListOwnedRecords(ctx context.Context, kind, owner string) ([]store.Record, error) {
	// All scores are 0, so the rank order is the ids' byte order.
	ids, err := s.client.ZRange(ctx, ownerIndexKey(kind, owner), 0, -1).Result()
	if err != nil {
		return nil, unavailable("list records", err)
	}
	return s.readRecords(ctx, kind, ids)
}

// ownBatch bounds the records of one script call of OwnRecords, so that a long list does not
// hold Redis for long.
const ownBatch = 256

// OwnRecords lists under owner those of the records kind/ids that exist, in script calls of up to
// ownBatch records, and returns how many it added.
func (s *Store) OwnRecords(ctx context.Context, kind, owner string, ids []string) (int, error) {
	added := 0
	for len(ids) > 0 {
		n := min(len(ids), ownBatch)
		batch := ids[:n]
		ids = ids[n:]
		keys := make([]string, 0, n+1)
		args := make([]any, 0, n)
		keys = append(keys, ownerIndexKey(kind, owner))
		for _, id := range batch {
			keys = append(keys, recordKey(kind, id))
			args = append(args, id)
		}
		k, err := recordOwnScript.Run(ctx, s.client, keys, args...).Int()
		if err != nil {
			return added, unavailable("list records under their owner", err)
		}
		added += k
	}
	return added, nil
}
