package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// TestBatchedCallsKeepTheirOwnResults runs creates, rotations and checks of many sessions at once,
// so that they share pipelines, with the script cache flushed half-way: every call must get its
// own answer, and no script may run twice.
func TestBatchedCallsKeepTheirOwnResults(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := New(client)
	now := time.Now()
	const n = 200
	sessions := make([]*store.Session, n)
	for i := range sessions {
		sessions[i] = newSession("acme", "user-"+strconv.Itoa(i), now)
	}
	run := func(name string, f func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = f(i)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s %d: %v", name, i, err)
			}
		}
	}
	run("create", func(i int) error { return s.CreateSession(ctx, sessions[i]) })
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	run("rotate", func(i int) error {
		res, err := s.RotateRefresh(ctx, store.RotateRequest{
			Tenant: "acme", SessionID: sessions[i].ID, Generation: 0, Hash: hashOf(sessions[i].ID, 0),
			NewHash: hashOf(sessions[i].ID, 1), Now: now.Add(time.Second), Grace: time.Second,
		})
		if err == nil && (res.Outcome != store.Rotated || res.Session.ID != sessions[i].ID || res.Session.Generation != 1) {
			return errors.New("wrong rotation result")
		}
		return err
	})
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	run("check", func(i int) error {
		st, err := s.CheckAccess(ctx, "acme", sessions[i].ID, jtiOf(sessions[i].ID, i))
		if err == nil && (!st.SessionFound || !st.SessionCreatedAt.Equal(time.UnixMilli(sessions[i].CreatedAt.UnixMilli()))) {
			return errors.New("wrong access state")
		}
		return err
	})
	// A second create of every session must be refused: nothing ran twice.
	run("create again", func(i int) error {
		if err := s.CreateSession(ctx, sessions[i]); !errors.Is(err, store.ErrExists) {
			return errors.New("a session was created twice")
		}
		return nil
	})
}

// TestBatchedCallsFailTogetherWhenRedisDies checks that calls queued behind a batch in flight get
// ErrUnavailable, promptly, when Redis goes away, and that the batcher works again afterwards.
func TestBatchedCallsFailTogetherWhenRedisDies(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{
		Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := New(client)
	sess := newSession("acme", "alice", time.Now())
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CheckAccess(ctx, "acme", sess.ID, jtiOf(sess.ID, 0))
			errs <- err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("batched calls hang while Redis is down")
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}
	srv.Restart(t)
	if _, err := s.CheckAccess(ctx, "acme", sess.ID, jtiOf(sess.ID, 0)); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
