package app

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// TestProductionChecksRedisSettings: production refuses a Redis whose maxmemory-policy evicts keys
// (it names the policy and the override), unless the override is set; a Redis without persistence
// is a warning; development only warns.
func TestProductionChecksRedisSettings(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client(t)
	ctx := context.Background()
	// What this test's redis-server runs with: no AOF, no snapshots.
	if err := rc.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "save", "").Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, policy   string
		production     bool
		allow          bool
		refused        bool
		warnsEviction  bool
		warnsNoPersist bool
	}{
		{name: "production, allkeys-lru", policy: "allkeys-lru", production: true, refused: true},
		{name: "production, volatile-ttl", policy: "volatile-ttl", production: true, refused: true},
		{name: "production, allkeys-lru, override", policy: "allkeys-lru", production: true, allow: true, warnsEviction: true, warnsNoPersist: true},
		{name: "production, noeviction", policy: "noeviction", production: true, warnsNoPersist: true},
		{name: "development, allkeys-lru", policy: "allkeys-lru", warnsEviction: true, warnsNoPersist: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := rc.ConfigSet(ctx, "maxmemory-policy", c.policy).Err(); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t, srv.URL())
			if c.production {
				cfg.Env = config.EnvProduction
			}
			cfg.RedisAllowEviction = c.allow
			logs := &syncBuffer{}
			a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			gl, _ := net.Listen("tcp", "127.0.0.1:0")
			hl, _ := net.Listen("tcp", "127.0.0.1:0")
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- a.Serve(runCtx, gl, hl) }()
			if c.refused {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), c.policy) || !strings.Contains(err.Error(), "TOKENAUTHORITY_REDIS_ALLOW_EVICTION") {
						t.Fatalf("Serve: %v, want a refusal naming the policy and the override", err)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("still serving 30s after start, want a refusal")
				}
				return
			}
			for !strings.Contains(logs.String(), "token store reachable: serving") {
				select {
				case err := <-done:
					t.Fatalf("Serve ended: %v\n%s", err, logs.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if got := strings.Contains(logs.String(), "is not noeviction"); got != c.warnsEviction {
				t.Errorf("eviction warning logged: %v, want %v\n%s", got, c.warnsEviction, logs.String())
			}
			if got := strings.Contains(logs.String(), "Redis has no persistence"); got != c.warnsNoPersist {
				t.Errorf("persistence warning logged: %v, want %v", got, c.warnsNoPersist)
			}
		})
	}
	if err := rc.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
}
