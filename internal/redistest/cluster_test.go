package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

func TestCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %v, want 3 nodes", addrs)
	}
	seen := make(map[string]bool)
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":6379") || seen[a] {
			t.Fatalf("Addrs() = %v, want distinct private loopback ports", addrs)
		}
		seen[a] = true
	}
	want := fmt.Sprintf("redis://%s?addr=%s&addr=%s", addrs[0], addrs[1], addrs[2])
	if c.URL() != want {
		t.Errorf("URL() = %q, want %q", c.URL(), want)
	}
	opts, err := redis.ParseClusterURL(c.URL())
	if err != nil || strings.Join(opts.Addrs, ",") != strings.Join(addrs, ",") {
		t.Errorf("ParseClusterURL(URL()) = %v, %v; want the addresses %v", opts, err, addrs)
	}

	// Keys of many slots spread over every master; keys sharing a hash tag may be used together.
	cl := c.Client(t)
	for i := range 300 {
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	if err := cl.MSet(ctx, "{tag}a", "1", "{tag}b", "2").Err(); err != nil {
		t.Fatalf("MSET of one hash tag: %v", err)
	}
	if err := cl.MSet(ctx, "x", "1", "y", "2").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("MSET across slots: err = %v, want CROSSSLOT", err)
	}
	var mu sync.Mutex
	sizes := make(map[string]int64)
	err = cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu.Lock()
		sizes[m.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	if len(sizes) != 3 {
		t.Fatalf("masters %v, want 3", sizes)
	}
	var total int64
	for addr, n := range sizes {
		if n == 0 {
			t.Errorf("master %s holds no key: slots are not spread", addr)
		}
		total += n
	}
	if total != 302 {
		t.Errorf("the masters hold %d keys, want 302", total)
	}
}

func TestClustersAreIndependent(t *testing.T) {
	a, b := redistest.StartCluster(t, 1), redistest.StartCluster(t, 1)
	if a.Addrs()[0] == b.Addrs()[0] {
		t.Fatalf("two clusters share %s", a.Addrs()[0])
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET on the other cluster: err = %v, want redis.Nil", err)
	}
	if _, err := redis.ParseClusterURL(a.URL()); err != nil || !strings.Contains(a.URL(), "?addr=") {
		t.Errorf("URL() of one node = %q (%v), want a cluster URL", a.URL(), err)
	}
}
