package store

import (
	"context"
	"time"
)

type budgetKey struct{}

// WithBudget returns ctx carrying the end of its call's store budget: the time by which all the
// store work of one call (one RPC), its retries included, must have ended. The server sets it from
// its own setting when a call starts; it is not the caller's deadline, which a caller chooses and
// which must never cut short store work shared with other calls (a pipeline).
func WithBudget(ctx context.Context, end time.Time) context.Context {
	return context.WithValue(ctx, budgetKey{}, end)
}

// Budget returns the end of ctx's store budget, and false when it has none.
func Budget(ctx context.Context) (time.Time, bool) {
	end, ok := ctx.Value(budgetKey{}).(time.Time)
	return end, ok
}

// detachedBudget bounds the store work done on a Detached context (the default per-call budget
// is one second).
const detachedBudget = 2 * time.Second

// Detached returns ctx without its cancellation and, when ctx carries a store budget, with a
// budget of its own from now: for work that must still be done after the call failed, such as
// removing what a failed creation made, which the caller's leaving must not stop and the call's
// spent budget must not refuse.
func Detached(ctx context.Context) context.Context {
	bg := context.WithoutCancel(ctx)
	if _, ok := Budget(ctx); ok {
		bg = WithBudget(bg, time.Now().Add(detachedBudget))
	}
	return bg
}
