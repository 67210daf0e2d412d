package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

// TestSweep checks that expired entries nobody touches again are dropped after enough writes:
// sweepEvery of them, or half as many as there are entries in a larger store (the sweep visits
// every entry, so that its cost per write stays bounded).
func TestSweep(t *testing.T) {
	for _, tc := range []struct {
		subjects int
		// writes is how many writes after the expiry must sweep: one fewer must not.
		writes int
	}{
		{subjects: 100, writes: sweepEvery},
		// 3000 sessions, marks, their announcement notices and subject cut-offs, and the 2 tenant
		// cut-offs written below.
		{subjects: 3000, writes: (4*3000 + 2) / 2},
	} {
		t.Run(fmt.Sprint(tc.subjects), func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock(time.UnixMilli(1_700_000_000_000).UTC())
			s := New(clock.Now)
			t0 := clock.Now()
			for i := range tc.subjects {
				subject := fmt.Sprintf("user-%d", i)
				id := store.NewSessionID("acme", subject)
				sess := &store.Session{ID: id, Tenant: "acme", Subject: subject, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute), RotatedAt: t0}
				if err := s.CreateSession(ctx, sess); err != nil {
					t.Fatalf("CreateSession: %v", err)
				}
				if _, err := s.RevokeToken(ctx, "acme", id, id+".AAAAAAAAAAAAAAAA", t0.Add(time.Minute)); err != nil {
					t.Fatalf("RevokeToken: %v", err)
				}
				if err := s.SetSubjectCutoff(ctx, "acme", subject, t0, time.Minute); err != nil {
					t.Fatalf("SetSubjectCutoff: %v", err)
				}
			}
			s.mu.Lock()
			s.writes = 0 // Count the writes from the expiry on.
			s.mu.Unlock()
			clock.Advance(time.Minute)
			write := func(i int) {
				if err := s.SetTenantCutoff(ctx, fmt.Sprintf("tenant-%d", i%2), t0, time.Hour); err != nil {
					t.Fatalf("SetTenantCutoff: %v", err)
				}
			}
			for i := range tc.writes - 1 {
				write(i)
			}
			s.mu.Lock()
			if n := len(s.sessions); n != tc.subjects {
				t.Errorf("before the sweep: %d sessions, want all %d still there", n, tc.subjects)
			}
			s.mu.Unlock()
			write(tc.writes - 1)
			s.mu.Lock()
			defer s.mu.Unlock()
			if n := len(s.sessions) + len(s.subjects) + len(s.revoked) + len(s.notices) + len(s.subjCuts); n != 0 {
				t.Errorf("after a sweep: %d sessions, %d subjects, %d marks, %d notices, %d subject cut-offs; want none",
					len(s.sessions), len(s.subjects), len(s.revoked), len(s.notices), len(s.subjCuts))
			}
			if len(s.tenCuts) != 2 {
				t.Errorf("after a sweep: %d tenant cut-offs, want the 2 live ones", len(s.tenCuts))
			}
		})
	}
}
