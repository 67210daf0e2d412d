package app

import (
	"sync"
	"testing"
	"time"
)

// balancer spreads a test's load over replicas in turn, as a load balancer does, and counts the
// calls in flight on each replica: a test that takes a replica out of the rotation waits until the
// calls that picked it have finished, instead of sleeping for a time they usually take.
type balancer struct {
	mu       sync.Mutex
	replicas []*running
	inflight map[*running]int
}

func newBalancer(replicas ...*running) *balancer {
	return &balancer{replicas: replicas, inflight: map[*running]int{}}
}

// acquire picks the replicas of n consecutive calls from the i-th, counted in flight until
// release is called.
func (b *balancer) acquire(i, n int) (picked []*running, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range n {
		r := b.replicas[(i+k)%len(b.replicas)]
		b.inflight[r]++
		picked = append(picked, r)
	}
	return picked, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, r := range picked {
			b.inflight[r]--
		}
	}
}

// all returns the replicas in the rotation.
func (b *balancer) all() []*running {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*running(nil), b.replicas...)
}

// add puts r in the rotation.
func (b *balancer) add(r *running) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.replicas = append(b.replicas, r)
}

// replace puts r in the rotation at i, taking the replica there out of it, and returns that one.
func (b *balancer) replace(i int, r *running) (old *running) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, b.replicas[i] = b.replicas[i], r
	return old
}

// remove takes r out of the rotation.
func (b *balancer) remove(r *running) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.replicas {
		if x == r {
			b.replicas = append(b.replicas[:i:i], b.replicas[i+1:]...)
			return
		}
	}
}

// drain waits until no call that picked r is still running; r must be out of the rotation.
func (b *balancer) drain(t testing.TB, r *running) {
	t.Helper()
	waitUntil(t, "the calls on a replica out of the rotation to finish", 30*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inflight[r] == 0
	})
}

// waitUntil polls cond until it holds, and fails the test, naming what it waited for, after
// limit. Tests wait for the thing itself to happen, not for a time in which it usually does: a
// busy machine makes any fixed time too short, while a generous limit costs nothing when cond
// holds early.
func waitUntil(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// callsPast returns a condition that holds once n has grown by want from its value now: for a
// test that needs its load to have run for a while at some point, counted in calls, not time.
func callsPast(n interface{ Load() int64 }, want int64) func() bool {
	from := n.Load()
	return func() bool { return n.Load() >= from+want }
}
