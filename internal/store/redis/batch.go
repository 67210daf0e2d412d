package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// batcher sends concurrent hot-path calls in shared pipelines ("natural batching"): a call that
// finds no pipeline in flight goes out at once, so an idle server adds no latency; calls that arrive
// while one is in flight queue up and leave together in the next. Under load this turns N round
// trips (and their 2N system calls, on both sides) into one, while each call still costs one round
// trip and keeps its own atomicity (each script runs whole). When Redis has lost a script, only the
// calls that got NOSCRIPT are sent again, by source: a NOSCRIPT means the script did not run, and
// every other command of such a call is a read.
type batcher struct {
	s *Store

	mu    sync.Mutex
	busy  bool
	queue []*batchCall
}

// batchCall is one call waiting in the batcher.
type batchCall struct {
	// queue adds the call's commands to the pipeline.
	queue func(p goredis.Pipeliner, byDigest bool)
	// wake receives true when the call must lead the next batch, false when its batch is done.
	wake chan bool
	// deadline is when the call's store work must end (WithTimeout from its arrival); zero for
	// none. A batch ends by the earliest deadline of its calls, so a call's wait for the batch
	// before it counts against its own budget.
	deadline time.Time
}

// maxBatch bounds the calls in one pipeline.
const maxBatch = 256

// do runs c's commands in a shared pipeline and returns when they have answered. The commands carry
// their own results and errors.
func (b *batcher) do(ctx context.Context, c *batchCall) {
	c.wake = make(chan bool, 1)
	if b.s.timeout > 0 {
		c.deadline = budgetEnd(ctx, b.s.timeout)
	}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.busy {
		b.mu.Unlock()
		if lead := <-c.wake; !lead {
			return
		}
		b.mu.Lock()
	}
	b.busy = true
	n := min(len(b.queue), maxBatch)
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.mu.Unlock()

	// The batch carries other callers' work: a cancellation of this caller must not cut it short.
	// It ends by the earliest deadline of its calls (each call's own budget), and otherwise by the
	// client's read and write timeouts.
	bctx, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
	if end := earliestDeadline(batch); !end.IsZero() {
		bctx, cancel = context.WithDeadline(bctx, end)
	}
	b.s.execBatch(bctx, batch)
	cancel()

	b.mu.Lock()
	var next *batchCall
	if len(b.queue) > 0 {
		next = b.queue[0]
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	for _, q := range batch {
		if q != c {
			q.wake <- false
		}
	}
	if next != nil {
		next.wake <- true
	}
}

// earliestDeadline returns the earliest deadline among the calls, zero when none has one.
func earliestDeadline(batch []*batchCall) time.Time {
	var end time.Time
	for _, c := range batch {
		if !c.deadline.IsZero() && (end.IsZero() || c.deadline.Before(end)) {
			end = c.deadline
		}
	}
	return end
}

// execBatch sends the batch's commands in one pipeline. Calls whose script Redis had lost are sent
// again with the script's source, which also caches it.
func (s *Store) execBatch(ctx context.Context, batch []*batchCall) {
	p := s.client.Pipeline()
	ends := make([]int, len(batch))
	for i, c := range batch {
		c.queue(p, true)
		ends[i] = p.Len()
	}
	cmds, _ := p.Exec(ctx) // Every command carries its own error.
	if len(cmds) < ends[len(ends)-1] {
		return
	}
	var retry []*batchCall
	start := 0
	for i, c := range batch {
		if lostScript(cmds[start:ends[i]]) {
			retry = append(retry, c)
		}
		start = ends[i]
	}
	if len(retry) > 0 {
		s.exec(ctx, func(p goredis.Pipeliner) {
			for _, c := range retry {
				c.queue(p, false)
			}
		})
	}
}

// cmdErr returns the first failure among cmds, a missing key (redis.Nil) not counting.
func cmdErr(cmds ...goredis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
	}
	return nil
}
