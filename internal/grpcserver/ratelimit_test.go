package grpcserver

import (
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(func() time.Time { return now })
	limit := tenant.RateLimit{PerSecond: 2, Burst: 3}
	steps := []struct {
		advance time.Duration
		key     string
		allowed bool
	}{
		{0, "a", true}, {0, "a", true}, {0, "a", true}, // the burst
		{0, "a", false},                      // empty
		{0, "b", true},                       // another key has its own bucket
		{400 * time.Millisecond, "a", false}, // 0.8 token refilled
		{100 * time.Millisecond, "a", true},  // 1 token after 500 ms at 2/s
		{0, "a", false},
		{time.Hour, "a", true}, {0, "a", true}, {0, "a", true}, // refills to the burst, not beyond
		{0, "a", false},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		err := l.allow(st.key, "issue", limit)
		if (err == nil) != st.allowed {
			t.Fatalf("step %d (%+v): allow = %v", i, st, err)
		}
		if err != nil && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("step %d: code %v, want ResourceExhausted", i, status.Code(err))
		}
	}
	if err := l.allow("a", "refresh", limit); err != nil {
		t.Errorf("another method has its own bucket: %v", err)
	}
}

func TestLimiterPrunesFullBuckets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(func() time.Time { return now })
	limit := tenant.RateLimit{PerSecond: 1, Burst: 1}
	for i := range maxBuckets {
		_ = l.allow(strconv.Itoa(i), "issue", limit)
	}
	now = now.Add(2 * time.Second) // Every bucket has refilled.
	_ = l.allow("new", "issue", limit)
	if n := len(l.buckets); n != 1 {
		t.Errorf("buckets after pruning = %d, want 1", n)
	}
}
