package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

var recordTests = []test{
	{"Lifecycle", testRecordLifecycle},
	{"List", testRecordList},
	{"ListPage", testRecordListPage},
	{"Owned", testOwnedRecords},
	{"OwnedLimit", testOwnedRecordLimit},
	{"OwnedLimitConcurrently", testOwnedRecordLimitConcurrently},
	{"OwnExisting", testOwnRecords},
	{"Swap", testRecordSwap},
	{"DeleteIf", testRecordDeleteIf},
	{"Update", testRecordUpdate},
	{"UpdateRace", testRecordUpdateRace},
	{"UpdateConcurrently", testRecordUpdateConcurrently},
	{"UpdateDeleted", testRecordUpdateDeleted},
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

// testRecordListPage pages through records of one prefix, among others of the kind and of other
// kinds, with every page size: the pages hold each record once, in id order, and only the last
// page has no next.
func testRecordListPage(t *testing.T, f *fixture) {
	const kind = store.KindPrincipal
	want := []string{"acme/", "acme/a", "acme/a-z", "acme/a1", "acme/a10", "acme/\u00e9t\u00e9", "acme/\u00ff"}
	others := []string{"acme", "acme-2/a", "acmf/a", "globex/a", "acm"}
	for i, id := range append(slices.Clone(want), others...) {
		if err := f.store.PutRecord(f.ctx, kind, id, []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
	if err := f.store.PutRecord(f.ctx, store.KindTenant, "acme/b", []byte("other kind")); err != nil {
		t.Fatalf("PutRecord: %v", err)
	}
	if err := f.store.CreateRecord(f.ctx, kind, "acme/deleted", []byte("x")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	if _, err := f.store.DeleteRecord(f.ctx, kind, "acme/deleted"); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	for limit := 1; limit <= len(want)+1; limit++ {
		t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > len(want) {
					t.Fatalf("more than %d pages: %q", len(want)+1, got)
				}
				recs, next, err := f.store.ListRecordsPage(f.ctx, kind, "acme/", after, limit)
				if err != nil {
					t.Fatalf("ListRecordsPage(after %q): %v", after, err)
				}
				if len(recs) > limit {
					t.Fatalf("ListRecordsPage(after %q) = %d records, more than the limit %d", after, len(recs), limit)
				}
				for _, r := range recs {
					got = append(got, r.ID)
				}
				if next == "" {
					break
				}
				if len(recs) == 0 || next != recs[len(recs)-1].ID {
					t.Fatalf("ListRecordsPage(after %q): next %q, want the last id of the page %v", after, next, recs)
				}
				after = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages of %d = %q, want %q", limit, got, want)
			}
		})
	}
	// A position before the prefix starts at it; one past it lists nothing.
	for _, tc := range []struct {
		after string
		want  []string
	}{
		{"", want[:2]},
		{"a", want[:2]},
		{"acme/a1", want[4:6]},
		{"acme/\u00ff", nil},
		{"zzz", nil},
	} {
		recs, _, err := f.store.ListRecordsPage(f.ctx, kind, "acme/", tc.after, 2)
		if err != nil {
			t.Fatalf("ListRecordsPage(after %q): %v", tc.after, err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
			if r.ID == want[0] && string(r.Value) != "0" {
				t.Errorf("record %q = %q, want 0", r.ID, r.Value)
			}
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("ListRecordsPage(after %q, 2) = %q, want %q", tc.after, ids, tc.want)
		}
	}
	if _, _, err := f.store.ListRecordsPage(f.ctx, kind, "acme/", "", 0); err == nil {
		t.Error("ListRecordsPage with limit 0 succeeded")
	}
}

// ownedIDs returns the ids that ListOwnedRecords lists for owner, checking each value against
// want (id -> value).
func ownedIDs(t *testing.T, f *fixture, owner string, want map[string]string) []string {
	t.Helper()
	recs, err := f.store.ListOwnedRecords(f.ctx, store.KindAPIKey, owner)
	if err != nil {
		t.Fatalf("ListOwnedRecords(%q): %v", owner, err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
		if v, ok := want[r.ID]; ok && string(r.Value) != v {
			t.Errorf("owned record %q = %q, want %q", r.ID, r.Value, v)
		}
	}
	return ids
}

func testOwnedRecords(t *testing.T, f *fixture) {
	const kind = store.KindAPIKey
	values := map[string]string{"k2": "2", "k1": "1", "k3": "3"}
	for id, owner := range map[string]string{"k2": acme, "k1": acme, "k3": globex} {
		if err := f.store.CreateOwnedRecord(f.ctx, kind, owner, id, []byte(values[id]), 0); err != nil {
			t.Fatalf("CreateOwnedRecord(%s, %s): %v", owner, id, err)
		}
	}
	if err := f.store.CreateOwnedRecord(f.ctx, kind, acme, "k1", []byte("again"), 0); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateOwnedRecord of an existing record: err = %v, want store.ErrExists", err)
	}
	if err := f.store.CreateOwnedRecord(f.ctx, kind, globex, "k1", []byte("other owner"), 0); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateOwnedRecord of another owner's record: err = %v, want store.ErrExists", err)
	}
	if got := ownedIDs(t, f, acme, values); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("acme lists %q, want [k1 k2]", got)
	}
	if got := ownedIDs(t, f, globex, values); !slices.Equal(got, []string{"k3"}) {
		t.Errorf("globex lists %q, want [k3]", got)
	}
	if got := ownedIDs(t, f, "nobody", nil); got != nil {
		t.Errorf("an owner without records lists %q", got)
	}
	// Owned records are records like any other.
	if v, err := f.store.GetRecord(f.ctx, kind, "k3"); err != nil || string(v) != "3" {
		t.Errorf("GetRecord of an owned record = %q, %v; want 3", v, err)
	}
	all, err := f.store.ListRecords(f.ctx, kind, "")
	if err != nil || len(all) != 3 {
		t.Errorf("ListRecords of the kind = %d records, %v; want 3", len(all), err)
	}

	values["k2"] = "2b"
	if err := f.store.PutOwnedRecord(f.ctx, kind, acme, "k2", []byte("2b")); err != nil {
		t.Fatalf("PutOwnedRecord: %v", err)
	}
	values["k4"] = "4"
	if err := f.store.PutOwnedRecord(f.ctx, kind, acme, "k4", []byte("4")); err != nil {
		t.Fatalf("PutOwnedRecord of a new record: %v", err)
	}
	if got := ownedIDs(t, f, acme, values); !slices.Equal(got, []string{"k1", "k2", "k4"}) {
		t.Errorf("acme lists %q after PutOwnedRecord, want [k1 k2 k4]", got)
	}

	for i, want := range []bool{true, false} {
		if deleted, err := f.store.DeleteOwnedRecord(f.ctx, kind, acme, "k1"); err != nil || deleted != want {
			t.Errorf("DeleteOwnedRecord #%d = %v, %v; want %v, nil", i+1, deleted, err, want)
		}
	}
	if _, err := f.store.GetRecord(f.ctx, kind, "k1"); !isNotFound(err) {
		t.Errorf("GetRecord of a deleted owned record: err = %v, want store.ErrNotFound", err)
	}
	if got := ownedIDs(t, f, acme, values); !slices.Equal(got, []string{"k2", "k4"}) {
		t.Errorf("acme lists %q after DeleteOwnedRecord, want [k2 k4]", got)
	}
	all, err = f.store.ListRecords(f.ctx, kind, "")
	if err != nil || len(all) != 3 {
		t.Errorf("ListRecords of the kind after DeleteOwnedRecord = %d records, %v; want 3", len(all), err)
	}
	// A record deleted without its owner is left out of the owner's list.
	if _, err := f.store.DeleteRecord(f.ctx, kind, "k4"); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	if got := ownedIDs(t, f, acme, values); !slices.Equal(got, []string{"k2"}) {
		t.Errorf("acme lists %q after DeleteRecord of k4, want [k2]", got)
	}
}

