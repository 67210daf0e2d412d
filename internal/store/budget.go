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
