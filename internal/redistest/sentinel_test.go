package redistest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	s := redistest.StartSentinel(t)
	opts, err := redis.ParseFailoverURL(s.URL())
	if err != nil {
		t.Fatalf("ParseFailoverURL(%q): %v", s.URL(), err)
	}
	if opts.MasterName != s.MasterName() || !slices.Equal(opts.SentinelAddrs, s.SentinelAddrs()) || len(opts.SentinelAddrs) != 3 {
		t.Errorf("ParseFailoverURL(URL()) = master %q sentinels %v; want %q and %v",
			opts.MasterName, opts.SentinelAddrs, s.MasterName(), s.SentinelAddrs())
	}
	for _, a := range s.SentinelAddrs() {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":6379") {
			t.Fatalf("SentinelAddrs() = %v, want private loopback ports", s.SentinelAddrs())
		}
	}

	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.WaitReplicated(t)
	old := s.KillMaster(t)
	if got := s.WaitFailover(t, old); got == old {
		t.Fatalf("WaitFailover = %s, the killed master", got)
	}
	// The client follows the Sentinels to the new master, which has the replicated write. Its
	// first calls may still fail on connections to the dead master.
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := c.Get(ctx, "k").Result()
		if err == nil {
			if v != "v" {
				t.Fatalf("GET after failover = %q, want %q", v, "v")
			}
			break
		}
		if errors.Is(err, redis.Nil) {
			t.Fatal("the replicated write was lost in the failover")
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET after failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Set(ctx, "k2", "v", 0).Err(); err != nil {
		t.Fatalf("SET on the new master: %v", err)
	}
}
