package redis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// TestTimeoutBoundsEveryCall: whatever Redis does (stall, answer late, cut connections, pause its
// clients), every store call ends within WithTimeout's budget plus a margin, retries included, with
// store.ErrUnavailable; and once the fault ends, calls succeed again on the same client.
//
// Without the budget, go-redis's retries of the 500 ms read timeout hold each call for about
// 3.7 s, well beyond the bound checked here.
func TestTimeoutBoundsEveryCall(t *testing.T) {
	const (
		budget = 300 * time.Millisecond
		// margin covers scheduling on a loaded machine; the unbounded calls take seconds.
		margin = 900 * time.Millisecond
	)
	srv := redistest.Start(t)
	cases := []struct {
		name         string
		inject, heal func(p *redistest.Proxy, admin *goredis.Client)
	}{
		{"stalled", func(p *redistest.Proxy, _ *goredis.Client) { p.Stall() }, func(p *redistest.Proxy, _ *goredis.Client) { p.Resume() }},
		{"slow", func(p *redistest.Proxy, _ *goredis.Client) { p.SetLatency(2 * time.Second) }, func(p *redistest.Proxy, _ *goredis.Client) { p.SetLatency(0) }},
		{"cut and refused", func(p *redistest.Proxy, _ *goredis.Client) { p.Refuse(); p.Cut() }, func(p *redistest.Proxy, _ *goredis.Client) { p.Accept() }},
		// Every client of redis-server paused (CLIENT UNPAUSE would be paused too): the pause ends
		// by itself, and the recovery below waits for it.
		{"CLIENT PAUSE", func(_ *redistest.Proxy, admin *goredis.Client) {
			if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
				t.Fatal(err)
			}
		}, func(*redistest.Proxy, *goredis.Client) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy := redistest.StartProxy(t, srv.Addr())
			admin := srv.Client(t) // straight to redis-server
			client := goredis.NewClient(&goredis.Options{Addr: proxy.Addr(), DialTimeout: time.Second,
				ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, ContextTimeoutEnabled: true})
			t.Cleanup(func() { _ = client.Close() })
			s := New(client, WithTimeout(budget))
			ctx := context.Background()
			now := time.Now()
			live := newSession("acme", "alice", now)
			if err := s.CreateSession(ctx, live); err != nil {
				t.Fatal(err)
			}
			calls := map[string]func(ctx context.Context) error{
				"CheckAccess": func(ctx context.Context) error {
					_, err := s.CheckAccess(ctx, "acme", live.ID, jtiOf(live.ID, 1))
					return err
				},
				"CreateSession": func(ctx context.Context) error { return s.CreateSession(ctx, newSession("acme", "bob", now)) },
				"RotateRefresh": func(ctx context.Context) error {
					_, err := s.RotateRefresh(ctx, store.RotateRequest{Tenant: "acme", SessionID: live.ID, Generation: 0,
						Hash: hashOf(live.ID, 0), NewHash: hashOf(live.ID, 1), Now: now, Grace: time.Second})
					return err
				},
				"GetRecord": func(ctx context.Context) error {
					_, err := s.GetRecord(ctx, store.KindTenant, "acme")
					if errors.Is(err, store.ErrNotFound) {
						return nil
					}
					return err
				},
			}
			tc.inject(proxy, admin)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				slowest time.Duration
			)
			for name, call := range calls {
				for range 4 { // concurrent, so that some share a pipeline
					wg.Add(1)
					go func() {
						defer wg.Done()
						start := time.Now()
						err := call(ctx)
						d := time.Since(start)
						mu.Lock()
						slowest = max(slowest, d)
						mu.Unlock()
						if !errors.Is(err, store.ErrUnavailable) {
							t.Errorf("%s during the fault: %v, want ErrUnavailable", name, err)
						}
						if d > budget+margin {
							t.Errorf("%s took %v, more than the budget %v plus %v", name, d.Round(time.Millisecond), budget, margin)
						}
					}()
				}
			}
			wg.Wait()
			t.Logf("slowest of 16 calls during the fault: %v (budget %v)", slowest.Round(time.Millisecond), budget)
			// A budget carried by the context (one RPC's) ends the work sooner.
			rpc := store.WithBudget(ctx, time.Now().Add(budget/3))
			start := time.Now()
			if _, err := s.CheckAccess(rpc, "acme", live.ID, jtiOf(live.ID, 1)); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("CheckAccess with a short RPC budget: %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > budget/3+margin {
				t.Errorf("CheckAccess with an RPC budget of %v took %v", budget/3, d.Round(time.Millisecond))
			}
			tc.heal(proxy, admin)
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := s.CheckAccess(ctx, "acme", live.ID, jtiOf(live.ID, 1))
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no recovery within 30s after the fault: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