func testOwnedRecordLimit(t *testing.T, f *fixture) {
	const kind, limit = store.KindAPIKey, 3
	create := func(owner, id string) error {
		return f.store.CreateOwnedRecord(f.ctx, kind, owner, id, []byte(id), limit)
	}
	for i := range limit {
		if err := create(acme, fmt.Sprintf("a%d", i)); err != nil {
			t.Fatalf("CreateOwnedRecord #%d within the limit: %v", i+1, err)
		}
	}
	if err := create(acme, "a-over"); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("CreateOwnedRecord beyond the limit: err = %v, want store.ErrLimit", err)
	}
	if _, err := f.store.GetRecord(f.ctx, kind, "a-over"); !isNotFound(err) {
		t.Errorf("a record refused by the limit was stored: err = %v", err)
	}
	if err := create(acme, "a0"); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateOwnedRecord of an existing record at the limit: err = %v, want store.ErrExists", err)
	}
	if err := create(globex, "g0"); err != nil {
		t.Errorf("another owner has its own limit: %v", err)
	}
	if err := f.store.CreateOwnedRecord(f.ctx, kind, acme, "a-unlimited", nil, 0); err != nil {
		t.Errorf("CreateOwnedRecord without a limit: %v", err)
	}
	if _, err := f.store.DeleteOwnedRecord(f.ctx, kind, acme, "a0"); err != nil {
		t.Fatalf("DeleteOwnedRecord: %v", err)
	}
	if _, err := f.store.DeleteOwnedRecord(f.ctx, kind, acme, "a1"); err != nil {
		t.Fatalf("DeleteOwnedRecord: %v", err)
	}
	if err := create(acme, "a-again"); err != nil {
		t.Errorf("CreateOwnedRecord after deletions made room: %v", err)
	}
	if got := ownedIDs(t, f, acme, nil); !slices.Equal(got, []string{"a-again", "a-unlimited", "a2"}) {
		t.Errorf("acme lists %q", got)
	}
}

