package grpcserver

import (
	"fmt"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// limiter keeps one token bucket per (API key, method) on this replica. Limits are per replica: a
// fleet of n replicas admits up to n times a tenant's rate, which keeps the hot path free of a
// store round trip.
type limiter struct {
	now func() time.Time

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	key, method string
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the map; beyond it, buckets that have refilled completely (which a new bucket
// would equal) are dropped.
const maxBuckets = 100_000

func newLimiter(now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{now: now, buckets: make(map[bucketKey]*bucket)}
}

// allow takes one token from the caller's bucket for method, or returns a ResourceExhausted
// status that says when to retry.
func (l *limiter) allow(apiKey, method string, limit tenant.RateLimit) error {
	now := l.now()
	k := bucketKey{apiKey, method}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now, limit)
		}
		b = &bucket{tokens: float64(limit.Burst), last: now}
		l.buckets[k] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(limit.Burst), b.tokens+elapsed*limit.PerSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / limit.PerSecond * float64(time.Second)).Round(time.Millisecond)
	return status.Error(codes.ResourceExhausted, fmt.Sprintf(
		"rate limit of this API key reached (%g calls per second, bursts of %d); retry in %v", limit.PerSecond, limit.Burst, max(wait, time.Millisecond)))
}

// prune drops the buckets that would be full by now. The caller holds l.mu.
func (l *limiter) prune(now time.Time, limit tenant.RateLimit) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*limit.PerSecond >= float64(limit.Burst) {
			delete(l.buckets, k)
		}
	}
}
