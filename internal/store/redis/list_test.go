package redis

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// listWork is what one ListSessions call cost.
type listWork struct {
	roundTrips int   // as the client sent them
	commands   int64 // as Redis counted them, scripts' own commands included
	sessions   int64 // session hashes read (HGETALL): one per index entry read
	pruned     int64 // index entries removed
}

// TestListSessionsWorkIsBounded lists a subject with 20,000 dead sessions in its index (ended by a
// cut-off, or expired) page by page, and checks what each call costs: the cut-offs' sessions are
// never read, expired ones at most listScanSlack a call, and the index is pruned a bounded amount at
// a time. Listing used to read every dead entry again on every call past them, with an offset.
func TestListSessionsWorkIsBounded(t *testing.T) {
	const dead, pageSize = 20000, 1
	tests := []struct {
		name string
		// end ends the dead sessions (all created in the hour before now).
		end func(t *testing.T, s *Store, dead []*store.Session)
		// liveFirst puts the live sessions before the dead ones in list order (newer), as a cut-off
		// leaves them; otherwise the dead ones are in the way.
		liveFirst bool
		// maxSessions bounds the session hashes one call reads.
		maxSessions int64
	}{
		{"SubjectCutoff", func(t *testing.T, s *Store, dead []*store.Session) {
			if err := s.SetSubjectCutoff(context.Background(), "acme", "alice", dead[len(dead)-1].CreatedAt, time.Hour); err != nil {
				t.Fatalf("SetSubjectCutoff: %v", err)
			}
		}, true, pageSize + 1},
		{"TenantCutoff", func(t *testing.T, s *Store, dead []*store.Session) {
			if err := s.SetTenantCutoff(context.Background(), "acme", dead[len(dead)-1].CreatedAt, time.Hour); err != nil {
				t.Fatalf("SetTenantCutoff: %v", err)
			}
		}, true, pageSize + 1},
		{"Expired", func(t *testing.T, s *Store, dead []*store.Session) {
			// What Redis does when a session hash expires: the hash goes, its index entry stays.
			ctx := context.Background()
			for chunk := range slices.Chunk(dead, 1000) {
				p := s.client.Pipeline()
				for _, sess := range chunk {
					tag, _ := store.SessionTag(sess.ID)
					p.Del(ctx, sessionKey(tag, sess.ID))
				}
				if _, err := p.Exec(ctx); err != nil {
					t.Fatalf("delete session hashes: %v", err)
				}
			}
		}, false, pageSize + 1 + listScanSlack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			srv := redistest.Start(t)
			client := srv.Client(t)
			s := New(client)
			now := time.Now()
			created := now.Add(-time.Hour)
			liveAt := func(i int) time.Time { return now.Add(-2*time.Hour + time.Duration(i)*time.Second) }
			if tt.liveFirst {
				liveAt = func(i int) time.Time { return now.Add(-time.Duration(i) * time.Second) }
			}
			deadSessions := createSessions(t, s, dead, func(i int) time.Time { return created.Add(time.Duration(i) * time.Millisecond) })
			var want []string
			for i := range 3 {
				sess := newSession("acme", "alice", liveAt(i))
				sess.ExpiresAt = now.Add(time.Hour)
				if err := s.CreateSession(ctx, sess); err != nil {
					t.Fatalf("CreateSession: %v", err)
				}
				want = append(want, sess.ID)
			}
			if !tt.liveFirst {
				slices.Reverse(want) // liveAt counts up: the last is the newest.
			}
			tt.end(t, s, deadSessions)

			rec := &recorder{}
			client.AddHook(rec)
			var got []string
			var calls []listWork
			var worst listWork
			after := ""
			for {
				if len(calls) > dead {
					t.Fatal("ListSessions: no end")
				}
				before := client.ZCard(ctx, indexKey(store.SubjectTag("acme", "alice"))).Val()
				rec.take()
				srv.ResetStats(t)
				page, next, err := s.ListSessions(ctx, "acme", "alice", now, store.Page{After: after, Limit: pageSize})
				if err != nil {
					t.Fatalf("ListSessions: %v", err)
				}
				w := listWork{roundTrips: len(rec.take())}
				for name, n := range srv.CommandStats(t) {
					if name != "config|resetstat" {
						w.commands += n
					}
				}
				w.sessions = srv.CommandStats(t)["hgetall"]
				w.pruned = before - client.ZCard(ctx, indexKey(store.SubjectTag("acme", "alice"))).Val()
				calls = append(calls, w)
				worst = listWork{max(worst.roundTrips, w.roundTrips), max(worst.commands, w.commands),
					max(worst.sessions, w.sessions), max(worst.pruned, w.pruned)}
				for _, sess := range page {
					got = append(got, sess.ID)
				}
				if next == "" {
					break
				}
				after = next
			}
			if !slices.Equal(got, want) {
				t.Errorf("sessions listed:\n got %v\nwant %v", got, want)
			}
			t.Logf("%d calls; the costliest: %d round trips, %d Redis commands, %d sessions read, %d index entries removed",
				len(calls), worst.roundTrips, worst.commands, worst.sessions, worst.pruned)
			if worst.sessions > tt.maxSessions {
				t.Errorf("a call read %d sessions, want at most %d", worst.sessions, tt.maxSessions)
			}
			// A script call and a pipeline per batch, batches doubling from the page size: about
			// two per doubling up to the budget, the cut-offs' read, and the removal of stale entries.
			if worst.roundTrips > 20 {
				t.Errorf("a call took %d round trips, want at most 20", worst.roundTrips)
			}
			if worst.pruned > max(listPruneMax, listScanSlack+pageSize+1) {
				t.Errorf("a call removed %d index entries, want at most %d", worst.pruned, max(listPruneMax, listScanSlack+pageSize+1))
			}
			// The index sheds what a cut-off ended a bounded amount per call, until only the live
			// sessions are left.
			for range dead/listPruneMax + 1 {
				if _, _, err := s.ListSessions(ctx, "acme", "alice", now, store.Page{Limit: pageSize}); err != nil {
					t.Fatalf("ListSessions: %v", err)
				}
			}
			if n := client.ZCard(ctx, indexKey(store.SubjectTag("acme", "alice"))).Val(); n != int64(len(want)) {
				t.Errorf("the index holds %d entries after listing, want the %d live sessions", n, len(want))
			}
		})
	}
}