// testOwnedRecordLimitConcurrently: concurrent creations never take an owner past the limit.
func testOwnedRecordLimitConcurrently(t *testing.T, f *fixture) {
	const kind, limit, writers = store.KindAPIKey, 5, 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			errs <- f.store.CreateOwnedRecord(f.ctx, kind, acme, fmt.Sprintf("k%02d", i), []byte("v"), limit)
		})
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("CreateOwnedRecord: %v", err)
		}
	}
	if got := ownedIDs(t, f, acme, nil); created != limit || len(got) != limit {
		t.Errorf("%d concurrent creations with a limit of %d: %d succeeded, %d listed", writers, limit, created, len(got))
	}
	all, err := f.store.ListRecords(f.ctx, kind, "")
	if err != nil || len(all) != limit {
		t.Errorf("ListRecords = %d records, %v; want %d", len(all), err, limit)
	}
}

// testOwnRecords: records stored before owners had lists join their owner's list once, and only
// those that still exist.
func testOwnRecords(t *testing.T, f *fixture) {
	const kind = store.KindAPIKey
	// More than one script call's worth on Redis.
	var ids []string
	for i := range 300 {
		id := fmt.Sprintf("old%03d", i)
		ids = append(ids, id)
		if err := f.store.PutRecord(f.ctx, kind, id, []byte(id)); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
	if err := f.store.CreateRecord(f.ctx, kind, "other", []byte("x")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	if got := ownedIDs(t, f, acme, nil); got != nil {
		t.Fatalf("records stored without an owner are listed: %q", got)
	}
	if _, err := f.store.DeleteRecord(f.ctx, kind, "old007"); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	added, err := f.store.OwnRecords(f.ctx, kind, acme, append(ids, "missing"))
	if err != nil || added != 299 {
		t.Fatalf("OwnRecords = %d, %v; want 299 (the existing records), nil", added, err)
	}
	if added, err := f.store.OwnRecords(f.ctx, kind, acme, ids[:10]); err != nil || added != 0 {
		t.Errorf("OwnRecords again = %d, %v; want 0, nil", added, err)
	}
	if added, err := f.store.OwnRecords(f.ctx, kind, acme, nil); err != nil || added != 0 {
		t.Errorf("OwnRecords of no ids = %d, %v; want 0, nil", added, err)
	}
	got := ownedIDs(t, f, acme, nil)
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "old007" })
	if !slices.Equal(got, want) {
		t.Errorf("acme lists %d records, want the %d that existed", len(got), len(want))
	}
	// Listed records count towards the limit.
	if err := f.store.CreateOwnedRecord(f.ctx, kind, acme, "new", nil, 299); !errors.Is(err, store.ErrLimit) {
		t.Errorf("CreateOwnedRecord with 299 records listed and a limit of 299: err = %v, want store.ErrLimit", err)
	}
}

