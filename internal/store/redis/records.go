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

// DeleteRecord deletes a record and its index entry in one script call.
func (s *Store) DeleteRecord(ctx context.Context, kind, id string) (bool, error) {
	n, err := recordDeleteScript.Run(ctx, s.client, []string{recordKey(kind, id), recordIndexKey(kind)}, id).Int()
	if err != nil {
		return false, unavailable("delete record", err)
	}
	return n == 1, nil
}

// ListRecords returns the records of kind whose id starts with prefix, ordered by id: the ids come
// from the kind's index (ZRANGEBYLEX), the values from MGETs on the same slot. A record deleted
// between the two is left out.
func (s *Store) ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error) {
	rng := &goredis.ZRangeBy{Min: "-", Max: "+"}
	if prefix != "" {
		// Ids are printable ASCII, so every id with the prefix sorts below prefix+"\xff".
		rng = &goredis.ZRangeBy{Min: "[" + prefix, Max: "(" + prefix + "\xff"}
	}
	ids, err := s.client.ZRangeByLex(ctx, recordIndexKey(kind), rng).Result()
	if err != nil {
		return nil, unavailable("list records", err)
	}
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