// TestSubjectCutoffPrunesIndex checks that a subject cut-off removes what it ended from the index in
// the same script, a bounded number of entries at a time.
func TestSubjectCutoffPrunesIndex(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := New(client)
	now := time.Now()
	n := listPruneMax + 10
	sessions := createSessions(t, s, n, func(i int) time.Time { return now.Add(-time.Hour + time.Duration(i)*time.Millisecond) })
	idx := indexKey(store.SubjectTag("acme", "alice"))
	tests := []struct {
		at   time.Time
		want int64 // index entries left
	}{
		{sessions[4].CreatedAt, int64(n - 5)},                  // ends the 5 oldest
		{sessions[n-1].CreatedAt, int64(n - 5 - listPruneMax)}, // ends the rest, removes listPruneMax
		{sessions[n-1].CreatedAt, 0},                           // the same cut-off again removes the rest
	}
	for i, tt := range tests {
		if err := s.SetSubjectCutoff(ctx, "acme", "alice", tt.at, time.Hour); err != nil {
			t.Fatalf("SetSubjectCutoff: %v", err)
		}
		if got := client.ZCard(ctx, idx).Val(); got != tt.want {
			t.Errorf("after cut-off %d the index holds %d entries, want %d", i, got, tt.want)
		}
	}
}

// createSessions creates n sessions of acme's alice, the i-th created at created(i) and all ending
// in three hours, with
// concurrent calls (which the store sends in shared pipelines).
func createSessions(t *testing.T, s *Store, n int, created func(i int) time.Time) []*store.Session {
	t.Helper()
	sessions := make([]*store.Session, n)
	for i := range sessions {
		sessions[i] = newSession("acme", "alice", created(i))
		sessions[i].ExpiresAt = time.Now().Add(3 * time.Hour) // whenever they were created
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := s.CreateSession(context.Background(), sessions[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("CreateSession: %v", err)
	}
	return sessions
}