func testRecordSwap(t *testing.T, f *fixture) {
	const kind, id = store.KindKeyset, "acme"
	get := func() string {
		t.Helper()
		v, err := f.store.GetRecord(f.ctx, kind, id)
		if err != nil {
			t.Fatalf("GetRecord: %v", err)
		}
		return string(v)
	}
	if ok, err := f.store.SwapRecord(f.ctx, kind, id, nil, []byte("v1")); ok || !isNotFound(err) {
		t.Fatalf("SwapRecord of a missing record = %v, %v; want false, store.ErrNotFound", ok, err)
	}
	if _, err := f.store.GetRecord(f.ctx, kind, id); !isNotFound(err) {
		t.Fatalf("SwapRecord of a missing record created it: err = %v", err)
	}
	v1 := []byte{'v', 0, 1, 0xff}
	if err := f.store.CreateRecord(f.ctx, kind, id, v1); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	tests := []struct {
		name       string
		old, value string
		want       bool
		after      string
	}{
		{"StaleValue", "v0", "x", false, string(v1)},
		{"Prefix", "v", "x", false, string(v1)},
		{"Empty", "", "x", false, string(v1)},
		{"Current", string(v1), "v2", true, "v2"},
		{"AgainWithTheOldValue", string(v1), "v3", false, "v2"},
		{"ToEmpty", "v2", "", true, ""},
		{"FromEmpty", "", "v4", true, "v4"},
	}
	for _, tt := range tests {
		ok, err := f.store.SwapRecord(f.ctx, kind, id, []byte(tt.old), []byte(tt.value))
		if err != nil || ok != tt.want {
			t.Errorf("%s: SwapRecord = %v, %v; want %v, nil", tt.name, ok, err, tt.want)
		}
		if got := get(); got != tt.after {
			t.Errorf("%s: record = %q, want %q", tt.name, got, tt.after)
		}
	}
	// The record stays indexed like any other.
	if recs, err := f.store.ListRecords(f.ctx, kind, ""); err != nil || len(recs) != 1 || string(recs[0].Value) != "v4" {
		t.Errorf("ListRecords after swaps = %q, %v; want the one record", recs, err)
	}
}

// testRecordDeleteIf checks the compare-and-delete: only the value held deletes the record, and
// its index entry with it.
func testRecordDeleteIf(t *testing.T, f *fixture) {
	const kind, id = store.KindIssuer, "iss"
	if ok, err := f.store.DeleteRecordIf(f.ctx, kind, id, nil); ok || err != nil {
		t.Fatalf("DeleteRecordIf of a missing record = %v, %v; want false, nil", ok, err)
	}
	v1 := []byte{'v', 0, 1, 0xff}
	if err := f.store.CreateRecord(f.ctx, kind, id, v1); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	for _, stale := range []string{"v0", "v", "", string(v1) + "x"} {
		if ok, err := f.store.DeleteRecordIf(f.ctx, kind, id, []byte(stale)); ok || err != nil {
			t.Errorf("DeleteRecordIf(%q) of a record holding %q = %v, %v; want false, nil", stale, v1, ok, err)
		}
	}
	if v, err := f.store.GetRecord(f.ctx, kind, id); err != nil || !bytes.Equal(v, v1) {
		t.Fatalf("record after refused deletions = %q, %v; want %q", v, err, v1)
	}
	if ok, err := f.store.DeleteRecordIf(f.ctx, kind, id, v1); !ok || err != nil {
		t.Fatalf("DeleteRecordIf of the value held = %v, %v; want true, nil", ok, err)
	}
	if _, err := f.store.GetRecord(f.ctx, kind, id); !isNotFound(err) {
		t.Errorf("GetRecord after DeleteRecordIf: err = %v, want store.ErrNotFound", err)
	}
	if recs, err := f.store.ListRecords(f.ctx, kind, ""); err != nil || len(recs) != 0 {
		t.Errorf("ListRecords after DeleteRecordIf = %q, %v; want none", recs, err)
	}
	if ok, err := f.store.DeleteRecordIf(f.ctx, kind, id, v1); ok || err != nil {
		t.Errorf("DeleteRecordIf again = %v, %v; want false, nil", ok, err)
	}
	// The id is free again.
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("v2")); err != nil {
		t.Errorf("CreateRecord after DeleteRecordIf: %v", err)
	}
}

