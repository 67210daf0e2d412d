package storetest

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

var listTests = []test{
	{"NewestFirstPaged", testListPaged},
	{"SkipsEnded", testListSkipsEnded},
	{"StableAcrossInserts", testListStableAcrossInserts},
	{"UnknownSubject", func(t *testing.T, f *fixture) {
		sessions, next, err := f.store.ListSessions(f.ctx, acme, "nobody", f.t0, store.Page{})
		if err != nil || len(sessions) != 0 || next != "" {
			t.Errorf("ListSessions of an unknown subject = %v, %q, %v; want nothing", sessions, next, err)
		}
	}},
	{"MalformedCursor", testListMalformedCursor},
	{"ForeignCursor", testListForeignCursor},
	{"ManyEndedByCutoff", testListManyEndedByCutoff},
	{"ManyDeadInARow", testListManyDeadInARow},
	{"CursorSessionGone", testListCursorSessionGone},
}

// manyDead is how many dead sessions the cases below put in a subject's list: more than a backend
// may read in one call (the Redis store reads at most 256 beyond a page), so that a backend that
// bounds its work must page through them.
const manyDead = 600

// newestFirst returns the ids of sessions in list order: newest first, ties by id descending.
func newestFirst(sessions []*store.Session) []string {
	sorted := slices.Clone(sessions)
	slices.SortFunc(sorted, func(a, b *store.Session) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	ids := make([]string, len(sorted))
	for i, s := range sorted {
		ids[i] = s.ID
	}
	return ids
}

func testListPaged(t *testing.T, f *fixture) {
	var sessions []*store.Session
	add := func(tenantID, subject string, created time.Time) *store.Session {
		s := f.session(tenantID, subject, created)
		f.mustCreate(t, s)
		return s
	}
	for i := range 7 {
		sessions = append(sessions, add(acme, alice, f.t0.Add(-time.Duration(i)*time.Second)))
	}
	for range 3 { // Sessions created in the same millisecond.
		sessions = append(sessions, add(acme, alice, f.t0.Add(-10*time.Second)))
	}
	add(acme, bob, f.t0)
	add(globex, alice, f.t0)
	want := newestFirst(sessions)

	for _, limit := range []int{1, 2, 3, 5, 9, 10, 11, 0, -1} {
		t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
			var got []string
			pages := 0
			after := ""
			for {
				page, next, err := f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{After: after, Limit: limit})
				if err != nil {
					t.Fatalf("ListSessions: %v", err)
				}
				pages++
				for _, s := range page {
					got = append(got, s.ID)
				}
				if next == "" {
					break
				}
				if pages > len(want) {
					t.Fatalf("ListSessions: more than %d pages", len(want))
				}
				after = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("sessions listed:\n got %v\nwant %v", got, want)
			}
			size := pageLimit(limit)
			if wantPages := max(1, (len(want)+size-1)/size); pages != wantPages {
				t.Errorf("pages = %d, want %d", pages, wantPages)
			}
		})
	}
	t.Run("FullSessions", func(t *testing.T) {
		page, _, err := f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{Limit: 1})
		if err != nil || len(page) != 1 {
			t.Fatalf("ListSessions = %v, %v; want one session", page, err)
		}
		for _, s := range sessions {
			if s.ID == page[0].ID {
				checkSession(t, "listed session", page[0], s)
			}
		}
	})
}

