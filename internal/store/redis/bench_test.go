package redis

import (
	"context"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// benchStore returns a store on a fresh server with one session of acme's alice.
func benchStore(b *testing.B) (*Store, *store.Session) {
	b.Helper()
	srv := redistest.Start(b)
	s := New(srv.Client(b))
	sess := newSession("acme", "alice", time.Now())
	if err := s.CreateSession(context.Background(), sess); err != nil {
		b.Fatalf("CreateSession: %v", err)
	}
	return s, sess
}

func BenchmarkCheckAccess(b *testing.B) {
	ctx := context.Background()
	s, sess := benchStore(b)
	jti := jtiOf(sess.ID, 1)
	for b.Loop() {
		st, err := s.CheckAccess(ctx, "acme", sess.ID, jti)
		if err != nil || !st.SessionFound {
			b.Fatalf("CheckAccess = %+v, %v", st, err)
		}
	}
}

func BenchmarkCheckAccessParallel(b *testing.B) {
	ctx := context.Background()
	s, sess := benchStore(b)
	jti := jtiOf(sess.ID, 1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CheckAccess(ctx, "acme", sess.ID, jti); err != nil {
				b.Errorf("CheckAccess: %v", err)
				return
			}
		}
	})
}

func BenchmarkRotateRefresh(b *testing.B) {
	ctx := context.Background()
	s, sess := benchStore(b)
	now := time.Now()
	var gen uint64
	for b.Loop() {
		res, err := s.RotateRefresh(ctx, store.RotateRequest{
			Tenant: "acme", SessionID: sess.ID, Generation: gen,
			Hash: hashOf(sess.ID, gen), NewHash: hashOf(sess.ID, gen+1), Now: now, Grace: time.Second,
		})
		if err != nil || res.Outcome != store.Rotated {
			b.Fatalf("RotateRefresh = %v, %v; want Rotated", res.Outcome, err)
		}
		gen++
	}
}
