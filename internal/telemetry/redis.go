package telemetry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// pipelineOp is the op label of a pipeline or transaction: one round trip of several commands.
const pipelineOp = "pipeline"

// maxStoreOps bounds the op label's values. The store sends a fixed set of commands, far fewer;
// the bound only guards against a change that would send commands by variable names.
const maxStoreOps = 64

// otherOp is the op label of the commands beyond maxStoreOps.
const otherOp = "other"

// storeMetrics are the store's latency and error metrics, by operation.
type storeMetrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec

	ops   sync.Map // operation name -> *storeOp; read on every call, written on an op's first
	mu    sync.Mutex
	count int // entries of ops
	other *storeOp
}

// storeOp is the series of one operation, resolved once.
type storeOp struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

func newStoreMetrics() *storeMetrics {
	s := &storeMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_duration_seconds", Buckets: storeBuckets,
			Help: "Duration of Redis calls, by operation: the command name, or pipeline (a pipeline or transaction).",
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_errors_total",
			Help: "Redis calls that failed, by operation (a missing key is not a failure).",
		}, []string{"op"}),
	}
	s.other = s.newOp(otherOp)
	return s
}

func (s *storeMetrics) newOp(label string) *storeOp {
	return &storeOp{duration: s.duration.WithLabelValues(label), errors: s.errors.WithLabelValues(label)}
}

// op returns the series of the operation name, making them on first use.
func (s *storeMetrics) op(name string) *storeOp {
	if o, ok := s.ops.Load(name); ok {
		return o.(*storeOp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.ops.Load(name); ok {
		return o.(*storeOp)
	}
	if s.count >= maxStoreOps {
		return s.other
	}
	o := s.newOp(name)
	s.ops.Store(name, o)
	s.count++
	return o
}

func (o *storeOp) record(start time.Time, failed bool) {
	o.duration.Observe(time.Since(start).Seconds())
	if failed {
		o.errors.Inc()
	}
}

// handshake lists the commands that go-redis sends to set up a new connection. They are no store
// call: counting them would time dials, and count as failures the commands an older server does
// not know (CLIENT SETINFO before Redis 7.2), which go-redis ignores. The store sends none of them.
var handshake = map[string]bool{"hello": true, "auth": true, "client": true, "select": true, "readonly": true}

// isHandshake reports whether cmds are a connection's set-up.
func isHandshake(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if !handshake[c.Name()] {
			return false
		}
	}
	return len(cmds) > 0
}

// failed reports whether err is a failure of the store: a missing key (redis.Nil) is an answer,
// and NOSCRIPT only tells the client to send a script's source, which it does at once.
func failed(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && !redis.HasErrorPrefix(err, "NOSCRIPT")
}

// RedisHook returns a go-redis hook that records the duration and failures of each command and
// pipeline sent through the client it is added to (on a Cluster client, each logical call, its
// redirections included).
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m.store} }

type redisHook struct{ s *storeMetrics }

var _ redis.Hook = redisHook{}

func (redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		if handshake[name] {
			return next(ctx, cmd)
		}
		start := time.Now()
		err := next(ctx, cmd)
		h.s.op(name).record(start, failed(err))
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	op := h.s.op(pipelineOp)
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if isHandshake(cmds) {
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		// A pipeline's error is its first command's, which may be a mere miss hiding a failure
		// after it.
		bad := failed(err)
		for _, c := range cmds {
			if bad {
				break
			}
			bad = failed(c.Err())
		}
		op.record(start, bad)
		return err
	}
}