func testListSkipsEnded(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		// end ends some of the sessions s of tenantID's alice (oldest first) and returns the time
		// to list at.
		end func(t *testing.T, f *fixture, tenantID string, s []*store.Session) time.Time
		// want are the indexes in s of the sessions still listed, newest first.
		want []int
	}{
		{"Deleted", func(t *testing.T, f *fixture, tenantID string, s []*store.Session) time.Time {
			if deleted, err := f.store.DeleteSession(f.ctx, tenantID, s[1].ID); err != nil || !deleted {
				t.Fatalf("DeleteSession = %v, %v", deleted, err)
			}
			return f.t0
		}, []int{2, 0}},
		{"SubjectCutoff", func(t *testing.T, f *fixture, tenantID string, s []*store.Session) time.Time {
			f.subjectCutoff(t, tenantID, alice, s[1].CreatedAt.Add(-time.Millisecond), time.Hour)
			return f.t0
		}, []int{2, 1}},
		{"TenantCutoff", func(t *testing.T, f *fixture, tenantID string, s []*store.Session) time.Time {
			f.tenantCutoff(t, tenantID, s[2].CreatedAt.Add(-time.Millisecond), time.Hour)
			return f.t0
		}, []int{2}},
		{"CutoffInTheCreationMillisecond", func(t *testing.T, f *fixture, tenantID string, s []*store.Session) time.Time {
			// A session created in the cut-off's own millisecond is ended (store.EndedBy).
			f.subjectCutoff(t, tenantID, alice, s[1].CreatedAt, time.Hour)
			return f.t0
		}, []int{2}},
		{"EndedBeforeNow", func(_ *testing.T, _ *fixture, _ string, s []*store.Session) time.Time {
			return s[2].ExpiresAt
		}, []int{1, 0}},
		{"Reused", func(t *testing.T, f *fixture, _ string, s []*store.Session) time.Time {
			req := rotation(s[1], f.t0)
			if res := f.rotate(t, req); res.Outcome != store.Rotated {
				t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
			}
			req.Now = req.Now.Add(time.Hour)
			if res := f.rotate(t, req); res.Outcome != store.RotateReuse {
				t.Fatalf("RotateRefresh outcome = %v, want RotateReuse", res.Outcome)
			}
			return f.t0
		}, []int{2, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case has a tenant of its own, so that its cut-offs leave the others alone.
			tenantID := acme + "-" + tt.name
			var s []*store.Session
			for i := range 3 {
				sess := f.session(tenantID, alice, f.t0.Add(time.Duration(i-2)*time.Second))
				if i == 2 {
					sess.ExpiresAt = f.t0.Add(30 * time.Minute)
				}
				f.mustCreate(t, sess)
				s = append(s, sess)
			}
			now := tt.end(t, f, tenantID, s)
			var want []string
			for _, i := range tt.want {
				want = append(want, s[i].ID)
			}
			for _, limit := range []int{1, 0} {
				if got := f.listAll(t, tenantID, alice, now, limit); !slices.Equal(got, want) {
					t.Errorf("ListSessions(limit %d):\n got %v\nwant %v", limit, got, want)
				}
			}
		})
	}
}

func testListStableAcrossInserts(t *testing.T, f *fixture) {
	var sessions []*store.Session
	for i := range 4 {
		s := f.session(acme, alice, f.t0.Add(-time.Duration(i)*time.Minute))
		f.mustCreate(t, s)
		sessions = append(sessions, s)
	}
	want := newestFirst(sessions)
	page, next, err := f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{Limit: 2})
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("first page = %d sessions, %q, %v; want 2 and a cursor", len(page), next, err)
	}
	got := []string{page[0].ID, page[1].ID}
	// A session created after the first page, newer than all, and one as old as the page's last.
	f.mustCreate(t, f.session(acme, alice, f.t0.Add(time.Minute)))
	page, next, err = f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{After: next, Limit: 2})
	if err != nil || next != "" {
		t.Fatalf("second page: cursor %q, %v; want the last page", next, err)
	}
	for _, s := range page {
		got = append(got, s.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("sessions listed:\n got %v\nwant %v", got, want)
	}
}

func testListMalformedCursor(t *testing.T, f *fixture) {
	f.create(t, acme, alice)
	b64 := base64.RawURLEncoding.EncodeToString
	id := store.NewSessionID(acme, alice)
	for _, after := range []string{
		"!",
		"not base64 at all",
		b64([]byte("garbage")),
		b64([]byte("12:short")),
		b64([]byte("x:" + id)),
		b64([]byte(id)),
	} {
		_, _, err := f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{After: after, Limit: 10})
		if !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("ListSessions after %q: err = %v, want store.ErrInvalidArgument", after, err)
		}
	}
}

func testListForeignCursor(t *testing.T, f *fixture) {
	for range 3 {
		f.create(t, acme, alice)
	}
	for _, other := range [][2]string{{acme, bob}, {globex, alice}} {
		f.create(t, other[0], other[1])
	}
	_, next, err := f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{Limit: 1})
	if err != nil || next == "" {
		t.Fatalf("ListSessions = %q, %v; want a cursor", next, err)
	}
	for _, other := range [][2]string{{acme, bob}, {globex, alice}} {
		_, _, err := f.store.ListSessions(f.ctx, other[0], other[1], f.t0, store.Page{After: next, Limit: 1})
		if !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("ListSessions of %s/%s with a cursor of acme/alice: err = %v, want store.ErrInvalidArgument", other[0], other[1], err)
		}
	}
}