func testRecordUpdate(t *testing.T, f *fixture) {
	const kind, id = store.KindKeyset, "acme"
	appendB := func(old []byte) ([]byte, error) { return append(slices.Clip(old), 'b'), nil }
	if _, err := f.store.UpdateRecord(f.ctx, kind, id, appendB); !isNotFound(err) {
		t.Fatalf("UpdateRecord of a missing record: err = %v, want store.ErrNotFound", err)
	}
	if _, err := f.store.GetRecord(f.ctx, kind, id); !isNotFound(err) {
		t.Fatalf("UpdateRecord of a missing record created it: err = %v", err)
	}
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("a")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	if v, err := f.store.UpdateRecord(f.ctx, kind, id, appendB); err != nil || string(v) != "ab" {
		t.Errorf("UpdateRecord = %q, %v; want ab", v, err)
	}
	errBoom := errors.New("boom")
	if _, err := f.store.UpdateRecord(f.ctx, kind, id, func([]byte) ([]byte, error) { return []byte("lost"), errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("UpdateRecord with a failing fn: err = %v, want fn's error", err)
	}
	unchanged := func(old []byte) ([]byte, error) { return old, nil }
	if v, err := f.store.UpdateRecord(f.ctx, kind, id, unchanged); err != nil || string(v) != "ab" {
		t.Errorf("UpdateRecord without a change = %q, %v; want ab", v, err)
	}
	if v, err := f.store.GetRecord(f.ctx, kind, id); err != nil || string(v) != "ab" {
		t.Errorf("record = %q, %v; want ab", v, err)
	}
}

// testRecordUpdateRace: writer A reads the record, writer B updates it before A writes; A's write
// must not land on the value it read, and A's change is applied again on B's value.
func testRecordUpdateRace(t *testing.T, f *fixture) {
	const kind, id = store.KindKeyset, "acme"
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("0")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	var seenByA []string
	bCalls := 0
	v, err := f.store.UpdateRecord(f.ctx, kind, id, func(old []byte) ([]byte, error) {
		seenByA = append(seenByA, string(old))
		if len(seenByA) == 1 {
			// B wins this round: it writes between A's read and A's swap.
			got, err := f.store.UpdateRecord(f.ctx, kind, id, func(old []byte) ([]byte, error) {
				bCalls++
				return append(slices.Clip(old), 'B'), nil
			})
			if err != nil || string(got) != "0B" {
				t.Errorf("B's UpdateRecord = %q, %v; want 0B", got, err)
			}
		}
		return append(slices.Clip(old), 'A'), nil
	})
	if err != nil || string(v) != "0BA" {
		t.Errorf("A's UpdateRecord = %q, %v; want 0BA (A's change applied on top of B's)", v, err)
	}
	if !slices.Equal(seenByA, []string{"0", "0B"}) || bCalls != 1 {
		t.Errorf("A's fn saw %q and B's fn ran %d times; want [0 0B] and once", seenByA, bCalls)
	}
	if got, err := f.store.GetRecord(f.ctx, kind, id); err != nil || string(got) != "0BA" {
		t.Errorf("record = %q, %v; want 0BA", got, err)
	}
}

// testRecordUpdateConcurrently: writers incrementing one counter concurrently lose no increment.
func testRecordUpdateConcurrently(t *testing.T, f *fixture) {
	const kind, id, writers, increments = store.KindKeyset, "counter", 4, 25
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("0")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	increment := func(old []byte) ([]byte, error) {
		n, err := strconv.Atoi(string(old))
		if err != nil {
			return nil, err
		}
		return []byte(strconv.Itoa(n + 1)), nil
	}
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range increments {
				if _, err := f.store.UpdateRecord(f.ctx, kind, id, increment); err != nil {
					t.Errorf("UpdateRecord: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := strconv.Itoa(writers * increments)
	if got, err := f.store.GetRecord(f.ctx, kind, id); err != nil || string(got) != want {
		t.Errorf("counter = %q, %v; want %s (no lost update)", got, err, want)
	}
}

// testRecordUpdateDeleted: a record deleted while an update runs stays deleted.
func testRecordUpdateDeleted(t *testing.T, f *fixture) {
	const kind, id = store.KindKeyset, "acme"
	if err := f.store.CreateRecord(f.ctx, kind, id, []byte("v")); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	_, err := f.store.UpdateRecord(f.ctx, kind, id, func(_ []byte) ([]byte, error) {
		if _, err := f.store.DeleteRecord(f.ctx, kind, id); err != nil {
			t.Errorf("DeleteRecord: %v", err)
		}
		return []byte("back"), nil
	})
	if !isNotFound(err) {
		t.Errorf("UpdateRecord of a record deleted meanwhile: err = %v, want store.ErrNotFound", err)
	}
	if v, err := f.store.GetRecord(f.ctx, kind, id); !isNotFound(err) {
		t.Errorf("the deleted record came back: %q, %v", v, err)
	}
}
