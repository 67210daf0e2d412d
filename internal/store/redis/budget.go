package redis

import (
	"context"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// DefaultTimeout bounds the store work of one call when WithTimeout sets none.
const DefaultTimeout = time.Second

// WithTimeout bounds the store work of every call, go-redis's retries and their back-off
// included: past it the call fails with store.ErrUnavailable instead of holding its caller. A
// context carrying a store budget (store.WithBudget, set once per RPC) ends sooner when the budget
// does, so that the bound holds for the whole RPC, however many store calls it makes. Without
// it, a Redis that stops answering holds each call for the read timeout times go-redis's retries
// plus back-off (about 3.7 s with the defaults), after most callers' deadlines. The client's
// commands get the same bound through a hook (WithTimeout installs it), and a call waiting for a
// shared pipeline counts its wait: a pipeline ends by the earliest deadline of the calls in it.
// The client must have ContextTimeoutEnabled, so that a deadline also cuts a read or write short.
func WithTimeout(d time.Duration) Option {
	return func(s *Store) { s.timeout = d }
}

// installBudget adds the hook that bounds every command and pipeline of the client by d.
func installBudget(client goredis.UniversalClient, d time.Duration) {
	client.AddHook(budgetHook{d: d})
}

// budgetHook gives each command and pipeline a deadline d from its start, unless its context has
// an earlier one. go-redis retries inside the hooked call, so the bound covers them.
type budgetHook struct{ d time.Duration }

func (budgetHook) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h budgetHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		ctx, cancel := within(ctx, budgetEnd(ctx, h.d))
		defer cancel()
		return next(ctx, cmd)
	}
}

func (h budgetHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		ctx, cancel := within(ctx, budgetEnd(ctx, h.d))
		defer cancel()
		return next(ctx, cmds)
	}
}

// budgetEnd returns when the store work started now under ctx must end: d from now, or the end of
// ctx's store budget if sooner.
func budgetEnd(ctx context.Context, d time.Duration) time.Time {
	end := time.Now().Add(d)
	if b, ok := store.Budget(ctx); ok && b.Before(end) {
		end = b
	}
	return end
}

// within returns ctx with deadline d, unless it already ends sooner.
func within(ctx context.Context, d time.Time) (context.Context, context.CancelFunc) {
	if cur, ok := ctx.Deadline(); ok && !cur.After(d) {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, d)
}