// testListManyEndedByCutoff lists a subject whose older sessions a cut-off ended, many of them.
func testListManyEndedByCutoff(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		cut  func(t *testing.T, f *fixture, tenantID string, at time.Time)
	}{
		{"Subject", func(t *testing.T, f *fixture, tenantID string, at time.Time) {
			f.subjectCutoff(t, tenantID, alice, at, time.Hour)
		}},
		{"Tenant", func(t *testing.T, f *fixture, tenantID string, at time.Time) {
			f.tenantCutoff(t, tenantID, at, time.Hour)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenantID := acme + "-" + tt.name
			start := f.t0.Add(-time.Hour)
			for i := range manyDead {
				f.mustCreate(t, f.session(tenantID, alice, start.Add(time.Duration(i)*time.Millisecond)))
			}
			tt.cut(t, f, tenantID, start.Add(manyDead*time.Millisecond))
			var live []*store.Session
			for i := range 3 {
				s := f.session(tenantID, alice, f.t0.Add(-time.Duration(i)*time.Minute))
				f.mustCreate(t, s)
				live = append(live, s)
			}
			want := newestFirst(live)
			for _, limit := range []int{1, 2, 0} {
				// Twice: the first listing may prune what the cut-off ended, the second must
				// list the same.
				for range 2 {
					got, pages := f.listPages(t, tenantID, alice, f.t0, limit)
					if !slices.Equal(got, want) {
						t.Errorf("ListSessions(limit %d):\n got %v\nwant %v", limit, got, want)
					}
					// The ended sessions are not in the way: no page is short.
					if size := pageLimit(limit); pages != (len(want)+size-1)/size {
						t.Errorf("ListSessions(limit %d) took %d pages for %d sessions", limit, pages, len(want))
					}
				}
			}
		})
	}
}

// testListManyDeadInARow lists a subject whose newest sessions have all ended by the time of
// listing, with live ones behind them: a backend may return short or empty pages with a cursor on
// the way, and must still list every live session once, in order.
func testListManyDeadInARow(t *testing.T, f *fixture) {
	var live []*store.Session
	for i := range 2 {
		s := f.session(acme, alice, f.t0.Add(-time.Hour-time.Duration(i)*time.Second))
		f.mustCreate(t, s)
		live = append(live, s)
	}
	for i := range manyDead {
		s := f.session(acme, alice, f.t0.Add(-time.Duration(i)*time.Millisecond))
		s.ExpiresAt = f.t0.Add(time.Minute)
		f.mustCreate(t, s)
	}
	want := newestFirst(live)
	for _, limit := range []int{1, 0, 500} {
		if got := f.listAll(t, acme, alice, f.t0.Add(2*time.Minute), limit); !slices.Equal(got, want) {
			t.Errorf("ListSessions(limit %d):\n got %v\nwant %v", limit, got, want)
		}
	}
}

// testListCursorSessionGone ends the session a cursor names before the next page is read: the
// listing goes on where it was, also among sessions of the same millisecond.
func testListCursorSessionGone(t *testing.T, f *fixture) {
	var sessions []*store.Session
	for i := range 12 {
		created := f.t0.Add(-time.Minute) // Most in one millisecond.
		if i%4 == 0 {
			created = f.t0.Add(-time.Duration(i) * time.Second)
		}
		s := f.session(acme, alice, created)
		f.mustCreate(t, s)
		sessions = append(sessions, s)
	}
	want := newestFirst(sessions)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatalf("ListSessions: more than %d pages", len(want))
		}
		page, next, err := f.store.ListSessions(f.ctx, acme, alice, f.t0, store.Page{After: after, Limit: 3})
		if err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
		for _, s := range page {
			got = append(got, s.ID)
		}
		if next == "" {
			break
		}
		last := page[len(page)-1]
		if deleted, err := f.store.DeleteSession(f.ctx, acme, last.ID); err != nil || !deleted {
			t.Fatalf("DeleteSession = %v, %v", deleted, err)
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("sessions listed:\n got %v\nwant %v", got, want)
	}
}
