package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

var recordTests = []test{
	{"Lifecycle", testRecordLifecycle},
	{"List", testRecordList},
}

func testRecordLifecycle(t *testing.T, f *fixture) {
	const kind, id = store.KindAPIKey, "key-1"
	get := func() ([]byte, error) { return f.store.GetRecord(f.ctx, kind, id) }

	if _, err := get(); !isNotFound(err) {
		t.Fatalf("GetRecord of a missing record: err = %v, want store.ErrNotFound", err)
	}
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("v1")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("v2")); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateRecord of an existing record: err = %v, want store.ErrExists", err)
	}
	if v, err := get(); err != nil || string(v) != "v1" {
		t.Errorf("GetRecord = %q, %v; want v1", v, err)
	}
	if _, err := f.store.GetRecord(f.ctx, store.KindTenant, id); !isNotFound(err) {
		t.Errorf("GetRecord of the id in another kind: err = %v, want store.ErrNotFound", err)
	}
	binary := []byte{0, 1, 0xff, '\n', 0}
	if err := f.store.PutRecord(f.ctx, kind, id, binary); err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	if v, err := get(); err != nil || !bytes.Equal(v, binary) {
		t.Errorf("GetRecord after PutRecord = %q, %v; want %q", v, err, binary)
	}
	for i, want := range []bool{true, false} {
		if deleted, err := f.store.DeleteRecord(f.ctx, kind, id); err != nil || deleted != want {
			t.Errorf("DeleteRecord #%d = %v, %v; want %v, nil", i+1, deleted, err, want)
		}
	}
	if _, err := get(); !isNotFound(err) {
		t.Errorf("GetRecord of a deleted record: err = %v, want store.ErrNotFound", err)
	}
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("v3")); err != nil {
		t.Errorf("CreateRecord after DeleteRecord: %v", err)
	}
	if err := f.store.PutRecord(f.ctx, kind, "new", []byte{}); err != nil {
		t.Fatalf("PutRecord of a new, empty record: %v", err)
	}
	if v, err := f.store.GetRecord(f.ctx, kind, "new"); err != nil || len(v) != 0 {
		t.Errorf("GetRecord of an empty record = %q, %v; want empty", v, err)
	}
}

func testRecordList(t *testing.T, f *fixture) {
	records := map[string]string{
		"a":         "1",
		"a1":        "2",
		"a10":       "3",
		"a2":        "4",
		"b1":        "5",
		"A1":        "6",
		"a[1]":      "7",
		"a-z":       "8",
		"tenant:x~": "9",
	}
	for id, v := range records {
		if err := f.store.PutRecord(f.ctx, store.KindPrincipal, id, []byte(v)); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
	if err := f.store.CreateRecord(f.ctx, store.KindTenant, "a3", []byte("other kind")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	if err := f.store.CreateRecord(f.ctx, store.KindPrincipal, "a-deleted", []byte("x")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	if _, err := f.store.DeleteRecord(f.ctx, store.KindPrincipal, "a-deleted"); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"A1", "a", "a-z", "a1", "a10", "a2", "a[1]", "b1", "tenant:x~"}},
		{"a", []string{"a", "a-z", "a1", "a10", "a2", "a[1]"}},
		{"a1", []string{"a1", "a10"}},
		{"a[", []string{"a[1]"}},
		{"tenant:x~", []string{"tenant:x~"}},
		{"b10", nil},
		{"c", nil},
	}
	for _, tt := range tests {
		t.Run("Prefix"+tt.prefix, func(t *testing.T) {
			got, err := f.store.ListRecords(f.ctx, store.KindPrincipal, tt.prefix)
			if err != nil {
				t.Fatalf("ListRecords: %v", err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
				if string(r.Value) != records[r.ID] {
					t.Errorf("record %q = %q, want %q", r.ID, r.Value, records[r.ID])
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ListRecords(%q) ids = %q, want %q", tt.prefix, ids, tt.want)
			}
		})
	}
}
